//! A successful API login's writes in one step: the lockout counter reset (R-L5), the session
//! (R-L10) and the login-history row (R-L9), on the condition that the user's row is still as
//! the login decision saw it before the password hash ran.
//!
//! The general path (`service::login`) locks the user's row after the hash, reads it again,
//! decides on it and writes: six round trips on PostgreSQL, six hops to SQLite's thread. Most
//! logins succeed on a row nobody touched meanwhile; for them this does the same in one
//! statement on PostgreSQL and in one batch on SQLite, committed with the other one-step writes
//! waiting then (`store::writers`). When the row changed (a parallel failure counted, a
//! deactivation, a password or token reset, a lock), it writes nothing and says so, and the
//! caller takes the general path, which decides on the row as it is now.

use super::args::Args;
use super::integration::{RECORD_USAGE, RECORD_USAGE_CONFLICT};
use super::login_history::LoginHistoryRow;
use super::sessions::SessionRow;
use super::users::UserRow;
use super::writers::Job;
use super::{Db, Result};
use std::sync::LazyLock;

/// The writes of a success, made only if the user's row still holds every value the decision
/// read from `seen` (activity, profile, password and its age, token, failures, lock). True when
/// they were made; false when the row changed and nothing was written. Atomic on both
/// backends, in one round trip to the database (or to SQLite's thread).
pub async fn record_success_if_unchanged(
    db: &Db,
    seen: &UserRow,
    now: i64,
    session: &SessionRow,
    history: &LoginHistoryRow,
    usage: Option<&str>,
) -> Result<bool> {
    let args = Args::default()
        .bind(&seen.org_id)
        .bind(&seen.id)
        .bind(now)
        .bind(&seen.profile_id)
        .bind(&seen.password_hash)
        .bind(seen.password_changed_at)
        .bind(&seen.token_digest)
        .bind(seen.failed_logins)
        .bind(seen.locked_until)
        .bind(&session.digest)
        .bind(session.expires_at)
        .bind(&session.login_type)
        .bind(&session.source_ip)
        .bind(session.password_expired)
        .bind(&session.oauth_client_id)
        .bind(&history.id)
        .bind(&history.login_type)
        .bind(&history.status)
        .bind(&history.client)
        .bind(&history.api_version)
        .bind(&history.login_url)
        .bind(&history.credential)
        .bind(usage.unwrap_or_default());
    static PG: LazyLock<[String; 2]> = LazyLock::new(|| [false, true].map(success_pg));
    static SQLITE: LazyLock<[String; 2]> = LazyLock::new(|| [false, true].map(success_sqlite));
    let variant = usize::from(usage.is_some());
    one_step(db, &PG[variant], &SQLITE[variant], args).await
}

// The success's statements; $1 org, $2 user, $3 now; $4-$9 what was seen; $10- the session
// and the history row.
const GUARD: &str = "org_id = $1 AND id = $2 AND active AND profile_id = $4 \
    AND password_hash IS NOT DISTINCT FROM $5 AND password_changed_at IS NOT DISTINCT FROM $6 \
    AND token_digest IS NOT DISTINCT FROM $7 AND failed_logins = $8 \
    AND locked_until IS NOT DISTINCT FROM $9";
const RESET: &str = "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $3";
const SESSION: &str = "INSERT INTO sessions (digest, org_id, user_id, created_at, \
    last_seen_at, expires_at, login_type, source_ip, password_expired, oauth_client_id, \
    refresh_digest, integration_token_id)";
const SESSION_VALUES: &str = "$10, $1, $2, $3, $3, $11, $12, $13, $14, $15, NULL, NULL";
const HISTORY: &str = "INSERT INTO login_history (id, org_id, user_id, login_at, source_ip, \
    login_type, status, client, api_version, login_url, credential)";
const HISTORY_VALUES: &str = "$16, $1, $2, $3, $13, $17, $18, $19, $20, $21, $22";
// The usage inventory's one write (`store::integration`), made only for a login that used
// a credential the inventory tracks: $23 the credential, $19 the client.
const USAGE_VALUES: &str = "$1, $2, $23, $19, $13, $3, $3, 1";

/// The success on PostgreSQL, with or without the usage write.
fn success_pg(usage: bool) -> String {
    // One statement, so one round trip and atomic by itself: the inserts take their one
    // row from the update, and take none when the guard matched nothing.
    let usage = match usage {
        true => {
            format!(", c AS ({RECORD_USAGE} SELECT {USAGE_VALUES} FROM u {RECORD_USAGE_CONFLICT})")
        }
        // Every bound parameter must appear in the statement.
        false => ", c AS (SELECT $23::text)".to_string(),
    };
    format!(
        "WITH u AS ({RESET} WHERE {GUARD} RETURNING 1), \
         s AS ({SESSION} SELECT {SESSION_VALUES} FROM u), \
         h AS ({HISTORY} SELECT {HISTORY_VALUES} FROM u){usage} \
         SELECT count(*) FROM u"
    )
}

