-- An authenticator enrolment belongs to the session that started it with the password (issue
-- 14): only that session sees the pending secret and may confirm it. The session's digest;
-- NULL once confirmed.
ALTER TABLE totp_factors ADD COLUMN started_by TEXT;
