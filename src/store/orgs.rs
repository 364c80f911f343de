//! Orgs and their policy.

use super::{Conn, Result, exec, on_backend, prefixed, row_decoder};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub delegated_auth_url: Option<String>,
    pub min_password_length: i64,
    pub complexity: String,
    pub password_history: i64,
    pub password_expiry_days: i64,
    pub lockout_attempts: i64,
    pub lockout_minutes: i64,
    pub session_seconds: i64,
    pub session_max_seconds: i64,
    pub integration_max_days: i64,
    pub integration_grace_hours: i64,
    /// Days before expiry that reminders go out, comma-separated, largest first.
    pub integration_reminder_days: String,
    pub token_grace_hours: i64,
    pub created_at: i64,
}

pub(crate) const COLUMNS: &str = "id, name, delegated_auth_url, min_password_length, complexity, \
    password_history, password_expiry_days, lockout_attempts, lockout_minutes, session_seconds, \
    session_max_seconds, integration_max_days, integration_grace_hours, integration_reminder_days, \
    token_grace_hours, created_at";

pub async fn insert(c: &mut Conn<'_>, org: &OrgRow) -> Result<()> {
    let sql = "INSERT INTO orgs (id, name, name_key, delegated_auth_url, min_password_length, \
        complexity, password_history, password_expiry_days, lockout_attempts, lockout_minutes, \
        session_seconds, session_max_seconds, integration_max_days, integration_grace_hours, \
        integration_reminder_days, token_grace_hours, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)";
    exec!(
        c,
        sql,
        &org.id,
        &org.name,
        org.name.to_lowercase(),
        &org.delegated_auth_url,
        org.min_password_length,
        &org.complexity,
        org.password_history,
        org.password_expiry_days,
        org.lockout_attempts,
        org.lockout_minutes,
        org.session_seconds,
        org.session_max_seconds,
        org.integration_max_days,
        org.integration_grace_hours,
        &org.integration_reminder_days,
        org.token_grace_hours,
        org.created_at
    )?;
    Ok(())
}

pub async fn get(c: &mut Conn<'_>, id: &str) -> Result<Option<OrgRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orgs WHERE id = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OrgRow>(&sql)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// The org row, locked until the transaction ends (see `users::get_for_update`).
pub async fn get_for_update(c: &mut Conn<'_>, id: &str) -> Result<Option<OrgRow>> {
    let lock = c.for_update();
    let sql = format!("SELECT {COLUMNS} FROM orgs WHERE id = $1 {lock}");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OrgRow>(&sql)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// Org names are unique regardless of case.
pub async fn find_by_name(c: &mut Conn<'_>, name: &str) -> Result<Option<OrgRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orgs WHERE name_key = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OrgRow>(&sql)
        .bind(name.to_lowercase())
        .fetch_optional(e)
        .await)?)
}

pub async fn list(c: &mut Conn<'_>) -> Result<Vec<OrgRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orgs ORDER BY created_at, name_key");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OrgRow>(&sql)
        .fetch_all(e)
        .await)?)
}

pub async fn count(c: &mut Conn<'_>) -> Result<i64> {
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM orgs"
    )
    .fetch_one(e)
    .await)?)
}

pub async fn update_policy(c: &mut Conn<'_>, org: &OrgRow, now: i64) -> Result<()> {
    let sql = "UPDATE orgs SET min_password_length = $2, complexity = $3, password_history = $4, \
        password_expiry_days = $5, lockout_attempts = $6, lockout_minutes = $7, \
        session_seconds = $8, session_max_seconds = $9, integration_max_days = $10, \
        integration_grace_hours = $11, integration_reminder_days = $12, token_grace_hours = $13, \
        updated_at = $14 WHERE id = $1";
    exec!(
        c,
        sql,
        &org.id,
        org.min_password_length,
        &org.complexity,
        org.password_history,
        org.password_expiry_days,
        org.lockout_attempts,
        org.lockout_minutes,
        org.session_seconds,
        org.session_max_seconds,
        org.integration_max_days,
        org.integration_grace_hours,
        &org.integration_reminder_days,
        org.token_grace_hours,
        now
    )?;
    Ok(())
}

pub async fn set_delegated_auth_url(
    c: &mut Conn<'_>,
    org_id: &str,
    url: Option<&str>,
    now: i64,
) -> Result<()> {
    let sql = "UPDATE orgs SET delegated_auth_url = $2, updated_at = $3 WHERE id = $1";
    exec!(c, sql, org_id, url, now)?;
    Ok(())
}

row_decoder! {
    /// An org row from a join whose org columns are selected as `o_<column>`
    /// ([`super::aliased`]`("o", COLUMNS, "o_")`).
    pub(crate) fn decode_prefixed(r) -> OrgRow {
        Ok(prefixed!(
            r,
            "o_",
            OrgRow {
                id,
                name,
                delegated_auth_url,
                min_password_length,
                complexity,
                password_history,
                password_expiry_days,
                lockout_attempts,
                lockout_minutes,
                session_seconds,
                session_max_seconds,
                integration_max_days,
                integration_grace_hours,
                integration_reminder_days,
                token_grace_hours,
                created_at,
            }
        ))
    }
}
