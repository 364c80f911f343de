-- Decoy user rows (issue 14, R-L4): a login whose username matches no user locks and counts a
-- failure on one of these, chosen by the username, as a wrong password does on the user's row —
-- the same statements, on a table of the same shape, so the two make the same write and take
-- the same time. The columns are the users table's; no foreign keys, no index but the key.
CREATE TABLE login_decoys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    profile_id          TEXT NOT NULL,
    username            TEXT NOT NULL,
    email               TEXT NOT NULL,
    first_name          TEXT NOT NULL,
    last_name           TEXT NOT NULL,
    active              BOOLEAN NOT NULL,
    password_hash       TEXT,
    password_changed_at INTEGER,
    token_digest        TEXT,
    token_issued_at     INTEGER,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        INTEGER,
    last_login_at       INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
-- 64 rows, each the size of a real user's: an Argon2id PHC string's length, a digest's.
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 63)
INSERT INTO login_decoys (id, org_id, profile_id, username, email, first_name, last_name, active,
    password_hash, password_changed_at, token_digest, token_issued_at, failed_logins,
    locked_until, last_login_at, created_at, updated_at)
SELECT printf('decoy%010d', i), '00000000000!!!!', '00000000000!!!!',
    'decoy' || i || '@decoy.invalid', 'decoy' || i || '@decoy.invalid', 'Decoy', 'Decoy', TRUE,
    '$argon2id$v=19$m=19456,t=2,p=1$' || substr(hex(zeroblob(11)), 1, 22) || '$'
        || substr(hex(zeroblob(22)), 1, 43), 0,
    hex(zeroblob(32)), 0, 0, NULL, NULL, 0, 0
FROM n;
