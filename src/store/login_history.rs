//! Login history (R-L9): one row per attempt.

use super::{Conn, Result, exec, q};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginHistoryRow {
    pub id: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub login_at: i64,
    pub source_ip: String,
    pub login_type: String,
    pub status: String,
    pub client: String,
    pub api_version: String,
    pub login_url: String,
}

/// A login-history row joined with the username, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginHistoryView {
    pub id: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub login_at: i64,
    pub source_ip: String,
    pub login_type: String,
    pub status: String,
    pub client: String,
    pub api_version: String,
    pub login_url: String,
}

pub async fn insert(c: &mut Conn<'_>, r: &LoginHistoryRow) -> Result<()> {
    let sql = "INSERT INTO login_history (id, org_id, user_id, login_at, source_ip, login_type, \
        status, client, api_version, login_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    exec!(
        c,
        sql,
        &r.id,
        &r.org_id,
        &r.user_id,
        r.login_at,
        &r.source_ip,
        &r.login_type,
        &r.status,
        &r.client,
        &r.api_version,
        &r.login_url
    )?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    /// Exact status text (`Success`, `Invalid password`, …).
    pub status: Option<String>,
    /// Exact login type (`Application`, `SOAP Partner`, …).
    pub login_type: Option<String>,
    /// From this instant (epoch ms, inclusive).
    pub from: Option<i64>,
    /// Before this instant (epoch ms, exclusive).
    pub to: Option<i64>,
    pub limit: i64,
}

const FILTER: &str = "($1 IS NULL OR h.org_id = $1) AND ($2 IS NULL OR h.user_id = $2) \
    AND ($3 IS NULL OR h.status = $3) AND ($4 IS NULL OR h.login_type = $4) \
    AND h.login_at >= $5 AND h.login_at < $6";

/// Newest first. Filters by org and user use the (org_id, user_id, login_at) indexes.
pub async fn list(c: &mut Conn<'_>, f: &Filter) -> Result<Vec<LoginHistoryView>> {
    let sql = format!(
        "SELECT h.id, h.org_id, h.user_id, u.username, h.login_at, h.source_ip, \
        h.login_type, h.status, h.client, h.api_version, h.login_url \
        FROM login_history h LEFT JOIN users u ON u.org_id = h.org_id AND u.id = h.user_id \
        WHERE {FILTER} ORDER BY h.login_at DESC, h.seq DESC LIMIT $7"
    );
    Ok(q!(c, |e| sqlx::query_as::<_, LoginHistoryView>(&sql)
        .bind(&f.org_id)
        .bind(&f.user_id)
        .bind(&f.status)
        .bind(&f.login_type)
        .bind(f.from.unwrap_or(i64::MIN))
        .bind(f.to.unwrap_or(i64::MAX))
        .bind(f.limit)
        .fetch_all(e)
        .await)?)
}

/// Attempts per hour (`hour` = epoch ms at the start of the hour) and whether they succeeded,
/// for the Setup chart; the filter's limit is ignored.
pub async fn per_hour(c: &mut Conn<'_>, f: &Filter) -> Result<Vec<(i64, bool, i64)>> {
    let sql = format!(
        "SELECT (h.login_at / 3600000) * 3600000 AS hour, h.status = 'Success' AS ok, \
         COUNT(*) AS n FROM login_history h WHERE {FILTER} GROUP BY 1, 2 ORDER BY 1"
    );
    Ok(q!(c, |e| sqlx::query_as::<_, (i64, bool, i64)>(&sql)
        .bind(&f.org_id)
        .bind(&f.user_id)
        .bind(&f.status)
        .bind(&f.login_type)
        .bind(f.from.unwrap_or(i64::MIN))
        .bind(f.to.unwrap_or(i64::MAX))
        .fetch_all(e)
        .await)?)
}
