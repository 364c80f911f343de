-- API login (SOAP, OAuth): refresh tokens, and which refresh token a session came from, so that
-- revoking a refresh token ends the access tokens it issued.

-- OAuth refresh tokens: only the digest is stored, like sessions (R-L10).
CREATE TABLE refresh_tokens (
    digest          TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    oauth_client_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (org_id, user_id);

ALTER TABLE sessions ADD COLUMN refresh_digest TEXT;
CREATE INDEX sessions_refresh ON sessions (refresh_digest);
