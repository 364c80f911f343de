//! Identity verification for the web UI (R-U1, R-U2): verified browsers, pending challenges,
//! TOTP authenticators and recovery codes. Everything a browser holds is stored as a digest.

use super::{Conn, Result, exec, on_backend};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerifiedBrowserRow {
    pub digest: String,
    pub org_id: String,
    pub user_id: String,
    pub source_ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

pub async fn insert_browser(c: &mut Conn<'_>, r: &VerifiedBrowserRow) -> Result<()> {
    let sql = "INSERT INTO verified_browsers (digest, org_id, user_id, source_ip, user_agent, \
        created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
        ON CONFLICT (digest) DO UPDATE SET source_ip = $4, user_agent = $5, last_used_at = $7";
    exec!(
        c,
        sql,
        &r.digest,
        &r.org_id,
        &r.user_id,
        &r.source_ip,
        &r.user_agent,
        r.created_at,
        r.last_used_at
    )?;
    Ok(())
}

pub async fn browser_verified(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    digest: &str,
) -> Result<bool> {
    let sql = "SELECT COUNT(*) FROM verified_browsers \
        WHERE digest = $1 AND org_id = $2 AND user_id = $3";
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(sql)
        .bind(digest)
        .bind(org_id)
        .bind(user_id)
        .fetch_one(e)
        .await)?
        > 0)
}

pub async fn list_browsers(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
) -> Result<Vec<VerifiedBrowserRow>> {
    let sql = "SELECT digest, org_id, user_id, source_ip, user_agent, created_at, last_used_at \
        FROM verified_browsers WHERE org_id = $1 AND user_id = $2 ORDER BY last_used_at DESC";
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, VerifiedBrowserRow>(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(e)
            .await
    })?)
}

/// Forgets every verified browser of a user (password reset by an admin, "forget my browsers").
pub async fn delete_browsers(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<u64> {
    let sql = "DELETE FROM verified_browsers WHERE org_id = $1 AND user_id = $2";
    Ok(exec!(c, sql, org_id, user_id)?)
}

/// No `Debug`: it holds a secret or a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct ChallengeRow {
    pub digest: String,
    pub org_id: String,
    pub user_id: String,
    /// `email` or `totp`.
    pub method: String,
    pub code_digest: Option<String>,
    pub attempts: i64,
    pub source_ip: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_challenge(c: &mut Conn<'_>, r: &ChallengeRow) -> Result<()> {
    let sql = "INSERT INTO identity_challenges (digest, org_id, user_id, method, code_digest, \
        attempts, source_ip, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    exec!(
        c,
        sql,
        &r.digest,
        &r.org_id,
        &r.user_id,
        &r.method,
        &r.code_digest,
        r.attempts,
        &r.source_ip,
        r.created_at,
        r.expires_at
    )?;
    Ok(())
}

const CHALLENGE: &str = "SELECT digest, org_id, user_id, method, code_digest, attempts, \
    source_ip, created_at, expires_at FROM identity_challenges WHERE digest = $1 AND expires_at > $2";

/// The live challenge with this digest.
pub async fn get_challenge(
    c: &mut Conn<'_>,
    digest: &str,
    now: i64,
) -> Result<Option<ChallengeRow>> {
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ChallengeRow>(
        CHALLENGE
    )
    .bind(digest)
    .bind(now)
    .fetch_optional(e)
    .await)?)
}

/// The live challenge with this digest, locked for the attempt (PostgreSQL; SQLite's write
/// transaction already excludes other writers). Lock the user's row first: a login locks the
/// user, then replaces the challenges, so this order cannot deadlock with it.
pub async fn get_challenge_for_update(
    c: &mut Conn<'_>,
    digest: &str,
    now: i64,
) -> Result<Option<ChallengeRow>> {
    let sql = format!("{CHALLENGE} {}", c.for_update());
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ChallengeRow>(&sql)
        .bind(digest)
        .bind(now)
        .fetch_optional(e)
        .await)?)
}

pub async fn count_challenge_attempt(c: &mut Conn<'_>, digest: &str) -> Result<()> {
    let sql = "UPDATE identity_challenges SET attempts = attempts + 1 WHERE digest = $1";
    exec!(c, sql, digest)?;
    Ok(())
}

