//! Files only their owner may read: the data directory, the SQLite database, mail files (they
//! hold tokens) and TLS keys. On Unix, directories are created 0700 and files 0600.

use std::io::Write;
use std::path::Path;

/// Creates the directory (and its parents) if missing; a directory keyward creates is private.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Opens a file for writing, creating it private (0600) before anything is written to it.
pub fn create_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true);
    if truncate {
        o.truncate(true);
    } else {
        o.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates a new private file: never an existing one, and never through a symlink (an
/// attacker's link in a shared directory would otherwise choose where a secret goes).
pub fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    // create_new is O_CREAT | O_EXCL: it fails on any existing name, a symlink (even a
    // dangling one) included, and never follows it.
    o.open(path)
}

/// Writes a whole private file and syncs it.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = create_file(path, true)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes sure an existing file is private (a database created by an older keyward, say).
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if path.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
