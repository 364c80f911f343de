//! Sessions and OAuth refresh tokens (R-L10): stored by digest only, so the store never holds a
//! value that would let anyone act as the user.

use super::orgs::{self, OrgRow};
use super::users::{self, UserRow};
use super::{Conn, Result, aliased, exec, on_backend, prefixed, row_decoder};
use sqlx::FromRow;
use std::sync::LazyLock;

/// Ends every session and refresh token of a user (deactivation, admin password reset); returns
/// how many sessions ended.
pub async fn delete_for_user(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<u64> {
    let sql = "DELETE FROM refresh_tokens WHERE org_id = $1 AND user_id = $2";
    exec!(c, sql, org_id, user_id)?;
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2";
    Ok(exec!(c, sql, org_id, user_id)?)
}

/// Ends every session and refresh token of a user but one session (a user's own password
/// change keeps the session it was made from).
pub async fn delete_others(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    keep_digest: &str,
) -> Result<u64> {
    let sql = "DELETE FROM refresh_tokens WHERE org_id = $1 AND user_id = $2";
    exec!(c, sql, org_id, user_id)?;
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2 AND digest <> $3";
    Ok(exec!(c, sql, org_id, user_id, keep_digest)?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub digest: String,
    pub org_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// Idle timeout: `last_seen_at` + the org's session timeout, moved forward as it is used.
    pub expires_at: i64,
    pub login_type: String,
    pub source_ip: String,
    pub password_expired: bool,
    /// The OAuth client's row id, for sessions issued as OAuth access tokens.
    pub oauth_client_id: Option<String>,
    /// The refresh token this access token was issued with (revoking it ends this session).
    pub refresh_digest: Option<String>,
    /// The integration token the login used (revoking it ends this session).
    pub integration_token_id: Option<String>,
}

const COLUMNS: &str = "digest, org_id, user_id, created_at, last_seen_at, expires_at, \
    login_type, source_ip, password_expired, oauth_client_id, refresh_digest, integration_token_id";

pub async fn insert(c: &mut Conn<'_>, s: &SessionRow) -> Result<()> {
    let sql = "INSERT INTO sessions (digest, org_id, user_id, created_at, last_seen_at, \
        expires_at, login_type, source_ip, password_expired, oauth_client_id, refresh_digest, \
        integration_token_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
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
        &s.oauth_client_id,
        &s.refresh_digest,
        &s.integration_token_id
    )?;
    Ok(())
}

/// A live session with its user and org, read in one statement.
#[derive(Clone)]
pub struct LiveSession {
    pub session: SessionRow,
    pub user: UserRow,
    pub org: OrgRow,
}

/// The session with this digest, if it exists and has not expired — and, for an OAuth access token,
/// its client still exists and is enabled (a grant that raced the client's deletion cannot leave a
/// live token), and for a login with an integration token, that token still exists unrevoked (a
/// revocation that did not end the token's sessions still refuses them) — with its user and org: one statement of primary-key lookups. It runs on every API
/// call after login that the node's memory of session checks cannot answer (`service::cache`: reads
/// at most a second old). The user's columns keep their names; the session's and the org's are
/// prefixed (`s_`, `o_`) so no two share a name.
pub async fn get_live_with_user(
    c: &mut Conn<'_>,
    digest: &str,
    now: i64,
) -> Result<Option<LiveSession>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {}, {}, {} FROM sessions s \
             JOIN users u ON u.org_id = s.org_id AND u.id = s.user_id \
             JOIN orgs o ON o.id = s.org_id \
             LEFT JOIN oauth_clients c ON c.id = s.oauth_client_id \
             LEFT JOIN integration_tokens it ON it.id = s.integration_token_id \
             WHERE s.digest = $1 AND s.expires_at > $2 \
             AND (s.oauth_client_id IS NULL OR c.enabled) \
             AND (s.integration_token_id IS NULL OR (it.id IS NOT NULL AND it.revoked_at IS NULL))",
            aliased("s", COLUMNS, "s_"),
            aliased("u", users::COLUMNS, ""),
            aliased("o", orgs::COLUMNS, "o_"),
        )
    });
    Ok(on_backend!(c, |e| sqlx::query(&SQL)
        .bind(digest)
        .bind(now)
        .fetch_optional(e)
        .await
        .and_then(|r| r.as_ref().map(decode_live).transpose()))?)
}

