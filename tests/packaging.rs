//! The packaging a server is run with: the systemd unit passes `systemd-analyze verify` with
//! nothing to say, and keeps the sandbox docs/deployment.md promises. (The container image is
//! built and tried by scripts/container-test.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const UNIT: &str = include_str!("../packaging/keyward.service");

/// The unit as installed, with `ExecStart` pointing at this build's binary (verify checks that
/// the program exists).
fn installed_unit() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let unit = UNIT.replace("/usr/local/bin/keyward", env!("CARGO_BIN_EXE_keyward"));
    assert_ne!(unit, UNIT, "ExecStart names /usr/local/bin/keyward");
    std::fs::write(dir.path().join("keyward.service"), unit).unwrap();
    dir
}

fn analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze (Debian package systemd): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_systemd_unit_verifies_with_nothing_to_say() {
    let dir = installed_unit();
    let unit = dir.path().join("keyward.service");
    let (ok, text) = analyze(&["verify", unit.to_str().unwrap()]);
    // Unknown or misspelt settings are only warnings to systemd: any output fails here.
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_systemd_unit_is_sandboxed() {
    let dir = installed_unit();
    let unit = dir.path().join("keyward.service");
    let (_, text) = analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    let level: f64 = text
        .split("Overall exposure level for keyward.service: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
        .parse()
        .unwrap();
    assert!(
        level <= 2.0,
        "exposure {level} (docs/deployment.md says 1.4):\n{text}"
    );
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=keyward",
        "Environment=KEYWARD_DATA_DIR=/var/lib/keyward",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(UNIT.contains(setting), "the unit lost {setting}");
    }
}
