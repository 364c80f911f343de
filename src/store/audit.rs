//! The setup audit trail (R-M4).

use super::{Conn, Result, exec, on_backend};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub org_id: String,
    pub created_at: i64,
    pub actor: String,
    pub action: String,
    pub section: String,
    pub display: String,
    pub target_id: Option<String>,
}

pub async fn insert(c: &mut Conn<'_>, r: &AuditRow) -> Result<()> {
    let sql = "INSERT INTO audit_trail (id, org_id, created_at, actor, action, section, display, \
        target_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    exec!(
        c,
        sql,
        &r.id,
        &r.org_id,
        r.created_at,
        &r.actor,
        &r.action,
        &r.section,
        &r.display,
        &r.target_id
    )?;
    Ok(())
}

/// Newest first.
pub async fn list(c: &mut Conn<'_>, org_id: &str, limit: i64) -> Result<Vec<AuditRow>> {
    let sql = "SELECT id, org_id, created_at, actor, action, section, display, target_id \
        FROM audit_trail WHERE org_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2";
    Ok(on_backend!(c, |e| sqlx::query_as::<_, AuditRow>(sql)
        .bind(org_id)
        .bind(limit)
        .fetch_all(e)
        .await)?)
}
