//! Users, their credentials (password hash, token digest: never the token), password and token
//! history, and the lockout counter.

use super::orgs::{self, OrgRow};
use super::profiles::{self, ProfileRow};
use super::ranges::{self, IpRangeRow};
use super::{Conn, Result, StoreError, aliased, exec, on_backend, row_decoder};
use sqlx::FromRow;
use std::sync::LazyLock;

/// No `Debug`: it holds a secret or a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub profile_id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<i64>,
    pub token_digest: Option<String>,
    pub token_issued_at: Option<i64>,
    /// The token a reset replaced, valid for the org's token grace window after
    /// `token_issued_at`; None after a password change.
    pub previous_token_digest: Option<String>,
    /// Until when the previous token is honoured.
    pub previous_token_until: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    /// "First Last", or whichever of the two is set.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

pub(crate) const COLUMNS: &str = "id, org_id, profile_id, username, email, first_name, last_name, active, \
    password_hash, password_changed_at, token_digest, token_issued_at, previous_token_digest, \
    previous_token_until, failed_logins, locked_until, last_login_at, created_at, updated_at";

/// Inserts the user and claims the username across all orgs (R-M1); a taken username is
/// `StoreError::Conflict("username")`.
pub async fn insert(c: &mut Conn<'_>, u: &UserRow) -> Result<()> {
    let claim = "INSERT INTO usernames (username, org_id, user_id) VALUES ($1, $2, $3)";
    let r = exec!(c, claim, &u.username, &u.org_id, &u.id).map(|_| ());
    match r.map_err(StoreError::from) {
        Err(StoreError::Conflict(_)) => return Err(StoreError::Conflict("username".into())),
        other => other?,
    }
    let sql = "INSERT INTO users (id, org_id, profile_id, username, email, first_name, last_name, \
        active, failed_logins, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)";
    exec!(
        c,
        sql,
        &u.id,
        &u.org_id,
        &u.profile_id,
        &u.username,
        &u.email,
        &u.first_name,
        &u.last_name,
        u.active,
        u.created_at
    )?;
    Ok(())
}

/// Looks a username up across all orgs: the one cross-org query.
pub async fn find_by_username(c: &mut Conn<'_>, username: &str) -> Result<Option<UserRow>> {
    let owner = on_backend!(c, |e| sqlx::query_as::<_, (String, String)>(
        "SELECT org_id, user_id FROM usernames WHERE username = $1"
    )
    .bind(username)
    .fetch_optional(e)
    .await)?;
    match owner {
        Some((org_id, user_id)) => get(c, &org_id, &user_id).await,
        None => Ok(None),
    }
}

/// A user with the org, profile and IP ranges a login decision needs.
#[derive(Clone)]
pub struct UserForLogin {
    pub user: UserRow,
    pub org: OrgRow,
    pub profile: ProfileRow,
    /// The org's trusted ranges (`profile_id` None) and the profile's login ranges.
    pub ranges: Vec<IpRangeRow>,
}

/// What a login reads before its hash, in one statement: its source address's failed-login
/// window and the user with the username.
#[derive(Clone)]
pub struct LoginLookup {
    /// The address's `(window_start, failures)`, if it has a row.
    pub address_window: Option<(i64, i64)>,
    pub user: Option<UserForLogin>,
    /// The integration token with the digest asked for, in any org.
    pub integration_token: Option<super::integration::IntegrationTokenRow>,
}

/// The source address's failed-login row (`address`: its key, None for an exempt address) and
/// the user with this username, in any org, with its org, profile and IP ranges: one statement
/// (the address's row, the username's claim, primary-key lookups, the org's ranges), where
/// reading them one by one took seven round trips on every login. One row per range (one with
/// no range columns when there are none, one with no user columns when there is no user); the
/// user's columns keep their names, the address's, org's, profile's and ranges' are prefixed
/// (`a_`, `o_`, `p_`, `r_`). With `integration_digest`, the integration token with that digest
/// comes along (`t_`), so a login with one makes this read and no other.
pub async fn find_for_login(
    c: &mut Conn<'_>,
    username: &str,
    address: Option<&str>,
    integration_digest: Option<&str>,
) -> Result<LoginLookup> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT a.window_start AS a_window_start, a.failures AS a_failures, {}, f.* \
             FROM (SELECT 1 AS one) x \
             LEFT JOIN address_failures a ON a.address = $2 \
             LEFT JOIN integration_tokens t ON t.digest = $3 \
             LEFT JOIN (SELECT {}, {}, {}, {} FROM usernames n \
               JOIN users u ON u.org_id = n.org_id AND u.id = n.user_id \
               JOIN orgs o ON o.id = u.org_id \
               JOIN profiles p ON p.org_id = u.org_id AND p.id = u.profile_id \
               LEFT JOIN ip_ranges r ON r.org_id = u.org_id \
                 AND (r.profile_id IS NULL OR r.profile_id = u.profile_id) \
               WHERE n.username = $1) f ON 1 = 1 \
             ORDER BY f.r_created_at, f.r_id",
            aliased("t", super::integration::COLUMNS, "t_"),
            aliased("u", COLUMNS, ""),
            aliased("o", orgs::COLUMNS, "o_"),
            aliased("p", profiles::COLUMNS, "p_"),
            aliased("r", ranges::COLUMNS, "r_"),
        )
    });
    Ok(on_backend!(c, |e| sqlx::query(&SQL)
        .bind(username)
        .bind(address)
        .bind(integration_digest)
        .fetch_all(e)
        .await
        .and_then(|rows| decode_for_login(&rows)))?)
}

