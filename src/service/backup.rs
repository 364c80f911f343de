//! `keyward backup` and `keyward restore`: a consistent copy of a SQLite database while servers
//! use it, and a backup made the database of a data dir.

use super::{Result, ServiceError, Services};
use crate::store::{Db, StoreError, backup};
use std::path::Path;

impl Services {
    /// Copies the database to `to` (a new file, private to its owner); returns its size.
    pub async fn backup_to(&self, to: &Path) -> Result<u64> {
        if matches!(self.db, Db::Postgres(_)) {
            return Err(ServiceError::Invalid(
                "keyward backup copies a SQLite database; back up PostgreSQL with pg_dump and \
                 restore it with pg_restore (docs/deployment.md)"
                    .into(),
            ));
        }
        backup::backup_into(&self.db, to)
            .await
            .map_err(|e| match e {
                // A path that cannot be written is the caller's to fix, not an internal fault.
                StoreError::Other(m) => ServiceError::Invalid(m),
                e => e.into(),
            })
    }
}

/// Why a restore did not happen.
#[derive(Debug)]
pub enum RestoreError {
    /// The target already has a database.
    Conflict(ServiceError),
    /// The backup could not be read or copied.
    Unusable(String),
}

/// Copies the SQLite backup `from` to the new database file `to`, after checking a copy of it;
/// returns its schema version.
pub async fn restore(from: &Path, to: &Path) -> std::result::Result<i64, RestoreError> {
    backup::restore(from, to).await.map_err(|e| match e {
        StoreError::Conflict(_) => RestoreError::Conflict(e.into()),
        StoreError::Other(m) => RestoreError::Unusable(m),
        e => RestoreError::Unusable(e.to_string()),
    })
}

/// Removes a SQLite database and the files SQLite and keyward keep beside it.
pub fn remove_database_files(db: &Path) {
    for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
        let _ = std::fs::remove_file(crate::store::beside(db, suffix));
    }
}
