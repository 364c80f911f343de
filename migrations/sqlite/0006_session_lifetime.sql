-- An absolute session lifetime per org (issue 14, ASVS 7.3.2): a session ends this many seconds
-- after it began, however much it is used. 24 hours by default.
ALTER TABLE orgs ADD COLUMN session_max_seconds INTEGER NOT NULL DEFAULT 86400;
