//! Integration tokens (digests only) and the usage inventory of every API credential.

use super::{Conn, Result, exec, on_backend, row_decoder};

/// No `Debug`: it holds a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct IntegrationTokenRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub name: String,
    pub digest: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub replaced_at: Option<i64>,
    pub predecessor_id: Option<String>,
    pub next_reminder_at: Option<i64>,
    /// Set at a rotation: when the org's grace window then ended.
    pub grace_until: Option<i64>,
}

pub(crate) const COLUMNS: &str = "id, org_id, user_id, name, digest, created_at, expires_at, revoked_at, \
    replaced_at, predecessor_id, next_reminder_at, grace_until";

row_decoder! {
    /// A token from a join whose token columns are selected as `t_<column>`; None when the
    /// join found none.
    pub(crate) fn decode_prefixed(r) -> Option<IntegrationTokenRow> {
        let Some(id) = sqlx::Row::try_get::<Option<String>, _>(r, "t_id")? else {
            return Ok(None);
        };
        let get = |c: &str| format!("t_{c}");
        Ok(Some(IntegrationTokenRow {
            id,
            org_id: sqlx::Row::try_get(r, get("org_id").as_str())?,
            user_id: sqlx::Row::try_get(r, get("user_id").as_str())?,
            name: sqlx::Row::try_get(r, get("name").as_str())?,
            digest: sqlx::Row::try_get(r, get("digest").as_str())?,
            created_at: sqlx::Row::try_get(r, get("created_at").as_str())?,
            expires_at: sqlx::Row::try_get(r, get("expires_at").as_str())?,
            revoked_at: sqlx::Row::try_get(r, get("revoked_at").as_str())?,
            replaced_at: sqlx::Row::try_get(r, get("replaced_at").as_str())?,
            predecessor_id: sqlx::Row::try_get(r, get("predecessor_id").as_str())?,
            next_reminder_at: sqlx::Row::try_get(r, get("next_reminder_at").as_str())?,
            grace_until: sqlx::Row::try_get(r, get("grace_until").as_str())?,
        }))
    }
}

/// False when the digest was issued before (a value is never issued twice).
pub async fn insert(c: &mut Conn<'_>, r: &IntegrationTokenRow) -> Result<bool> {
    let sql = "INSERT INTO integration_tokens (id, org_id, user_id, name, digest, created_at, \
        expires_at, revoked_at, replaced_at, predecessor_id, next_reminder_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (digest) DO NOTHING";
    let n = exec!(
        c,
        sql,
        &r.id,
        &r.org_id,
        &r.user_id,
        &r.name,
        &r.digest,
        r.created_at,
        r.expires_at,
        r.revoked_at,
        r.replaced_at,
        &r.predecessor_id,
        r.next_reminder_at
    )?;
    Ok(n == 1)
}

/// The token with this id in this org; `for_update` locks its row until the transaction ends.
pub async fn get(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    for_update: bool,
) -> Result<Option<IntegrationTokenRow>> {
    let lock = if for_update { c.for_update() } else { "" };
    let sql =
        format!("SELECT {COLUMNS} FROM integration_tokens WHERE org_id = $1 AND id = $2 {lock}");
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, IntegrationTokenRow>(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(e)
            .await
    })?)
}

/// The token with this id, whatever its org (the caller checks who may see it).
pub async fn get_any_org(c: &mut Conn<'_>, id: &str) -> Result<Option<IntegrationTokenRow>> {
    let sql = format!("SELECT {COLUMNS} FROM integration_tokens WHERE id = $1");
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, IntegrationTokenRow>(&sql)
            .bind(id)
            .fetch_optional(e)
            .await
    })?)
}

/// Every token of a user, newest first.
pub async fn list_for_user(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
) -> Result<Vec<IntegrationTokenRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_tokens WHERE org_id = $1 AND user_id = $2 \
         ORDER BY created_at DESC, id DESC"
    );
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, IntegrationTokenRow>(&sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(e)
            .await
    })?)
}

/// Revokes a token that is not revoked yet; false when it already was.
pub async fn revoke(c: &mut Conn<'_>, org_id: &str, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE integration_tokens SET revoked_at = $3, next_reminder_at = NULL \
        WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL";
    Ok(exec!(c, sql, org_id, id, now)? == 1)
}

/// Marks a token replaced by a rotation, its grace window ending at `grace_until`; false when
/// it was revoked or replaced already.
pub async fn mark_replaced(
    c: &mut Conn<'_>,
    org_id: &str,
    id: &str,
    now: i64,
    grace_until: i64,
) -> Result<bool> {
    let sql = "UPDATE integration_tokens SET replaced_at = $3, grace_until = $4, \
        next_reminder_at = NULL \
        WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL AND replaced_at IS NULL";
    Ok(exec!(c, sql, org_id, id, now, grace_until)? == 1)
}

