-- deploy/compose.yaml: one database per service that keeps one (as in production, where each
-- service has its own database and credentials; here they share the postgres superuser).
CREATE DATABASE verification;
CREATE DATABASE submission;
CREATE DATABASE test_result;
CREATE DATABASE portal;
