//! The mail outbox (R-E1): written in the transaction of the change that causes the mail,
//! delivered by workers on any node. A worker claims due messages with a lease (on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so nodes never claim the same row); a crash leaves the lease to
//! expire and another worker retries. Delivery is at-least-once.

use super::{Conn, Result, exec, on_backend};

/// No `Debug`: it holds a secret or a digest that must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Insertion order (assigned by the database; ignored on insert).
    pub seq: i64,
    pub id: String,
    pub org_id: Option<String>,
    pub created_at: i64,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    /// Never holds a secret: where a token goes, it holds the redaction marker.
    pub body: String,
    /// The token of a token mail until it is delivered (R-T3); then NULL.
    pub secret: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

pub const QUEUED: &str = "queued";
pub const DEAD: &str = "dead";

const COLUMNS: &str = "seq, id, org_id, created_at, kind, to_addr, subject, body, secret, status, \
    attempts, next_attempt_at, last_error, sent_at";

pub async fn insert(c: &mut Conn<'_>, m: &OutboxRow) -> Result<()> {
    let sql = "INSERT INTO outbox (id, org_id, created_at, kind, to_addr, subject, body, secret, \
        status, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)";
    exec!(
        c,
        sql,
        &m.id,
        &m.org_id,
        m.created_at,
        &m.kind,
        &m.to_addr,
        &m.subject,
        &m.body,
        &m.secret,
        &m.status,
        m.next_attempt_at
    )?;
    Ok(())
}

/// Claims up to `limit` due messages for `lease_ms`, oldest first, counting an attempt on each.
pub async fn claim_due(
    c: &mut Conn<'_>,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let lock = c.for_update_skip_locked();
    let sql = format!(
        "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE id IN \
         (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $2 \
          AND (lease_until IS NULL OR lease_until < $2) \
          ORDER BY seq LIMIT $3 {lock}) \
         RETURNING {COLUMNS}"
    );
    let mut rows = on_backend!(c, |e| sqlx::query_as::<_, OutboxRow>(&sql)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(e)
        .await)?;
    rows.sort_by_key(|r| r.seq);
    Ok(rows)
}

/// Delivered: the secret is dropped from the database (R-T3).
pub async fn mark_sent(c: &mut Conn<'_>, id: &str, now: i64) -> Result<()> {
    let sql = "UPDATE outbox SET status = 'sent', sent_at = $2, secret = NULL, lease_until = NULL, \
        last_error = NULL WHERE id = $1";
    exec!(c, sql, id, now)?;
    Ok(())
}

/// A failed attempt: retry at `retry_at`, or mark dead after `max_attempts`. A dead message
/// drops its secret too: a token that was never delivered must be reset, not resent later.
pub async fn mark_failed(
    c: &mut Conn<'_>,
    id: &str,
    error: &str,
    retry_at: i64,
    max_attempts: i64,
) -> Result<bool> {
    let sql = "UPDATE outbox SET lease_until = NULL, last_error = $2, next_attempt_at = $3, \
        status = CASE WHEN attempts >= $4 THEN 'dead' ELSE 'queued' END, \
        secret = CASE WHEN attempts >= $4 THEN NULL ELSE secret END \
        WHERE id = $1 RETURNING status";
    let status = on_backend!(c, |e| sqlx::query_scalar::<_, String>(sql)
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .bind(max_attempts)
        .fetch_optional(e)
        .await)?;
    Ok(status.as_deref() == Some(DEAD))
}

pub async fn get(c: &mut Conn<'_>, id: &str) -> Result<Option<OutboxRow>> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OutboxRow>(&sql)
        .bind(id)
        .fetch_optional(e)
        .await)?)
}

/// Oldest first, optionally only those to one address.
pub async fn list(c: &mut Conn<'_>, to: Option<&str>, limit: i64) -> Result<Vec<OutboxRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox WHERE ($1 IS NULL OR lower(to_addr) = lower($1)) \
         ORDER BY seq DESC LIMIT $2"
    );
    let mut rows = on_backend!(c, |e| sqlx::query_as::<_, OutboxRow>(&sql)
        .bind(to)
        .bind(limit)
        .fetch_all(e)
        .await)?;
    rows.reverse();
    Ok(rows)
}

/// Messages not yet delivered (queued or leased): the backlog.
pub async fn backlog(c: &mut Conn<'_>) -> Result<i64> {
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM outbox WHERE status = 'queued'"
    )
    .fetch_one(e)
    .await)?)
}

/// The earliest time a queued message becomes due (the worker sleeps until then).
pub async fn next_due(c: &mut Conn<'_>) -> Result<Option<i64>> {
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
         THEN lease_until ELSE next_attempt_at END) FROM outbox WHERE status = 'queued'"
    )
    .fetch_one(e)
    .await)?)
}

/// One org's mail, newest first, optionally of one status.
pub async fn list_for_org(
    c: &mut Conn<'_>,
    org_id: &str,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox WHERE org_id = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY seq DESC LIMIT $3"
    );
    Ok(on_backend!(c, |e| sqlx::query_as::<_, OutboxRow>(&sql)
        .bind(org_id)
        .bind(status)
        .bind(limit)
        .fetch_all(e)
        .await)?)
}

/// Queues a dead message again, with a fresh count of attempts. True when it was dead.
pub async fn requeue_dead(c: &mut Conn<'_>, id: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = $2, \
        lease_until = NULL WHERE id = $1 AND status = 'dead'";
    Ok(exec!(c, sql, id, now)? > 0)
}