row_decoder! {
fn decode_for_login(rows: &[R]) -> LoginLookup {
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound);
    };
    let address_window = match (
        sqlx::Row::try_get::<Option<i64>, _>(first, "a_window_start")?,
        sqlx::Row::try_get::<Option<i64>, _>(first, "a_failures")?,
    ) {
        (Some(started), Some(failures)) => Some((started, failures)),
        _ => None,
    };
    let integration_token = super::integration::decode_prefixed(first)?;
    if sqlx::Row::try_get::<Option<String>, _>(first, "id")?.is_none() {
        return Ok(LoginLookup { address_window, user: None, integration_token });
    }
    let mut ranges = Vec::new();
    for r in rows {
        if let Some(range) = ranges::decode_prefixed(r)? {
            ranges.push(range);
        }
    }
    let user = UserForLogin {
        user: UserRow::from_row(first)?,
        org: orgs::decode_prefixed(first)?,
        profile: profiles::decode_prefixed(first)?,
        ranges,
    };
    Ok(LoginLookup { address_window, user: Some(user), integration_token })
}
}

pub async fn get(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE org_id = $1 AND id = $2");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UserRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// The user row, locked until the transaction ends (PostgreSQL `FOR UPDATE`; on SQLite the
/// write transaction already excludes every other writer). Decisions that read a row and then
/// write it read it this way, so two nodes never act on the same stale row.
pub async fn get_for_update(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<Option<UserRow>> {
    get_for_update_in(c, "users", org_id, id).await
}

async fn get_for_update_in(
    c: &mut Conn<'_>,
    table: &'static str,
    org_id: &str,
    id: &str,
) -> Result<Option<UserRow>> {
    let lock = c.for_update();
    let sql = format!("SELECT {COLUMNS} FROM {table} WHERE org_id = $1 AND id = $2 {lock}");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UserRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// A user by id when the org is not known yet (CLI input); ids are unique across orgs.
pub async fn get_any_org(c: &mut Conn<'_>, id: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

pub async fn list(c: &mut Conn<'_>, org_id: &str) -> Result<Vec<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE org_id = $1 ORDER BY username");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UserRow>(&sql)
        .bind(org_id)
        .fetch_all(e)
        .await)?)
}

/// Up to `limit` users of an org in username order, after `after` (a username: the next page),
/// whose username, email or name contains `query` (case-insensitive). Uses the
/// (org_id, username) index; a query scans the org.
pub async fn search(
    c: &mut Conn<'_>,
    org_id: &str,
    query: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>> {
    let pattern = query.map(|q| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE org_id = $1 AND ($2 IS NULL OR username > $2) \
         AND ($3 IS NULL OR lower(username) LIKE $3 ESCAPE '\\' OR lower(email) LIKE $3 ESCAPE '\\' \
         OR lower(first_name || ' ' || last_name) LIKE $3 ESCAPE '\\') \
         ORDER BY username LIMIT $4"
    );
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UserRow>(&sql)
        .bind(org_id)
        .bind(after)
        .bind(&pattern)
        .bind(limit)
        .fetch_all(e)
        .await)?)
}

/// Sets a new password hash and records the old one in the password history.
pub async fn set_password(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    hash: &str,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE users SET password_hash = $3, password_changed_at = $4, updated_at = $4 \
        WHERE org_id = $1 AND id = $2";
    exec!(c, sql, org_id, id, hash, now)?;
    let hist = "INSERT INTO password_history (org_id, user_id, password_hash, created_at) \
        VALUES ($1, $2, $3, $4)";
    exec!(c, hist, org_id, id, hash, now)?;
    Ok(())
}

/// Replaces the hash of the current password (parameter upgrade on login); history is untouched.
pub async fn rehash_password(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    old_hash: &str,
    new_hash: &str,
) -> Result<()> {
    let sql = "UPDATE users SET password_hash = $4 WHERE org_id = $1 AND id = $2 \
        AND password_hash = $3";
    exec!(c, sql, org_id, id, old_hash, new_hash)?;
    Ok(())
}

/// The last `n` password hashes, newest first (the current one included).
pub async fn recent_password_hashes(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    n: i64,
) -> Result<Vec<String>> {
    let sql = "SELECT password_hash FROM password_history WHERE org_id = $1 AND user_id = $2 \
        ORDER BY id DESC LIMIT $3";
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, String>(sql)
        .bind(org_id)
        .bind(id)
        .bind(n)
        .fetch_all(e)
        .await)?)
}