/// The success on SQLite, with or without the usage write.
fn success_sqlite(usage: bool) -> String {
    // Each insert runs only if the statement before it changed a row (`changes()`), so a
    // guard that matched nothing writes nothing; the last SELECT says whether the history
    // row (or the usage row after it), the chain's end, was written.
    let guard = GUARD.replace("IS NOT DISTINCT FROM", "IS");
    let usage = match usage {
        true => format!(
            "{RECORD_USAGE} SELECT {USAGE_VALUES} WHERE changes() = 1 \
             {RECORD_USAGE_CONFLICT}; "
        ),
        // Every bound parameter must appear; changes() still counts the history row.
        false => "SELECT $23 WHERE 0; ".to_string(),
    };
    format!(
        "{RESET} WHERE {guard}; \
         {SESSION} SELECT {SESSION_VALUES} WHERE changes() = 1; \
         {HISTORY} SELECT {HISTORY_VALUES} WHERE changes() = 1; \
         {usage}SELECT changes()"
    )
}

/// Runs a one-step write with the parameters `$args`: on PostgreSQL `$pg`, one statement
/// answering how many rows its guard matched (1 = written); on SQLite `$sqlite`, statements
/// that sqlx runs in order with the same numbered parameters (SQLite has no writing CTEs),
/// ending with `SELECT changes()` of the chain's last write, committed with the other one-step
/// writes waiting (`store::writers`).
async fn one_step(db: &Db, pg: &str, sqlite: &'static str, args: Args) -> Result<bool> {
    match db {
        Db::Postgres(pool) => {
            let n: i64 = args
                .bound_pg(sqlx::query_scalar(pg))
                .fetch_one(pool)
                .await?;
            Ok(n == 1)
        }
        Db::Sqlite(pool, line) => line.one_step(pool, Job { sql: sqlite, args }).await,
    }
}

/// What a login with an integration token writes when it succeeds: the session, the usage row
/// and the login-history row, in one step, on the condition that the token is still not
/// revoked and the user still active with the profile the decision saw. On PostgreSQL both rows
/// are read `FOR SHARE`, so a revocation or deactivation committing meanwhile is either waited
/// for (and then seen: nothing written) or waits for this write (and then ends its session);
/// SQLite's write lock does the same. False when nothing was written; the caller then decides
/// again under locks.
pub async fn record_integration_success(
    db: &Db,
    token_id: &str,
    profile_id: &str,
    now: i64,
    session: &SessionRow,
    history: &LoginHistoryRow,
) -> Result<bool> {
    // $1 org, $2 user, $3 now, $4 profile, $5 token; $6- the session; $11- the history row.
    const TOKEN: &str = "SELECT 1 FROM integration_tokens WHERE org_id = $1 AND id = $5 \
        AND revoked_at IS NULL";
    const USER: &str =
        "SELECT 1 FROM users WHERE org_id = $1 AND id = $2 AND active AND profile_id = $4";
    const SESSION: &str = "INSERT INTO sessions (digest, org_id, user_id, created_at, \
        last_seen_at, expires_at, login_type, source_ip, password_expired, oauth_client_id, \
        refresh_digest, integration_token_id) SELECT $6, $1, $2, $3, $3, $7, $8, $9, FALSE, \
        $10, NULL, $5";
    const HISTORY: &str = "INSERT INTO login_history (id, org_id, user_id, login_at, source_ip, \
        login_type, status, client, api_version, login_url, credential) \
        SELECT $11, $1, $2, $3, $9, $8, $12, $13, $14, $15, $16";
    const USAGE: &str = "SELECT $1, $2, $5, $13, $9, $3, $3, 1";
    let args = Args::default()
        .bind(&session.org_id)
        .bind(&session.user_id)
        .bind(now)
        .bind(profile_id)
        .bind(token_id)
        .bind(&session.digest)
        .bind(session.expires_at)
        .bind(&session.login_type)
        .bind(&session.source_ip)
        .bind(&session.oauth_client_id)
        .bind(&history.id)
        .bind(&history.status)
        .bind(&history.client)
        .bind(&history.api_version)
        .bind(&history.login_url)
        .bind(&history.credential);
    static PG: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH t AS ({TOKEN} FOR SHARE), u AS ({USER} FOR SHARE), ok AS (SELECT 1 FROM t, u), \
             s AS ({SESSION} FROM ok), h AS ({HISTORY} FROM ok), \
             c AS ({RECORD_USAGE} {USAGE} FROM ok {RECORD_USAGE_CONFLICT}) \
             SELECT count(*) FROM ok"
        )
    });
    static SQLITE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{SESSION} WHERE EXISTS ({TOKEN}) AND EXISTS ({USER}); \
             {HISTORY} WHERE changes() = 1; \
             {RECORD_USAGE} {USAGE} WHERE changes() = 1 {RECORD_USAGE_CONFLICT}; \
             SELECT changes()"
        )
    });
    one_step(db, &PG, &SQLITE, args).await
}
