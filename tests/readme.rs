//! README.md is tested as a new user would follow it: every `sh` block runs as written, in
//! order, in one directory, the first one (`cargo run --release -- serve`) in the background and
//! the others against it. Two things differ from a user's terminal, both outside the blocks:
//! `cargo run … -- ARGS` runs the binary this test was built with, and the server listens on a
//! free port, which replaces `127.0.0.1:8080` in the blocks. A block may be skipped only with
//! `<!-- readme-test: skip (…) -->` above it, and only the test command itself is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::Serve;
use common::{Backend, TestDb};
use std::path::Path;
use std::process::Command;

const README: &str = include_str!("../README.md");

/// The `sh` blocks, each with whether it is marked to be skipped.
fn shell_blocks(page: &str) -> Vec<(bool, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .expect("the end of a sh block");
            let skip = i > 0 && lines[i - 1].starts_with("<!-- readme-test: skip");
            out.push((skip, lines[i + 1..end].join("\n")));
            i = end;
        }
        i += 1;
    }
    out
}

/// `cargo run [-q] [--release] -- ARGS` runs `$KW_BIN ARGS` (`exec`s it when `KW_EXEC` is set,
/// so the server's process is the one the test stops); any other use of cargo fails.
const CARGO_SHIM: &str = r#"
cargo() {
  [ "$1" = run ] || { echo "README test: only 'cargo run' is provided" >&2; return 97; }
  shift
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in -q|--release) shift ;; *) echo "README test: cargo run $1?" >&2; return 97 ;; esac
  done
  shift
  if [ -n "${KW_EXEC:-}" ]; then exec "$KW_BIN" "$@"; fi
  "$KW_BIN" "$@"
}
"#;

/// bash with the shim, cheap hashing, this test's database and nothing inherited that would
/// change keyward's or curl's behaviour.
fn bash(db: &TestDb, cwd: &Path, script: &str) -> Command {
    let mut c = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWARD_") || k.to_lowercase().ends_with("_proxy") {
            c.env_remove(k);
        }
    }
    c.current_dir(cwd)
        .arg("-c")
        .arg(format!("{CARGO_SHIM}\n{script}"))
        .env("KW_BIN", env!("CARGO_BIN_EXE_keyward"))
        .env("KEYWARD_PASSWORD_HASH_MEMORY_KIB", "256")
        .env("KEYWARD_PASSWORD_HASH_ITERATIONS", "1")
        .env("KEYWARD_LOG_LEVEL", "info");
    if !db.url.is_empty() {
        c.env("KEYWARD_DATABASE_URL", &db.url);
    }
    c
}

on_both!(readme_blocks_run_as_written_in_order);

async fn readme_blocks_run_as_written_in_order(b: Backend) {
    let db = TestDb::new(b).await;
    let cwd = db.dir.path().join("checkout");
    std::fs::create_dir_all(&cwd).unwrap();
    let blocks = shell_blocks(README);
    let skipped: Vec<&str> = blocks
        .iter()
        .filter(|(skip, _)| *skip)
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(
        skipped,
        ["scripts/test"],
        "only the test command is skipped"
    );
    let run: Vec<&str> = blocks
        .iter()
        .filter(|(skip, _)| !*skip)
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(run.len() >= 3, "README.md lost its examples");
    assert!(
        run[0].starts_with("cargo run --release -- serve"),
        "the first block starts the server: {}",
        run[0]
    );

    // The first block, in the background, as a user leaves it running in one terminal.
    let mut serve = bash(&db, &cwd, run[0]);
    serve
        .env("KW_EXEC", "1")
        .env("KEYWARD_SERVER_LISTEN", "127.0.0.1:0");
    let logs = db.dir.path().join("serve-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let server = Serve::start(serve, &logs);
    let addr = server.addr();
    let banner = common::process::wait_for(&server.out, |t| t.contains("emailed to"));
    assert!(banner.contains("keyward is initialised."), "{banner}");

    // The others, in order, in one shell of another terminal, each stopping at its first error.
    let mut script = String::from("set -eo pipefail\n");
    for (i, block) in run.iter().enumerate().skip(1) {
        script.push_str(&format!(
            "echo '@@@ {i}'\n{}\n",
            block.replace("127.0.0.1:8080", &addr)
        ));
    }
    let out = bash(&db, &cwd, &script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "a README block failed:\n{stdout}\n{stderr}"
    );
    let outputs: Vec<&str> = stdout.split("@@@ ").skip(1).collect();
    assert_eq!(outputs.len(), run.len() - 1, "{stdout}");
    // What the prose promises of each block.
    let login = outputs[0];
    assert!(
        login.contains("<loginResponse>") && login.contains("<sessionId>"),
        "the client login did not log in:\n{login}\n{stderr}"
    );
    let tour = outputs[1];
    let mail = tour
        .lines()
        .find(|l| l.ends_with(".eml"))
        .unwrap_or_else(|| panic!("`kw mail wait` printed no mail file:\n{tour}"));
    let mail = std::fs::read_to_string(cwd.join(mail).canonicalize().unwrap()).unwrap();
    assert!(mail.contains("Security token (case-sensitive): "), "{mail}");
    assert!(
        tour.contains("Deactivated user ada@acme.test"),
        "the audit trail lacks the tour's deactivation:\n{tour}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    assert_eq!(server.stop(), 0);
    db.drop_db().await;
}
