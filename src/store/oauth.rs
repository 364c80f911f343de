//! OAuth clients (connected apps). The consumer secret is stored as a digest.

use super::{Conn, Result, exec, on_backend};

/// No `Debug`: it holds a secret or a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct OAuthClientRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub client_id: String,
    pub secret_digest: String,
    pub issue_refresh_tokens: bool,
    pub run_as_user_id: Option<String>,
    pub created_at: i64,
    /// A disabled client authenticates nowhere; its refresh tokens wait until it is enabled.
    pub enabled: bool,
}

const COLUMNS: &str = "id, org_id, name, client_id, secret_digest, issue_refresh_tokens, \
    run_as_user_id, created_at, enabled";

pub async fn insert(c: &mut Conn<'_>, r: &OAuthClientRow) -> Result<()> {
    let sql = "INSERT INTO oauth_clients (id, org_id, name, client_id, secret_digest, \
        issue_refresh_tokens, run_as_user_id, created_at, enabled) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    exec!(
        c,
        sql,
        &r.id,
        &r.org_id,
        &r.name,
        &r.client_id,
        &r.secret_digest,
        r.issue_refresh_tokens,
        &r.run_as_user_id,
        r.created_at,
        r.enabled
    )?;
    Ok(())
}

pub async fn list(c: &mut Conn<'_>, org_id: &str) -> Result<Vec<OAuthClientRow>> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE org_id = $1 ORDER BY created_at");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OAuthClientRow>(
        &sql
    )
    .bind(org_id)
    .fetch_all(e)
    .await)?)
}

/// The client with this consumer key (the OAuth `client_id`), in any org: a token request
/// names no org, the client does.
pub async fn find_by_client_id(
    c: &mut Conn<'_>,
    client_id: &str,
) -> Result<Option<OAuthClientRow>> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE client_id = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OAuthClientRow>(
        &sql
    )
    .bind(client_id)
    .fetch_optional(e)
    .await)?)
}

pub async fn get(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<Option<OAuthClientRow>> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE org_id = $1 AND id = $2");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OAuthClientRow>(
        &sql
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(e)
    .await)?)
}

/// The client with this id, whatever its org (the caller checks who may see it).
pub async fn get_any_org(c: &mut Conn<'_>, id: &str) -> Result<Option<OAuthClientRow>> {
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE id = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OAuthClientRow>(
        &sql
    )
    .bind(id)
    .fetch_optional(e)
    .await)?)
}

/// The client row, locked until the transaction ends (see `users::get_for_update`).
pub async fn get_for_update(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
) -> Result<Option<OAuthClientRow>> {
    let lock = c.for_update();
    let sql = format!("SELECT {COLUMNS} FROM oauth_clients WHERE org_id = $1 AND id = $2 {lock}");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OAuthClientRow>(
        &sql
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(e)
    .await)?)
}

/// Replaces the client's secret (its digest): the old secret is refused from now on.
pub async fn set_secret_digest(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    digest: &str,
) -> Result<()> {
    let sql = "UPDATE oauth_clients SET secret_digest = $3 WHERE org_id = $1 AND id = $2";
    exec!(c, sql, org_id, id, digest)?;
    Ok(())
}

/// Enables or disables the client; disabling ends the access tokens issued to it (its refresh
/// tokens stay, refused while it is disabled). True when the state changed.
pub async fn set_enabled(c: &mut Conn<'_>, org_id: &str, id: &str, enabled: bool) -> Result<bool> {
    let sql =
        "UPDATE oauth_clients SET enabled = $3 WHERE org_id = $1 AND id = $2 AND enabled <> $3";
    let changed = exec!(c, sql, org_id, id, enabled)? > 0;
    if changed && !enabled {
        let sql = "DELETE FROM sessions WHERE org_id = $1 AND oauth_client_id = $2";
        exec!(c, sql, org_id, id)?;
    }
    Ok(changed)
}

/// Deletes the client with every refresh and access token issued to it.
pub async fn delete(c: &mut Conn<'_>, org_id: &str, id: &str) -> Result<bool> {
    let sql = "DELETE FROM refresh_tokens WHERE org_id = $1 AND oauth_client_id = $2";
    exec!(c, sql, org_id, id)?;
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND oauth_client_id = $2";
    exec!(c, sql, org_id, id)?;
    let sql = "DELETE FROM oauth_clients WHERE org_id = $1 AND id = $2";
    Ok(exec!(c, sql, org_id, id)? > 0)
}