row_decoder! {
fn decode_live(r) -> LiveSession {
    Ok(LiveSession {
        session: prefixed!(
            r,
            "s_",
            SessionRow {
                digest,
                org_id,
                user_id,
                created_at,
                last_seen_at,
                expires_at,
                login_type,
                source_ip,
                password_expired,
                oauth_client_id,
                refresh_digest,
                integration_token_id,
            }
        ),
        user: UserRow::from_row(r)?,
        org: orgs::decode_prefixed(r)?,
    })
}
}

/// Records use of a session and moves its idle timeout forward.
pub async fn touch(c: &mut Conn<'_>, digest: &str, now: i64, expires_at: i64) -> Result<()> {
    let sql = "UPDATE sessions SET last_seen_at = $2, expires_at = $3 \
        WHERE digest = $1 AND expires_at > $2";
    exec!(c, sql, digest, now, expires_at)?;
    Ok(())
}

/// A session whose password was expired may be used normally once the password is set.
pub async fn clear_password_expired(c: &mut Conn<'_>, digest: &str) -> Result<()> {
    exec!(
        c,
        "UPDATE sessions SET password_expired = FALSE WHERE digest = $1",
        digest
    )?;
    Ok(())
}

/// Removes sessions that expired before `now` (housekeeping); how many.
pub async fn delete_expired(c: &mut Conn<'_>, now: i64) -> Result<u64> {
    Ok(exec!(
        c,
        "DELETE FROM sessions WHERE expires_at <= $1",
        now
    )?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub digest: String,
    pub org_id: String,
    pub user_id: String,
    pub oauth_client_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// The integration token the login used: revoking it ends this refresh token, and it is
    /// refused once that token stops logging in.
    pub integration_token_id: Option<String>,
}

pub async fn insert_refresh(c: &mut Conn<'_>, r: &RefreshTokenRow) -> Result<()> {
    let sql = "INSERT INTO refresh_tokens (digest, org_id, user_id, oauth_client_id, created_at, \
        last_used_at, integration_token_id) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    exec!(
        c,
        sql,
        &r.digest,
        &r.org_id,
        &r.user_id,
        &r.oauth_client_id,
        r.created_at,
        r.last_used_at,
        &r.integration_token_id
    )?;
    Ok(())
}

pub async fn get_refresh(c: &mut Conn<'_>, digest: &str) -> Result<Option<RefreshTokenRow>> {
    let sql = "SELECT digest, org_id, user_id, oauth_client_id, created_at, last_used_at, \
        integration_token_id FROM refresh_tokens WHERE digest = $1";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, RefreshTokenRow>(
        sql
    )
    .bind(digest)
    .fetch_optional(e)
    .await)?)
}

/// The refresh token, locked until the transaction ends (PostgreSQL `FOR UPDATE`; SQLite's
/// write transaction excludes other writers): a revocation cannot commit between the check
/// and the access token issued from it.
pub async fn get_refresh_for_update(
    c: &mut Conn<'_>,
    digest: &str,
) -> Result<Option<RefreshTokenRow>> {
    let lock = c.for_update();
    let sql = format!(
        "SELECT digest, org_id, user_id, oauth_client_id, created_at, last_used_at, \
         integration_token_id FROM refresh_tokens WHERE digest = $1 {lock}"
    );
    Ok(on_backend!(c, |e| sqlx::query_as::<_, RefreshTokenRow>(
        &sql
    )
    .bind(digest)
    .fetch_optional(e)
    .await)?)
}

pub async fn touch_refresh(c: &mut Conn<'_>, digest: &str, now: i64) -> Result<()> {
    let sql = "UPDATE refresh_tokens SET last_used_at = $2 WHERE digest = $1";
    exec!(c, sql, digest, now)?;
    Ok(())
}

/// Revokes a refresh token and every access token issued with it. True when it existed. The
/// token's row goes first: that waits for a refresh grant holding it, so the access token such a
/// grant issues is committed, and deleted, by the second statement.
pub async fn delete_refresh(c: &mut Conn<'_>, digest: &str) -> Result<bool> {
    let existed = exec!(c, "DELETE FROM refresh_tokens WHERE digest = $1", digest)? > 0;
    exec!(c, "DELETE FROM sessions WHERE refresh_digest = $1", digest)?;
    Ok(existed)
}

