//! Profiles and their permissions.

use super::{Conn, Result, exec, on_backend, prefixed, row_decoder};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub api_enabled: bool,
    pub api_only: bool,
    pub password_never_expires: bool,
    pub sso_enabled: bool,
    pub manage_users: bool,
    pub created_at: i64,
}

pub(crate) const COLUMNS: &str = "id, org_id, name, api_enabled, api_only, password_never_expires, \
    sso_enabled, manage_users, created_at";

pub async fn insert(c: &mut Conn<'_>, p: &ProfileRow) -> Result<()> {
    let sql = "INSERT INTO profiles (id, org_id, name, name_key, api_enabled, api_only, \
        password_never_expires, sso_enabled, manage_users, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    exec!(
        c,
        sql,
        &p.id,
        &p.org_id,
        &p.name,
        p.name.to_lowercase(),
        p.api_enabled,
        p.api_only,
        p.password_never_expires,
        p.sso_enabled,
        p.manage_users,
        p.created_at
    )?;
    Ok(())
}

pub async fn get(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<Option<ProfileRow>> {
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE org_id = $1 AND id = $2");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ProfileRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// The profile row, locked until the transaction ends (see `users::get_for_update`).
pub async fn get_for_update(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
) -> Result<Option<ProfileRow>> {
    let lock = c.for_update();
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE org_id = $1 AND id = $2 {lock}");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ProfileRow>(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

pub async fn find_by_name(
    c: &mut Conn<'_>,
    org_id: &str,
    name: &str,
) -> Result<Option<ProfileRow>> {
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE org_id = $1 AND name_key = $2");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ProfileRow>(&sql)
        .bind(org_id)
        .bind(name.to_lowercase())
        .fetch_optional(e)
        .await)?)
}

pub async fn list(c: &mut Conn<'_>, org_id: &str) -> Result<Vec<ProfileRow>> {
    let sql = format!("SELECT {COLUMNS} FROM profiles WHERE org_id = $1 ORDER BY name_key");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, ProfileRow>(&sql)
        .bind(org_id)
        .fetch_all(e)
        .await)?)
}

/// Changes a profile's permissions.
pub async fn update_permissions(c: &mut Conn<'_>, p: &ProfileRow) -> Result<()> {
    let sql = "UPDATE profiles SET api_enabled = $3, api_only = $4, password_never_expires = $5, \
        sso_enabled = $6, manage_users = $7 WHERE org_id = $1 AND id = $2";
    exec!(
        c,
        sql,
        &p.org_id,
        &p.id,
        p.api_enabled,
        p.api_only,
        p.password_never_expires,
        p.sso_enabled,
        p.manage_users
    )?;
    Ok(())
}

/// How many users of the org have a profile with "manage users" and are active.
pub async fn count_active_admins(c: &mut Conn<'_>, org_id: &str) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM users u JOIN profiles p ON p.org_id = u.org_id AND p.id = u.profile_id \
        WHERE u.org_id = $1 AND u.active AND p.manage_users";
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(sql)
        .bind(org_id)
        .fetch_one(e)
        .await)?)
}

row_decoder! {
    /// A profile row from a join whose profile columns are selected as `p_<column>`.
    pub(crate) fn decode_prefixed(r) -> ProfileRow {
        Ok(prefixed!(
            r,
            "p_",
            ProfileRow {
                id,
                org_id,
                name,
                api_enabled,
                api_only,
                password_never_expires,
                sso_enabled,
                manage_users,
                created_at,
            }
        ))
    }
}
