//! `keyward backup` and `keyward restore` (docs/deployment.md, Backup and restore).

use super::{CliError, note};
use crate::app;
use crate::config::Config;
use crate::service::Services;
use crate::service::backup::{RestoreError, remove_database_files};
use std::path::Path;

/// `keyward backup --to FILE`: a consistent copy of the SQLite database, servers running or not.
pub async fn backup(s: &Services, to: &Path) -> Result<(), CliError> {
    let bytes = s.backup_to(to).await?;
    note(&format!(
        "Backed up the database to {} ({bytes} bytes). It holds password hashes: keep it as \
         safe as the data dir.",
        to.display()
    ));
    Ok(())
}

/// `keyward restore --from FILE`: a backup becomes the database of a data dir that has none,
/// checked first and brought up to this binary's schema.
pub async fn restore(config: &Config, from: &Path) -> Result<(), CliError> {
    if !config.database.url.is_empty() {
        return Err(CliError::Setup(
            "keyward restore puts a SQLite backup in a data dir; restore PostgreSQL with \
             pg_restore (docs/deployment.md)"
                .into(),
        ));
    }
    let dir = &config.data_dir;
    let made = !dir.exists();
    crate::private_fs::create_dir(dir).map_err(|e| {
        CliError::Setup(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    let version = match crate::service::backup::restore(from, &config.sqlite_path()).await {
        Ok(v) => v,
        Err(e) => {
            if made {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(match e {
                RestoreError::Conflict(e) => CliError::Service(e),
                RestoreError::Unusable(m) => CliError::Setup(m),
            });
        }
    };
    let services = match app::open(config, app::Create::No).await {
        Ok(s) => s,
        Err(e) => {
            // It did not become a working database: take back what this command put there.
            remove_database_files(&config.sqlite_path());
            if made {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(CliError::setup(e));
        }
    };
    services.close().await;
    note(&format!(
        "Restored {} into {} (schema {version}, now up to date). Start keyward serve on it.",
        from.display(),
        config.sqlite_path().display()
    ));
    Ok(())
}