/// Tokens whose next expiry reminder is due at `now`, oldest due first.
pub async fn reminders_due(
    c: &mut Conn<'_>,
    now: i64,
    limit: i64,
) -> Result<Vec<IntegrationTokenRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_tokens WHERE next_reminder_at <= $1 \
         ORDER BY next_reminder_at LIMIT $2"
    );
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, IntegrationTokenRow>(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(e)
            .await
    })?)
}

/// Moves a token's reminder from `seen` to `next`, only if it still is at `seen`: the node
/// whose update changes the row sends the reminder, every other node's changes nothing.
pub async fn claim_reminder(
    c: &mut Conn<'_>,
    id: &str,
    seen: i64,
    next: Option<i64>,
) -> Result<bool> {
    let sql = "UPDATE integration_tokens SET next_reminder_at = $3 \
        WHERE id = $1 AND next_reminder_at = $2";
    Ok(exec!(c, sql, id, seen, next)? == 1)
}

/// The live tokens of an org (not revoked, not replaced), for a new reminder schedule.
pub async fn live_in_org(c: &mut Conn<'_>, org_id: &str) -> Result<Vec<IntegrationTokenRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_tokens WHERE org_id = $1 AND revoked_at IS NULL \
         AND replaced_at IS NULL"
    );
    Ok(on_backend!(c, |e| {
        sqlx::query_as::<_, IntegrationTokenRow>(&sql)
            .bind(org_id)
            .fetch_all(e)
            .await
    })?)
}

pub async fn set_next_reminder(c: &mut Conn<'_>, id: &str, next: Option<i64>) -> Result<()> {
    exec!(
        c,
        "UPDATE integration_tokens SET next_reminder_at = $2 WHERE id = $1",
        id,
        next
    )?;
    Ok(())
}

/// The credential of the usage inventory that stands for the security token.
pub const SECURITY_TOKEN: &str = "security_token";

/// One (client, source address) that used a credential.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageRow {
    pub credential: String,
    pub client: String,
    pub source_ip: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub uses: i64,
}

/// The usage upsert, shared with the one-step login (`store::logins`): $1 org, $2 user,
/// $3 credential, $4 client, $5 source address, $6 now.
pub(crate) const RECORD_USAGE: &str = "INSERT INTO credential_usage (org_id, user_id, \
    credential, client, source_ip, first_seen_at, last_seen_at, uses)";
pub(crate) const RECORD_USAGE_CONFLICT: &str = "ON CONFLICT (org_id, user_id, credential, \
    client, source_ip) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
    uses = credential_usage.uses + 1";

/// Records one use of a credential: one statement, an insert or an update.
pub async fn record_usage(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    credential: &str,
    client: &str,
    source_ip: &str,
    now: i64,
) -> Result<()> {
    let sql =
        format!("{RECORD_USAGE} VALUES ($1, $2, $3, $4, $5, $6, $6, 1) {RECORD_USAGE_CONFLICT}");
    exec!(c, &sql, org_id, user_id, credential, client, source_ip, now)?;
    Ok(())
}

/// The usage of one credential of a user, most recent first.
pub async fn usage(
    c: &mut Conn<'_>,
    org_id: &str,
    user_id: &str,
    credential: &str,
) -> Result<Vec<UsageRow>> {
    let sql = "SELECT credential, client, source_ip, first_seen_at, last_seen_at, uses \
        FROM credential_usage WHERE org_id = $1 AND user_id = $2 AND credential = $3 \
        ORDER BY last_seen_at DESC, client, source_ip";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UsageRow>(sql)
        .bind(org_id)
        .bind(user_id)
        .bind(credential)
        .fetch_all(e)
        .await)?)
}

/// Every usage row of a user (for the last use of each credential in a listing).
pub async fn usage_of_user(c: &mut Conn<'_>, org_id: &str, user_id: &str) -> Result<Vec<UsageRow>> {
    let sql = "SELECT credential, client, source_ip, first_seen_at, last_seen_at, uses \
        FROM credential_usage WHERE org_id = $1 AND user_id = $2";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, UsageRow>(sql)
        .bind(org_id)
        .bind(user_id)
        .fetch_all(e)
        .await)?)
}

/// After an org shortened its integration grace window: every rotated token works for at most
/// `grace_ms` after its rotation, for good (lengthening the window later revives none).
pub async fn clip_grace(c: &mut Conn<'_>, org_id: &str, grace_ms: i64) -> Result<()> {
    let sql = "UPDATE integration_tokens SET grace_until = replaced_at + $2 \
        WHERE org_id = $1 AND replaced_at IS NOT NULL AND grace_until > replaced_at + $2";
    exec!(c, sql, org_id, grace_ms)?;
    Ok(())
}

/// Ends a rotated token's grace window now, if it is still running.
pub async fn end_grace(c: &mut Conn<'_>, org_id: &str, id: &str, now: i64) -> Result<()> {
    let sql = "UPDATE integration_tokens SET grace_until = $3 \
        WHERE org_id = $1 AND id = $2 AND replaced_at IS NOT NULL AND grace_until > $3";
    exec!(c, sql, org_id, id, now)?;
    Ok(())
}
