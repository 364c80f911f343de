//! A SQLite database copied while the server runs, and a copy put in place as a new data dir's
//! database. PostgreSQL has its own tools (`pg_dump`, `pg_restore`: docs/deployment.md).

use super::{Db, Result, StoreError};
use std::path::Path;

/// Writes a consistent copy of the database to `to`, which must not exist, readable only by
/// its owner (it holds password hashes, and the token of any mail not delivered yet). SQLite's
/// `VACUUM INTO` reads one snapshot while writers go on, and writes a compact file.
pub async fn backup_into(db: &Db, to: &Path) -> Result<u64> {
    let Db::Sqlite(pool, _) = db else {
        return Err(StoreError::Other("only a SQLite database is copied".into()));
    };
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} (a backup never replaces a file)",
            to.display()
        )));
    }
    let io = |e: std::io::Error| StoreError::Other(format!("cannot write {}: {e}", to.display()));
    // Created empty and private first: VACUUM INTO accepts an empty file and keeps its mode.
    crate::private_fs::create_file(to, true).map_err(io)?;
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Other(format!("{} is not a UTF-8 path", to.display())))?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(pool)
        .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(e.into());
    }
    Ok(std::fs::metadata(to).map_err(io)?.len())
}

/// Checks that `from` is a sound keyward database this binary can run, then copies it to
/// `db_path` (which must not exist) through a temporary name, so a failed restore leaves
/// nothing behind. Returns the copy's schema version.
pub async fn restore(from: &Path, db_path: &Path) -> Result<i64> {
    let known = super::sqlite_schema_known();
    if db_path.exists() {
        return Err(StoreError::Conflict(format!(
            "{} (restore into a data dir without a database)",
            db_path.display()
        )));
    }
    let mut temp = db_path.as_os_str().to_owned();
    temp.push(".restoring");
    let temp = std::path::PathBuf::from(temp);
    let io = |what: &Path, e: std::io::Error| {
        StoreError::Other(format!("cannot copy to {}: {e}", what.display()))
    };
    if !from.is_file() {
        return Err(StoreError::Other(format!(
            "no backup file at {}",
            from.display()
        )));
    }
    let copied = std::fs::copy(from, &temp)
        .and_then(|_| crate::private_fs::restrict(&temp))
        .and_then(|()| std::fs::File::open(&temp)?.sync_all());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&temp, e));
    }
    let checked = check(&temp, from, known).await;
    let result = checked.and_then(|version| {
        std::fs::rename(&temp, db_path)
            .map(|()| version)
            .map_err(|e| io(db_path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Opens the copy read-only: SQLite's integrity check, and a schema this binary knows.
async fn check(path: &Path, from: &Path, known: i64) -> Result<i64> {
    use sqlx::ConnectOptions;
    let not_keyward = |why: String| {
        StoreError::Other(format!("{} is not a keyward backup: {why}", from.display()))
    };
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|e| not_keyward(e.to_string()))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .map_err(|e| not_keyward(e.to_string()))?;
    if verdict != "ok" {
        return Err(not_keyward(format!(
            "SQLite's integrity check says {verdict}"
        )));
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut c)
            .await
            .map_err(|e| not_keyward(e.to_string()))?;
    let applied = version.ok_or_else(|| not_keyward("it has no schema".into()))?;
    if applied > known {
        return Err(StoreError::SchemaTooNew { applied, known });
    }
    Ok(applied)
}
