-- keyward schema, PostgreSQL dialect. migrations/sqlite/0001_initial.sql is the same schema in
-- SQLite's dialect; a test checks both directories hold the same versions.
-- Instants are milliseconds since the Unix epoch. Every tenant table carries org_id.
-- Append-only tables (login history, audit trail, outbox) carry `seq`, their insertion order,
-- which breaks ties between rows of the same millisecond.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- An org with its password policy and session settings (R-M3).
CREATE TABLE orgs (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    name_key             TEXT NOT NULL UNIQUE,
    delegated_auth_url   TEXT,
    min_password_length  BIGINT NOT NULL,
    complexity           TEXT NOT NULL,
    password_history     BIGINT NOT NULL,
    password_expiry_days BIGINT NOT NULL,
    lockout_attempts     BIGINT NOT NULL,
    lockout_minutes      BIGINT NOT NULL,
    session_seconds      BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE profiles (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    name                   TEXT NOT NULL,
    name_key               TEXT NOT NULL,
    api_enabled            BOOLEAN NOT NULL,
    api_only               BOOLEAN NOT NULL,
    password_never_expires BOOLEAN NOT NULL,
    sso_enabled            BOOLEAN NOT NULL,
    manage_users           BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL,
    UNIQUE (org_id, name_key)
);

-- Trusted IP ranges of an org (profile_id NULL) and login IP ranges of a profile.
CREATE TABLE ip_ranges (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    profile_id  TEXT REFERENCES profiles (id),
    start_ip    TEXT NOT NULL,
    end_ip      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ip_ranges_org ON ip_ranges (org_id, profile_id);

-- The one cross-org lookup: usernames are unique across all orgs (R-M1).
CREATE TABLE usernames (
    username TEXT PRIMARY KEY,
    org_id   TEXT NOT NULL,
    user_id  TEXT NOT NULL
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    profile_id          TEXT NOT NULL REFERENCES profiles (id),
    username            TEXT NOT NULL,
    email               TEXT NOT NULL,
    first_name          TEXT NOT NULL,
    last_name           TEXT NOT NULL,
    active              BOOLEAN NOT NULL,
    password_hash       TEXT,
    password_changed_at BIGINT,
    token_digest        TEXT,
    token_issued_at     BIGINT,
    failed_logins       BIGINT NOT NULL DEFAULT 0,
    locked_until        BIGINT,
    last_login_at       BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX users_org ON users (org_id, username);

-- Digests of every token ever issued: a value is never issued twice (R-T4).
CREATE TABLE token_history (
    digest    TEXT PRIMARY KEY,
    org_id    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX token_history_user ON token_history (org_id, user_id);

CREATE TABLE password_history (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (org_id, user_id, id);

-- One row per login attempt on any interface (R-L9). org_id and user_id are NULL for an
-- unknown username; the attempted username is not stored (people type passwords there).
CREATE TABLE login_history (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    org_id      TEXT,
    user_id     TEXT,
    login_at    BIGINT NOT NULL,
    source_ip   TEXT NOT NULL,
    login_type  TEXT NOT NULL,
    status      TEXT NOT NULL,
    client      TEXT NOT NULL,
    api_version TEXT NOT NULL,
    login_url   TEXT NOT NULL
);
CREATE INDEX login_history_org_time ON login_history (org_id, login_at, seq);
CREATE INDEX login_history_user_time ON login_history (org_id, user_id, login_at, seq);

-- Setup audit trail (R-M4): who, what, when; never a secret.
CREATE TABLE audit_trail (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    section    TEXT NOT NULL,
    display    TEXT NOT NULL,
    target_id  TEXT
);
CREATE INDEX audit_trail_org_time ON audit_trail (org_id, created_at, seq);

-- The mail outbox (R-E1). body never holds a secret; secret holds the token of a token mail
-- until it is delivered and is then set to NULL (R-T3).
CREATE TABLE outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    org_id          TEXT,
    created_at      BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    secret          TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_to ON outbox (to_addr);

-- Sessions (R-L10): only the digest of the session id is stored.
CREATE TABLE sessions (
    digest           TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    login_type       TEXT NOT NULL,
    source_ip        TEXT NOT NULL,
    password_expired BOOLEAN NOT NULL,
    oauth_client_id  TEXT
);
CREATE INDEX sessions_user ON sessions (org_id, user_id);

-- OAuth clients (connected apps): the consumer secret is stored as a digest only.
CREATE TABLE oauth_clients (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs (id),
    name                 TEXT NOT NULL,
    client_id            TEXT NOT NULL UNIQUE,
    secret_digest        TEXT NOT NULL,
    issue_refresh_tokens BOOLEAN NOT NULL,
    run_as_user_id       TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX oauth_clients_org ON oauth_clients (org_id);