/// The live sessions of a user, newest first.
pub async fn list_for_user(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    now: i64,
) -> Result<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE org_id = $1 AND user_id = $2 AND expires_at > $3 \
         ORDER BY created_at DESC"
    );
    Ok(on_backend!(c, |e| sqlx::query_as::<_, SessionRow>(&sql)
        .bind(org_id)
        .bind(user_id)
        .bind(now)
        .fetch_all(e)
        .await)?)
}

/// Which session [`end`] may end.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    Any,
    /// One of this user's (the sessions pages).
    Of {
        org_id: &'a str,
        user_id: &'a str,
    },
    /// One whose login type is not this (an API logout cannot end a web session).
    NotOfType(&'a str),
}

/// Ends a session (logout, revocation, the sessions pages) if it is one `which` allows, and,
/// when it came from an OAuth login that issued a refresh token, that refresh token and every
/// access token issued with it: ending a session ends the OAuth grant it belongs to. True when
/// the session existed. In a transaction: the refresh token's row is deleted before its
/// sessions, as `delete_refresh` does.
pub async fn end(c: &mut Conn<'_>, digest: &str, which: Which<'_>) -> Result<bool> {
    let sql = "SELECT org_id, user_id, refresh_digest, login_type FROM sessions WHERE digest = $1";
    let found = on_backend!(c, |e| {
        sqlx::query_as::<_, (String, String, Option<String>, String)>(sql)
            .bind(digest)
            .fetch_optional(e)
            .await
    })?;
    let Some((org_id, user_id, refresh, login_type)) = found else {
        return Ok(false);
    };
    let allowed = match which {
        Which::Any => true,
        Which::Of {
            org_id: o,
            user_id: u,
        } => o == org_id && u == user_id,
        Which::NotOfType(t) => t != login_type,
    };
    if !allowed {
        return Ok(false);
    }
    if let Some(refresh) = refresh {
        delete_refresh(c, &refresh).await?;
    }
    exec!(c, "DELETE FROM sessions WHERE digest = $1", digest)?;
    Ok(true)
}

/// A refresh token as the sessions pages list it: with the name of its client.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenEntry {
    pub digest: String,
    pub oauth_client_id: String,
    /// Empty when the client no longer exists.
    pub client_name: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// A user's refresh tokens, newest first.
pub async fn list_refresh_for_user(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
) -> Result<Vec<RefreshTokenEntry>> {
    let sql = "SELECT r.digest, r.oauth_client_id, COALESCE(c.name, '') AS client_name, \
        r.created_at, r.last_used_at FROM refresh_tokens r \
        LEFT JOIN oauth_clients c ON c.org_id = r.org_id AND c.id = r.oauth_client_id \
        WHERE r.org_id = $1 AND r.user_id = $2 ORDER BY r.created_at DESC";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, RefreshTokenEntry>(
        sql
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_all(e)
    .await)?)
}

/// Revokes one refresh token of a user, and every access token issued with it. True when it
/// existed.
pub async fn delete_refresh_of_user(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    digest: &str,
) -> Result<bool> {
    let sql =
        "SELECT digest FROM refresh_tokens WHERE digest = $1 AND org_id = $2 AND user_id = $3";
    let found = on_backend!(c, |e| sqlx::query_scalar::<_, String>(sql)
        .bind(digest)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(e)
        .await)?;
    match found {
        Some(d) => delete_refresh(c, &d).await,
        None => Ok(false),
    }
}

/// Ends every session and refresh token a login with this integration token created. How many
/// sessions ended.
pub async fn end_for_integration_token(
    c: &mut Conn<'_>,
    org_id: &str,
    token_id: &str,
) -> Result<u64> {
    let sql = "DELETE FROM refresh_tokens WHERE org_id = $1 AND integration_token_id = $2";
    exec!(c, sql, org_id, token_id)?;
    let sql = "DELETE FROM sessions WHERE org_id = $1 AND integration_token_id = $2";
    Ok(exec!(c, sql, org_id, token_id)?)
}
