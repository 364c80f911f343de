//! Failed logins per source address (see `domain::throttle`): one row per address key holding
//! its current window, updated by single atomic statements so that every node shares the count.

use super::{Conn, Result, exec, on_backend};

/// The window an address is in: (window start, failures in it).
pub async fn get(c: &mut Conn<'_>, address: &str) -> Result<Option<(i64, i64)>> {
    Ok(on_backend!(c, |e| sqlx::query_as::<_, (i64, i64)>(
        "SELECT window_start, failures FROM address_failures WHERE address = $1"
    )
    .bind(address)
    .fetch_optional(e)
    .await)?)
}

/// Counts one failure: in the address's window, or in a new window starting now when the last
/// one started at or before `expired_before`. Returns the failures in the window after it.
pub async fn record_failure(
    c: &mut Conn<'_>,
    address: &str,
    now: i64,
    expired_before: i64,
) -> Result<i64> {
    let sql = "INSERT INTO address_failures (address, window_start, failures) VALUES ($1, $2, 1) \
        ON CONFLICT (address) DO UPDATE SET \
          failures = CASE WHEN address_failures.window_start <= $3 THEN 1 \
                          ELSE address_failures.failures + 1 END, \
          window_start = CASE WHEN address_failures.window_start <= $3 THEN $2 \
                              ELSE address_failures.window_start END, \
          refused = CASE WHEN address_failures.window_start <= $3 THEN 0 \
                         ELSE address_failures.refused END \
        RETURNING failures";
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, i64>(sql)
        .bind(address)
        .bind(now)
        .bind(expired_before)
        .fetch_one(e)
        .await)?)
}

/// Adds `approx_refused` to the attempts refused because the address was over its limit. The
/// caller writes only a random sample of refusals (one in `approx_refused`), so a flood of
/// refused requests costs reads, not writes; the count is an estimate.
pub async fn record_refused(c: &mut Conn<'_>, address: &str, approx_refused: i64) -> Result<()> {
    exec!(
        c,
        "UPDATE address_failures SET refused = refused + $2 WHERE address = $1",
        address,
        approx_refused
    )?;
    Ok(())
}

/// An address that is or was limited: for the operator's listing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddressRow {
    pub address: String,
    pub window_start: i64,
    pub failures: i64,
    pub refused: i64,
}

/// Addresses with at least `min_failures` failures in a window that started after
/// `started_after`, most failures first.
pub async fn list(
    c: &mut Conn<'_>,
    started_after: i64,
    min_failures: i64,
    limit: i64,
) -> Result<Vec<AddressRow>> {
    Ok(on_backend!(c, |e| sqlx::query_as::<_, AddressRow>(
        "SELECT address, window_start, failures, refused FROM address_failures \
         WHERE window_start > $1 AND failures >= $2 \
         ORDER BY failures DESC, address LIMIT $3"
    )
    .bind(started_after)
    .bind(min_failures)
    .bind(limit)
    .fetch_all(e)
    .await)?)
}

/// Forgets an address's failures (the operator lets it log in again). True if it had a row.
pub async fn clear(c: &mut Conn<'_>, address: &str) -> Result<bool> {
    Ok(exec!(
        c,
        "DELETE FROM address_failures WHERE address = $1",
        address
    )? > 0)
}

/// Removes the rows of windows that ended; nothing reads them.
pub async fn purge(c: &mut Conn<'_>, expired_before: i64) -> Result<u64> {
    Ok(exec!(
        c,
        "DELETE FROM address_failures WHERE window_start <= $1",
        expired_before
    )?)
}
