//! Sessions (R-L10): stored by digest only.

use super::{Conn, Result, exec, q};

/// Ends every session of a user (deactivation, admin password reset); returns how many.
pub async fn delete_for_user(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<u64> {
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2";
    Ok(exec!(c, sql, org_id, user_id)?)
}

/// Ends every session of a user but one (a user's own password change keeps the session it
/// was made from).
pub async fn delete_others(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    keep_digest: &str,
) -> Result<u64> {
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2 AND digest <> $3";
    Ok(exec!(c, sql, org_id, user_id, keep_digest)?)
}

/// Sessions of a user that have not expired.
pub async fn count_for_user(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    now: i64,
) -> Result<i64> {
    Ok(q!(c, |e| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sessions WHERE org_id = $1 AND user_id = $2 AND expires_at > $3"
    )
    .bind(org_id)
    .bind(user_id)
    .bind(now)
    .fetch_one(e)
    .await)?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub digest: String,
    pub org_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub login_type: String,
    pub source_ip: String,
    pub password_expired: bool,
    pub oauth_client_id: Option<String>,
}

pub async fn insert(c: &mut Conn<'_>, s: &SessionRow) -> Result<()> {
    let sql = "INSERT INTO sessions (digest, org_id, user_id, created_at, last_seen_at, \
        expires_at, login_type, source_ip, password_expired, oauth_client_id) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    exec!(
        c,
        sql,
        &s.digest,
        &s.org_id,
        &s.user_id,
        s.created_at,
        s.last_seen_at,
        s.expires_at,
        &s.login_type,
        &s.source_ip,
        s.password_expired,
        &s.oauth_client_id
    )?;
    Ok(())
}
