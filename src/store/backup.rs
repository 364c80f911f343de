//! A SQLite database copied while the server runs, and a copy put in place as a new data dir's
//! database. PostgreSQL has its own tools (`pg_dump`, `pg_restore`: docs/deployment.md).

use super::{Db, Result, StoreError};
use std::path::Path;

/// Writes a consistent copy of the database to `to`, a new file readable only by its owner (it
/// holds password hashes, and the token of any mail not delivered yet). SQLite's `VACUUM INTO`
/// reads one snapshot while writers go on; it writes into a directory of its own inside the
/// (private) data dir, never to `to` by name — SQLite would follow a symlink there, read `to`
/// as a URI, or delete files beside it — and the copy is then streamed into `to`, created
/// exclusively without following a symlink.
pub async fn backup_into(db: &Db, to: &Path) -> Result<u64> {
    let Db::Sqlite(pool, _) = db else {
        return Err(StoreError::Other("only a SQLite database is copied".into()));
    };
    let data_dir = pool
        .connect_options()
        .get_filename()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let scratch = data_dir.join(format!(".backup-{}", crate::crypto::random_base62(12)));
    crate::private_fs::create_dir(&scratch)
        .map_err(|e| StoreError::Other(format!("cannot write {}: {e}", scratch.display())))?;
    let result = copy_through(pool, &scratch, to).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn copy_through(pool: &sqlx::SqlitePool, scratch: &Path, to: &Path) -> Result<u64> {
    let snapshot = scratch.join("keyward.db");
    let snapshot_text = snapshot
        .to_str()
        .ok_or_else(|| StoreError::Other(format!("{} is not a UTF-8 path", snapshot.display())))?
        .to_string();
    sqlx::query("VACUUM INTO ?")
        .bind(snapshot_text)
        .execute(pool)
        .await?;
    let write = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            StoreError::Conflict(format!("{} (a backup never replaces a file)", to.display()))
        } else {
            StoreError::Other(format!("cannot write {}: {e}", to.display()))
        }
    };
    let mut out = crate::private_fs::create_new(to).map_err(write)?;
    let copied = std::fs::File::open(&snapshot)
        .and_then(|mut from| std::io::copy(&mut from, &mut out))
        .and_then(|n| out.sync_all().map(|()| n));
    match copied {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => {
            let _ = std::fs::remove_file(to);
            Err(StoreError::Other("the copy came out empty".into()))
        }
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(write(e))
        }
    }
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
    // A journal left beside a deleted database would be replayed onto the restored one.
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = super::beside(db_path, suffix);
        if side.exists() {
            return Err(StoreError::Other(format!(
                "{} is left from an earlier database: SQLite would apply it to the restored \
                 one; remove it or restore into another data dir",
                side.display()
            )));
        }
    }
    let temp = super::beside(db_path, ".restoring");
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
