//! The real clients, on SQLite and PostgreSQL: jsforce 3 (SOAP and OAuth), simple-salesforce
//! (SOAP and OAuth) and beatbox (SOAP, gzip bodies, absolute-form request lines) log in to a
//! `keyward serve` started here. Each program in `tests/clients/` runs the scenarios of issue 3
//! item 7 against it — token needed from an untrusted address, trusted range, token reset, lockout,
//! deactivation, unknown user, restricted IP, logout — and issue 17's integration tokens (used as
//! the password; refused once revoked, expired or rotated out of the grace window), driving admin
//! changes through the CLI. No clock moves in a running server, so the programs expire a token by
//! moving its `expires_at` in the server's database (`KEYWARD_DATABASE_URL`, or `keyward.db` in
//! `KEYWARD_DATA_DIR`).
//!
//! The web UI is a client too: `web_test.mjs` drives headless Chromium through the pages (issue
//! 4's browser suite).
//!
//! `scripts/test` installs the clients (npm and pip) and says where they are with
//! `KEYWARD_TEST_NODE` and `KEYWARD_TEST_PYTHON`; without them these tests fail and say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::{Serve, keyward};
use common::{Backend, TestDb};
use std::process::Command;

on_both!(jsforce, simple_salesforce, beatbox, web_ui);

fn interpreter(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with scripts/test, which installs {what} and sets it"
        )
    })
}

/// Starts a server on a fresh database and runs one client program against it.
async fn run_client(b: Backend, program: &[String]) {
    let db = TestDb::new(b).await;
    let data = db.data_dir();
    let mut serve = keyward(&db, db.dir.path(), "info");
    serve
        .env("KEYWARD_DATA_DIR", &data)
        .env("KEYWARD_MAIL_POLL_MS", "100")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Serve::start(serve, db.dir.path());
    // The client program inherits what the CLI needs (same database, cheap hashing) and is
    // told where the server is. Proxies are cleared: jsforce would send loopback traffic to them.
    let mut cmd = Command::new(&program[0]);
    cmd.args(&program[1..]).env_clear();
    for (k, v) in std::env::vars() {
        if !k.starts_with("KEYWARD_") && !k.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env(k, v);
        }
    }
    cmd.env("KEYWARD_TEST_BIN", env!("CARGO_BIN_EXE_keyward"))
        .env("KEYWARD_TEST_URL", &server.base)
        .env("KEYWARD_DATA_DIR", &data)
        .env("KEYWARD_PASSWORD_HASH_MEMORY_KIB", "256")
        .env("KEYWARD_PASSWORD_HASH_ITERATIONS", "1")
        .env("KEYWARD_LOG_LEVEL", "warn");
    for var in ["KEYWARD_TEST_CHROMIUM", "KEYWARD_TEST_SCREENSHOTS"] {
        if let Ok(v) = std::env::var(var) {
            cmd.env(var, v);
        }
    }
    if !db.url.is_empty() {
        cmd.env("KEYWARD_DATABASE_URL", &db.url);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let server_log = String::from_utf8_lossy(&server.log()).to_string();
    assert_eq!(server.stop(), 0, "serve did not stop cleanly");
    assert!(
        out.status.success(),
        "{program:?} failed:\n{stdout}\n{stderr}\n--- server log ---\n{server_log}"
    );
    assert!(stdout.contains("ok - "), "no scenario ran: {stdout}");
    assert!(!stdout.contains("not ok"), "{stdout}");
    db.drop_db().await;
}

fn script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn jsforce(b: Backend) {
    let node = interpreter("KEYWARD_TEST_NODE", "Node.js and jsforce");
    run_client(b, &[node, script("jsforce_test.mjs")]).await;
}

async fn simple_salesforce(b: Backend) {
    let python = interpreter("KEYWARD_TEST_PYTHON", "Python and simple-salesforce");
    run_client(b, &[python, script("ssf_test.py")]).await;
}

/// The web UI in headless Chromium (Debian's `chromium`, driven by npm `playwright-core`).
async fn web_ui(b: Backend) {
    let node = interpreter("KEYWARD_TEST_NODE", "Node.js and playwright-core");
    run_client(b, &[node, script("web_test.mjs")]).await;
}

async fn beatbox(b: Backend) {
    let python = interpreter("KEYWARD_TEST_PYTHON", "Python and beatbox3");
    run_client(b, &[python, script("beatbox_test.py")]).await;
}
