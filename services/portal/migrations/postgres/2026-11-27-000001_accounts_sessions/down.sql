DROP TABLE issue_counts;
DROP TABLE oidc_logins;
DROP TABLE sessions;
DROP TABLE accounts;