/// Keeps only the newest `keep` password-history rows of a user (old hashes are still
/// password-equivalent for offline guessing; keep no more than the policy needs).
pub async fn prune_password_history(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    keep: i64,
) -> Result<()> {
    let sql = "DELETE FROM password_history WHERE org_id = $1 AND user_id = $2 AND id NOT IN \
        (SELECT id FROM password_history WHERE org_id = $1 AND user_id = $2 \
         ORDER BY id DESC LIMIT $3)";
    exec!(c, sql, org_id, id, keep)?;
    Ok(())
}

/// Records a newly issued token: its digest joins the history under the unique constraint
/// (R-T4) and becomes the user's current digest. Returns false, changing nothing, when the
/// digest was ever issued before; the caller then generates another token. (`ON CONFLICT DO
/// NOTHING` rather than a failing insert, so the surrounding PostgreSQL transaction survives.)
pub async fn set_token(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    digest: &str,
    reason: &str,
    previous_until: Option<i64>,
    now: i64,
) -> Result<bool> {
    let hist = "INSERT INTO token_history (digest, org_id, user_id, issued_at, reason) \
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING";
    let n = exec!(c, hist, digest, org_id, id, now, reason)?;
    if n == 0 {
        return Ok(false);
    }
    // The right-hand side reads the row as it was: the replaced token becomes the previous one,
    // honoured until `previous_until` (none: it stops now).
    let sql = "UPDATE users SET previous_token_digest = CASE WHEN $5 > $4 THEN token_digest \
        ELSE NULL END, previous_token_until = CASE WHEN $5 > $4 THEN $5 ELSE NULL END, \
        token_digest = $3, token_issued_at = $4, updated_at = $4 WHERE org_id = $1 AND id = $2";
    exec!(
        c,
        sql,
        org_id,
        id,
        digest,
        now,
        previous_until.unwrap_or(now)
    )?;
    Ok(true)
}

/// How many tokens a user has been issued (for `user show`).
pub async fn token_count(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<i64> {
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM token_history WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org_id)
    .bind(id)
    .fetch_one(e)
    .await)?)
}

pub async fn set_active(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    active: bool,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE users SET active = $3, updated_at = $4 WHERE org_id = $1 AND id = $2";
    exec!(c, sql, org_id, id, active, now)?;
    Ok(())
}

