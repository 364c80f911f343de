-- The web UI: identity verification (R-U1), verified browsers, TOTP (R-U2).

-- Browsers a user has verified (R-U1). The digest is of the browser cookie and the user id, so
-- the cookie proves nothing for another user. The IP it was verified from is kept for display.
CREATE TABLE verified_browsers (
    digest       TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    source_ip    TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX verified_browsers_user ON verified_browsers (org_id, user_id);

-- A login waiting for its identity-verification code (R-U1): the password was right. Keyed by
-- the digest of the challenge cookie; the emailed code is stored as a digest too.
CREATE TABLE identity_challenges (
    digest      TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    method      TEXT NOT NULL,
    code_digest TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    source_ip   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX identity_challenges_user ON identity_challenges (org_id, user_id);

-- TOTP authenticators (R-U2): one per user; confirmed once the user has typed a first code.
-- last_step is the last time step accepted, so a code is never accepted twice.
CREATE TABLE totp_factors (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    secret     TEXT NOT NULL,
    confirmed  BOOLEAN NOT NULL,
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- Single-use recovery codes for a TOTP user who lost the authenticator; digests only.
CREATE TABLE recovery_codes (
    digest     TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX recovery_codes_user ON recovery_codes (org_id, user_id);
