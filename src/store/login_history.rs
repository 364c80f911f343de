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
    pub limit: i64,
}

/// Newest first. Filters by org and user use the (org_id, user_id, login_at) indexes.
pub async fn list(c: &mut Conn<'_>, f: &Filter) -> Result<Vec<LoginHistoryView>> {
    let sql = "SELECT h.id, h.org_id, h.user_id, u.username, h.login_at, h.source_ip, \
        h.login_type, h.status, h.client, h.api_version, h.login_url \
        FROM login_history h LEFT JOIN users u ON u.org_id = h.org_id AND u.id = h.user_id \
        WHERE ($1 IS NULL OR h.org_id = $1) AND ($2 IS NULL OR h.user_id = $2) \
        ORDER BY h.login_at DESC, h.seq DESC LIMIT $3";
    Ok(q!(c, |e| sqlx::query_as::<_, LoginHistoryView>(sql)
        .bind(&f.org_id)
        .bind(&f.user_id)
        .bind(f.limit)
        .fetch_all(e)
        .await)?)
}
