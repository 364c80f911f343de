//! Deployment-wide flags, such as "this database has been bootstrapped".

use super::{Conn, Result, exec, on_backend};

/// Sets the key if it is not set yet; true when this call set it. Several nodes starting on an
/// empty database race here, and exactly one wins.
pub async fn claim(c: &mut Conn<'_>, key: &str, value: &str) -> Result<bool> {
    let sql = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
    let n = exec!(c, sql, key, value)?;
    Ok(n > 0)
}

pub async fn get(c: &mut Conn<'_>, key: &str) -> Result<Option<String>> {
    Ok(on_backend!(c, |e| sqlx::query_scalar::<_, String>(
        "SELECT value FROM meta WHERE key = $1"
    )
    .bind(key)
    .fetch_optional(e)
    .await)?)
}

/// Sets the key, whatever it held.
pub async fn set(c: &mut Conn<'_>, key: &str, value: &str) -> Result<()> {
    let sql = "INSERT INTO meta (key, value) VALUES ($1, $2) \
        ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    exec!(c, sql, key, value)?;
    Ok(())
}

pub async fn delete(c: &mut Conn<'_>, key: &str) -> Result<()> {
    exec!(c, "DELETE FROM meta WHERE key = $1", key)?;
    Ok(())
}
