DROP TABLE tele_tans; DROP TABLE tans; DROP TABLE app_sessions;
