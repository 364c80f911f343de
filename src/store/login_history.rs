//! Login history (R-L9): one row per attempt.

use super::{Conn, Result, exec, on_backend};

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
    /// Which credential the attempt used (empty when none was identified).
    pub credential: String,
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
    pub credential: String,
}

pub async fn insert(c: &mut Conn<'_>, r: &LoginHistoryRow) -> Result<()> {
    let sql = "INSERT INTO login_history (id, org_id, user_id, login_at, source_ip, login_type, \
        status, client, api_version, login_url, credential) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
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
        &r.login_url,
        &r.credential
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

/// The `WHERE` clause of a filter, naming only the conditions it sets (`$1`, `$2`, … in order),
/// so every query can use the (org_id, login_at) and (org_id, user_id, login_at) indexes: a
/// clause like `($1 IS NULL OR h.org_id = $1)` cannot, and PostgreSQL's generic plans for
/// prepared statements would scan the whole table with it.
fn where_clause(f: &Filter) -> (String, Vec<Bind<'_>>) {
    let mut conds = Vec::new();
    let mut binds: Vec<Bind<'_>> = Vec::new();
    let mut cond = |sql: &str, b| {
        binds.push(b);
        conds.push(format!("{sql} ${}", binds.len()));
    };
    if let Some(v) = &f.org_id {
        cond("h.org_id =", Bind::Text(v));
    }
    if let Some(v) = &f.user_id {
        cond("h.user_id =", Bind::Text(v));
    }
    if let Some(v) = &f.status {
        cond("h.status =", Bind::Text(v));
    }
    if let Some(v) = &f.login_type {
        cond("h.login_type =", Bind::Text(v));
    }
    if let Some(v) = f.from {
        cond("h.login_at >=", Bind::Int(v));
    }
    if let Some(v) = f.to {
        cond("h.login_at <", Bind::Int(v));
    }
    let clause = if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join(" AND ")
    };
    (clause, binds)
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// Binds a filter's values to a query, in the order [`where_clause`] numbered them.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for b in $binds {
            query = match b {
                Bind::Text(v) => query.bind(*v),
                Bind::Int(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// Newest first. Filters by org and user use the (org_id, user_id, login_at) indexes.
pub async fn list(c: &mut Conn<'_>, f: &Filter) -> Result<Vec<LoginHistoryView>> {
    let (clause, binds) = where_clause(f);
    let sql = format!(
        "SELECT h.id, h.org_id, h.user_id, u.username, h.login_at, h.source_ip, \
        h.login_type, h.status, h.client, h.api_version, h.login_url, h.credential \
        FROM login_history h LEFT JOIN users u ON u.org_id = h.org_id AND u.id = h.user_id \
        WHERE {clause} ORDER BY h.login_at DESC, h.seq DESC LIMIT ${}",
        binds.len() + 1
    );
    Ok(on_backend!(c, |e| bind_all!(
        sqlx::query_as::<_, LoginHistoryView>(&sql),
        &binds
    )
    .bind(f.limit)
    .fetch_all(e)
    .await)?)
}

/// Attempts per hour (`hour` = epoch ms at the start of the hour) and whether they succeeded,
/// for the Setup chart; the filter's limit is ignored.
pub async fn per_hour(c: &mut Conn<'_>, f: &Filter) -> Result<Vec<(i64, bool, i64)>> {
    let (clause, binds) = where_clause(f);
    let sql = format!(
        "SELECT (h.login_at / 3600000) * 3600000 AS hour, h.status = 'Success' AS ok, \
         COUNT(*) AS n FROM login_history h WHERE {clause} GROUP BY 1, 2 ORDER BY 1"
    );
    Ok(on_backend!(c, |e| bind_all!(
        sqlx::query_as::<_, (i64, bool, i64)>(&sql),
        &binds
    )
    .fetch_all(e)
    .await)?)
}
