//! `keyward cert generate`: a local CA and a certificate for serving https on this machine.
//! It needs no database, so `run` calls it before opening one.

use super::{CliError, note, print};

pub(super) fn cert_generate(dir: &std::path::Path, force: bool) -> Result<(), CliError> {
    let paths = [
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ];
    if !force && let Some(existing) = paths.iter().find(|p| p.exists()) {
        return Err(CliError::Usage(format!(
            "{} already exists (use --force to replace the certificates)",
            existing.display()
        )));
    }
    let certs = crate::crypto::cert::generate_local(time::OffsetDateTime::now_utc())
        .map_err(|e| CliError::Setup(format!("could not generate the certificates: {e}")))?;
    let io = |p: &std::path::Path, e: std::io::Error| {
        CliError::Setup(format!("cannot write {}: {e}", p.display()))
    };
    crate::private_fs::create_dir(dir).map_err(|e| io(dir, e))?;
    for (path, text) in [
        (&paths[0], &certs.ca_pem),
        (&paths[1], &certs.chain_pem),
        (&paths[2], &certs.key_pem),
    ] {
        crate::private_fs::write(path, text.as_bytes()).map_err(|e| io(path, e))?;
    }
    print(&format!(
        "{}\n{}\n{}\n",
        paths[0].display(),
        paths[1].display(),
        paths[2].display()
    ));
    note("Trust ca.pem in your clients (see docs/clients.md); key.pem is readable by you alone.");
    Ok(())
}