pub async fn delete_challenge(c: &mut Conn<'_>, digest: &str) -> Result<()> {
    exec!(
        c,
        "DELETE FROM identity_challenges WHERE digest = $1",
        digest
    )?;
    Ok(())
}

/// A new login replaces the user's earlier pending challenges: only the latest code works.
pub async fn delete_challenges_of(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<()> {
    let sql = "DELETE FROM identity_challenges WHERE org_id = $1 AND user_id = $2";
    exec!(c, sql, org_id, user_id)?;
    Ok(())
}

pub async fn delete_expired_challenges(c: &mut Conn<'_>, now: i64) -> Result<u64> {
    let sql = "DELETE FROM identity_challenges WHERE expires_at <= $1";
    Ok(exec!(c, sql, now)?)
}

/// No `Debug`: it holds a secret or a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct TotpRow {
    pub org_id: String,
    pub user_id: String,
    /// Base32, as authenticator apps take it.
    pub secret: String,
    pub confirmed: bool,
    pub last_step: i64,
    pub created_at: i64,
    /// The digest of the session that started a pending enrolment (None once confirmed).
    pub started_by: Option<String>,
}

pub async fn get_totp(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<Option<TotpRow>> {
    let base = "SELECT org_id, user_id, secret, confirmed, last_step, created_at, started_by \
        FROM totp_factors WHERE org_id = $1 AND user_id = $2";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, TotpRow>(base)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(e)
        .await)?)
}

/// Starts (or restarts) an enrolment: an unconfirmed authenticator replaces any earlier one.
pub async fn put_totp(c: &mut Conn<'_>, r: &TotpRow) -> Result<()> {
    let sql = "INSERT INTO totp_factors (org_id, user_id, secret, confirmed, last_step, \
        created_at, started_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
        ON CONFLICT (org_id, user_id) DO UPDATE \
        SET secret = $3, confirmed = $4, last_step = $5, created_at = $6, started_by = $7";
    exec!(
        c,
        sql,
        &r.org_id,
        &r.user_id,
        &r.secret,
        r.confirmed,
        r.last_step,
        r.created_at,
        &r.started_by
    )?;
    Ok(())
}

/// Accepts a code of time step `step` once: true when no code of this or a later step was
/// accepted before (a replayed code fails), also marking the authenticator confirmed.
pub async fn use_totp_step(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    step: i64,
) -> Result<bool> {
    let sql = "UPDATE totp_factors SET last_step = $3, confirmed = TRUE, started_by = NULL \
        WHERE org_id = $1 AND user_id = $2 AND last_step < $3";
    Ok(exec!(c, sql, org_id, user_id, step)? > 0)
}

pub async fn delete_totp(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<bool> {
    let sql = "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2";
    exec!(c, sql, org_id, user_id)?;
    let sql = "DELETE FROM totp_factors WHERE org_id = $1 AND user_id = $2";
    Ok(exec!(c, sql, org_id, user_id)? > 0)
}

pub async fn replace_recovery_codes(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    digests: &[String],
    now: i64,
) -> Result<()> {
    let sql = "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2";
    exec!(c, sql, org_id, user_id)?;
    for d in digests {
        let sql = "INSERT INTO recovery_codes (digest, org_id, user_id, created_at) \
            VALUES ($1, $2, $3, $4)";
        exec!(c, sql, d, org_id, user_id, now)?;
    }
    Ok(())
}

/// Uses up a recovery code: true when it existed for this user.
pub async fn use_recovery_code(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    digest: &str,
) -> Result<bool> {
    let sql = "DELETE FROM recovery_codes WHERE digest = $1 AND org_id = $2 AND user_id = $3";
    Ok(exec!(c, sql, digest, org_id, user_id)? > 0)
}

pub async fn count_recovery_codes(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM recovery_codes WHERE org_id = $1 AND user_id = $2";
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(sql)
        .bind(org_id)
        .bind(user_id)
        .fetch_one(e)
        .await)?)
}

/// Records a verified browser's use at a login.
pub async fn touch_browser(
    c: &mut Conn<'_>,
    digest: &str,
    source_ip: &str,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE verified_browsers SET last_used_at = $3, source_ip = $2 WHERE digest = $1";
    exec!(c, sql, digest, source_ip, now)?;
    Ok(())
}
