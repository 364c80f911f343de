//! IP ranges: an org's trusted ranges (`profile_id` NULL) and a profile's login ranges.

use super::{Conn, Result, exec, q};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IpRangeRow {
    pub id: String,
    pub org_id: String,
    pub profile_id: Option<String>,
    pub start_ip: String,
    pub end_ip: String,
    pub description: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, org_id, profile_id, start_ip, end_ip, description, created_at";

pub async fn insert(c: &mut Conn<'_>, r: &IpRangeRow) -> Result<()> {
    let sql = "INSERT INTO ip_ranges (id, org_id, profile_id, start_ip, end_ip, description, \
        created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    exec!(
        c,
        sql,
        &r.id,
        &r.org_id,
        &r.profile_id,
        &r.start_ip,
        &r.end_ip,
        &r.description,
        r.created_at
    )?;
    Ok(())
}

/// The org's trusted ranges (`profile_id` None) or one profile's login ranges.
pub async fn list(
    c: &mut Conn<'_>,
    org_id: &str,
    profile_id: Option<&str>,
) -> Result<Vec<IpRangeRow>> {
    let rows = match profile_id {
        None => {
            let sql = format!(
                "SELECT {COLUMNS} FROM ip_ranges WHERE org_id = $1 AND profile_id IS NULL \
                 ORDER BY created_at, id"
            );
            q!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
                .bind(org_id)
                .fetch_all(e)
                .await)?
        }
        Some(p) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM ip_ranges WHERE org_id = $1 AND profile_id = $2 \
                 ORDER BY created_at, id"
            );
            q!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
                .bind(org_id)
                .bind(p)
                .fetch_all(e)
                .await)?
        }
    };
    Ok(rows)
}

/// The org's trusted ranges and one profile's login ranges in one statement (a login needs
/// both); each row's `profile_id` says which it is.
pub async fn list_for_login(
    c: &mut Conn<'_>,
    org_id: &str,
    profile_id: &str,
) -> Result<Vec<IpRangeRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ip_ranges WHERE org_id = $1 \
         AND (profile_id IS NULL OR profile_id = $2) ORDER BY created_at, id"
    );
    Ok(q!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
        .bind(org_id)
        .bind(profile_id)
        .fetch_all(e)
        .await)?)
}

/// Deletes one range of the given owner; false when there is no such range.
pub async fn delete(
    c: &mut Conn<'_>,
    org_id: &str,
    profile_id: Option<&str>,
    id: &str,
) -> Result<bool> {
    let sql = "DELETE FROM ip_ranges WHERE org_id = $1 AND id = $2 \
        AND ((profile_id IS NULL AND $3 IS NULL) OR profile_id = $3)";
    let n = exec!(c, sql, org_id, id, profile_id)?;
    Ok(n > 0)
}
