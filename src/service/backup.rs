//! `keyward backup`: a consistent copy of a SQLite database while servers use it.

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
