//! Crash and outage, with `keyward serve` as a real process (issue 5): a SIGKILL in the middle of
//! a stream of token resets and password changes loses no mail the server acknowledged, and
//! after the restart each user's last mailed token, with their password, is the one that logs in
//! (R-E1, R-T5, R-T6); a PostgreSQL restart under a steady load of logins makes the same server
//! answer 503 — never a 500 or a hang — while the database is away, and log people in again once
//! it is back, without restarting keyward. (An SMTP outage is tests/smtp.rs's.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod kill;
mod postgres;
mod support;
