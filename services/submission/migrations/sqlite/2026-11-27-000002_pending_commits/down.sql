DROP TABLE pending_commits;
