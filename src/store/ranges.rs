//! IP ranges: an org's trusted ranges (`profile_id` NULL) and a profile's login ranges.

use super::{Conn, Result, exec, on_backend, row_decoder};

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

pub(crate) const COLUMNS: &str =
    "id, org_id, profile_id, start_ip, end_ip, description, created_at";

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
            on_backend!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
                .bind(org_id)
                .fetch_all(e)
                .await)?
        }
        Some(p) => {
            let sql = format!(
                "SELECT {COLUMNS} FROM ip_ranges WHERE org_id = $1 AND profile_id = $2 \
                 ORDER BY created_at, id"
            );
            on_backend!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
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
    Ok(on_backend!(c, |e| sqlx::query_as::<_, IpRangeRow>(&sql)
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

row_decoder! {
    /// A range from a left join whose range columns are selected as `r_<column>`: `None` on
    /// the row that stands for no range.
    pub(crate) fn decode_prefixed(r) -> Option<IpRangeRow> {
        let Some(id) = sqlx::Row::try_get::<Option<String>, _>(r, "r_id")? else {
            return Ok(None);
        };
        Ok(Some(IpRangeRow {
            id,
            org_id: sqlx::Row::try_get(r, "r_org_id")?,
            profile_id: sqlx::Row::try_get(r, "r_profile_id")?,
            start_ip: sqlx::Row::try_get(r, "r_start_ip")?,
            end_ip: sqlx::Row::try_get(r, "r_end_ip")?,
            description: sqlx::Row::try_get(r, "r_description")?,
            created_at: sqlx::Row::try_get(r, "r_created_at")?,
        }))
    }
}