/// Clears the lockout and the failure counter. Returns whether the user was locked.
pub async fn unlock(c: &mut Conn<'_>, org_id: &str, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = $3 \
        WHERE org_id = $1 AND id = $2 AND locked_until IS NOT NULL AND locked_until > $3";
    let n = exec!(c, sql, org_id, id, now)?;
    let reset = "UPDATE users SET failed_logins = 0, locked_until = NULL \
        WHERE org_id = $1 AND id = $2";
    exec!(c, reset, org_id, id)?;
    Ok(n > 0)
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureRecorded {
    /// The user was already locked (by a parallel attempt); nothing changed.
    AlreadyLocked,
    /// Counted; `attempts` consecutive failures so far.
    Counted { attempts: i64 },
    /// This failure reached the limit: the user is now locked.
    LockEngaged,
}

/// One more consecutive failure, in one atomic statement (R-L5): the increment, the comparison
/// with the limit and the lock happen in the database, so parallel attempts on any number of
/// nodes lock the user at exactly `max_attempts` failures. `max_attempts` 0 = no limit.
pub async fn record_failure(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    max_attempts: i64,
    lock_until: i64,
    now: i64,
) -> Result<FailureRecorded> {
    record_failure_in(c, "users", org_id, id, max_attempts, lock_until, now).await
}

async fn record_failure_in(
    c: &mut Conn<'_>,
    table: &'static str,
    org_id: &str,
    id: &str,
    max_attempts: i64,
    lock_until: i64,
    now: i64,
) -> Result<FailureRecorded> {
    let sql = format!(
        "UPDATE {table} SET \
          failed_logins = CASE WHEN $3 > 0 AND failed_logins + 1 >= $3 THEN 0 \
                               ELSE failed_logins + 1 END, \
          locked_until  = CASE WHEN $3 > 0 AND failed_logins + 1 >= $3 THEN $4 \
                               ELSE locked_until END \
        WHERE org_id = $1 AND id = $2 AND (locked_until IS NULL OR locked_until <= $5) \
        RETURNING failed_logins, locked_until"
    );
    let row = on_backend!(c, |e| sqlx::query_as::<_, (i64, Option<i64>)>(&sql)
        .bind(org_id)
        .bind(id)
        .bind(max_attempts)
        .bind(lock_until)
        .bind(now)
        .fetch_optional(e)
        .await)?;
    Ok(match row {
        None => FailureRecorded::AlreadyLocked,
        Some((_, Some(until))) if until > now => FailureRecorded::LockEngaged,
        Some((attempts, _)) => FailureRecorded::Counted { attempts },
    })
}

/// How many decoy rows the migration made.
const DECOYS: u32 = 64;

/// What a login whose username matches no user writes, in its transaction: decoy row `pick`
/// (the caller derives it from the username, so one username always meets the same row, as
/// a user would) is locked and counts a failure — the statements a wrong password runs on its
/// user's row, on a table of the same shape, so the two take the same time (R-L4). Decoys
/// never lock (no limit), so the statement always writes.
pub async fn decoy_failure(c: &mut Conn<'_>, pick: u32, now: i64) -> Result<()> {
    let id = format!("decoy{:010}", pick % DECOYS);
    get_for_update_in(c, "login_decoys", super::NO_ID, &id).await?;
    record_failure_in(c, "login_decoys", super::NO_ID, &id, 0, 0, now).await?;
    Ok(())
}

/// Rewrites the user's row unchanged: the write a refusal that changes no counter makes, so it
/// costs what a counted failure's `UPDATE` costs (R-L4: a locked or inactive user must not
/// answer faster than a wrong password).
pub async fn rewrite_unchanged(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<()> {
    // `record_failure`'s statement, CASEs and RETURNING included, with an increment of 0.
    let sql = "UPDATE users SET \
          failed_logins = CASE WHEN $3 > 0 AND failed_logins + $3 >= $4 THEN 0 \
                               ELSE failed_logins + $3 END, \
          locked_until  = CASE WHEN $3 > 0 AND failed_logins + $3 >= $4 THEN $5 \
                               ELSE locked_until END \
        WHERE org_id = $1 AND id = $2 \
        RETURNING failed_logins, locked_until";
    on_backend!(c, |e| sqlx::query_as::<_, (i64, Option<i64>)>(sql)
        .bind(org_id)
        .bind(id)
        .bind(0_i64)
        .bind(0_i64)
        .bind(0_i64)
        .fetch_optional(e)
        .await)?;
    Ok(())
}

/// A success resets the counter, unless a parallel attempt locked the user in the meantime;
/// then the success does not count and this returns false (R-L5).
pub async fn record_success(c: &mut Conn<'_>, org_id: &str, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $3 \
        WHERE org_id = $1 AND id = $2 AND (locked_until IS NULL OR locked_until <= $3)";
    let n = exec!(c, sql, org_id, id, now)?;
    Ok(n > 0)
}

/// Profile, name and email changes.
pub async fn update_details(c: &mut Conn<'_>, u: &UserRow, now: i64) -> Result<()> {
    let sql = "UPDATE users SET profile_id = $3, email = $4, first_name = $5, last_name = $6, \
        updated_at = $7 WHERE org_id = $1 AND id = $2";
    exec!(
        c,
        sql,
        &u.org_id,
        &u.id,
        &u.profile_id,
        &u.email,
        &u.first_name,
        &u.last_name,
        now
    )?;
    Ok(())
}

/// After an org shortened its token grace window: every previous token is honoured for at most
/// `grace_ms` after its reset, for good (lengthening the window later revives none).
pub async fn clip_previous_tokens(c: &mut Conn<'_>, org_id: &str, grace_ms: i64) -> Result<()> {
    let sql = "UPDATE users SET previous_token_until = token_issued_at + $2 \
        WHERE org_id = $1 AND previous_token_until > token_issued_at + $2";
    exec!(c, sql, org_id, grace_ms)?;
    Ok(())
}
