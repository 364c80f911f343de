-- Integration tokens (issue 17): named API credentials used as the password alone, each with
-- its own expiry, stored as a SHA-256 digest only. A rotation sets replaced_at on the old row
-- and inserts its successor (predecessor_id), which the old one stays valid beside for the
-- org's integration_grace_hours (grace_until: when that window ended as set at the rotation; a
-- window lengthened later does not revive it). next_reminder_at is when the next expiry reminder falls due
-- (NULL: none left); a node claims a reminder by moving it on with a conditional update, so
-- each is mailed once however many nodes run.
CREATE TABLE integration_tokens (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    name             TEXT NOT NULL,
    digest           TEXT NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    replaced_at      INTEGER,
    predecessor_id   TEXT,
    next_reminder_at INTEGER,
    grace_until      INTEGER
);
CREATE INDEX integration_tokens_user ON integration_tokens (org_id, user_id, created_at);
CREATE INDEX integration_tokens_reminder ON integration_tokens (next_reminder_at);

-- The usage inventory: each distinct (client, source address) that logged in with a
-- credential — an integration token (its id) or the security token ('security_token').
CREATE TABLE credential_usage (
    org_id        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    credential    TEXT NOT NULL,
    client        TEXT NOT NULL,
    source_ip     TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    uses          INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, credential, client, source_ip)
);

-- The security token a reset replaced, valid with the current password until
-- previous_token_until (the org's token_grace_hours as it was at the reset, or shorter if the
-- org shortens it since). A password change clears both.
ALTER TABLE users ADD COLUMN previous_token_digest TEXT;
ALTER TABLE users ADD COLUMN previous_token_until INTEGER;
-- The decoy rows an unknown username's login locks read the users' columns.
ALTER TABLE login_decoys ADD COLUMN previous_token_digest TEXT;
ALTER TABLE login_decoys ADD COLUMN previous_token_until INTEGER;

ALTER TABLE orgs ADD COLUMN integration_max_days INTEGER NOT NULL DEFAULT 90;
ALTER TABLE orgs ADD COLUMN integration_grace_hours INTEGER NOT NULL DEFAULT 24;
ALTER TABLE orgs ADD COLUMN integration_reminder_days TEXT NOT NULL DEFAULT '14,3,1';
ALTER TABLE orgs ADD COLUMN token_grace_hours INTEGER NOT NULL DEFAULT 0;

-- Which credential an attempt used: password, security token (current or previous in its
-- grace window), or an integration token by name.
ALTER TABLE login_history ADD COLUMN credential TEXT NOT NULL DEFAULT '';

-- The integration token a session or refresh token was created with: revoking the token ends
-- them, and a refresh token stops with its integration token.
ALTER TABLE sessions ADD COLUMN integration_token_id TEXT;
ALTER TABLE refresh_tokens ADD COLUMN integration_token_id TEXT;
CREATE INDEX sessions_integration ON sessions (integration_token_id)
    WHERE integration_token_id IS NOT NULL;
CREATE INDEX refresh_tokens_integration ON refresh_tokens (integration_token_id)
    WHERE integration_token_id IS NOT NULL;
