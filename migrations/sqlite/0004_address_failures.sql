-- Failed logins per source address (issue 5): one row per IPv4 address or IPv6 /64, holding the
-- current window. Every node reads and updates the same rows, so the limit holds across nodes.
CREATE TABLE address_failures (
    address      TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    -- Attempts refused while the address was over its limit (not written per attempt: see
    -- docs/security.md).
    refused      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX address_failures_window ON address_failures (window_start);
