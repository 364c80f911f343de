//! Backup and restore as docs/deployment.md tells them, while the server works: on SQLite
//! `keyward backup --to FILE` under a stream of logins and `keyward restore --from FILE` into a
//! new data dir; on PostgreSQL the documented `pg_dump -Fc` and `pg_restore`. The restored store
//! has the users, their tokens, their sessions and their history, and logins work on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::{Serve, keyward, run_ok};
use common::server::{login_envelope, session_envelope};
use common::{Backend, TestDb, latest_token, mails_in};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

on_both!(
    a_backup_taken_under_load_restores_users_tokens_sessions_and_history,
    backup_writes_only_a_new_file_of_its_own_and_a_failed_restore_leaves_nothing,
);

const PASSWORD: &str = "Backup-Passw0rd";

fn kw(db: &TestDb, data: &Path) -> Command {
    let mut c = keyward(db, db.dir.path(), "warn");
    c.arg("--data-dir").arg(data);
    c
}

async fn soap(http: &reqwest::Client, base: &str, envelope: String) -> (u16, String) {
    let r = http
        .post(format!("{base}/services/Soap/u/59.0"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(envelope)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    xml[start..].split('<').next().unwrap().to_string()
}

fn history_rows(db: &TestDb, data: &Path) -> usize {
    let out = run_ok(
        kw(db, data),
        &[
            "login-history",
            "--org",
            "Acme",
            "--limit",
            "10000",
            "--format",
            "json",
        ],
        None,
    );
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

async fn a_backup_taken_under_load_restores_users_tokens_sessions_and_history(b: Backend) {
    let db = TestDb::new(b).await;
    let data = db.data_dir();
    let logs = db.dir.path().join("run1");
    std::fs::create_dir_all(&logs).unwrap();
    let mut serve = kw(&db, &data);
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Serve::start(serve, &logs);
    run_ok(kw(&db, &data), &["org", "create", "--name", "Acme"], None);
    for u in ["ada", "bob"] {
        let name = format!("{u}@acme.test");
        let args = [
            "user",
            "create",
            "--org",
            "Acme",
            "--username",
            &name,
            "--email",
            &name,
            "--password-stdin",
        ];
        run_ok(kw(&db, &data), &args, Some(PASSWORD));
    }
    let token = |mail_dir: &Path| latest_token(&mails_in(mail_dir), "ada@acme.test");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mail_dir = data.join("mail");
    run_ok(
        kw(&db, &data),
        &["mail", "wait", "--to", "ada@acme.test"],
        None,
    );
    let ada_token = token(&mail_dir);
    let secret = format!("{PASSWORD}{ada_token}");
    let (status, body) = soap(
        &http,
        &server.base,
        login_envelope("ada@acme.test", &secret),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session = element(&body, "sessionId");

    // A stream of logins (successes and failures) while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (http, base, stop, done) = (
                http.clone(),
                server.base.clone(),
                stop.clone(),
                done.clone(),
            );
            let secret = if i == 0 {
                "wrong".to_string()
            } else {
                secret.clone()
            };
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    soap(&http, &base, login_envelope("ada@acme.test", &secret)).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while done.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = history_rows(&db, &data);
    let at_start = done.load(Ordering::Relaxed);
    let copy = db.dir.path().join("keyward-backup");
    let restored = TestDb::new(b).await;
    let data2 = db.dir.path().join("restored");
    if b == Backend::Sqlite {
        let o = kw(&db, &data)
            .args(["backup", "--to"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let note = String::from_utf8_lossy(&o.stderr);
        assert!(note.starts_with("Backed up the database to "), "{note}");
        // A backup never replaces a file.
        let again = kw(&db, &data)
            .args(["backup", "--to"])
            .arg(&copy)
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(1));
    } else {
        // keyward's own commands send PostgreSQL's operators to its tools…
        let o = kw(&db, &data)
            .args(["backup", "--to"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&o.stderr).contains("pg_dump"));
        // …which work as docs/deployment.md shows them.
        let dump = Command::new("pg_dump")
            .args(["-Fc", "-f"])
            .arg(&copy)
            .arg(&db.url)
            .status()
            .unwrap();
        assert!(dump.success());
    }
    let during = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert!(
        during > at_start,
        "the logins went on while the backup was taken"
    );
    let after = history_rows(&db, &data);
    assert_eq!(server.stop(), 0);

    // Restored into a new data dir (and, on PostgreSQL, a new database).
    if b == Backend::Sqlite {
        let o = kw(&restored, &data2)
            .args(["restore", "--from"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Not over a data dir that has a database.
        let o = kw(&restored, &data2)
            .args(["restore", "--from"])
            .arg(&copy)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
    } else {
        let o = Command::new("pg_restore")
            .args(["--no-owner", "-d", &restored.url])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let logs2 = db.dir.path().join("run2");
    std::fs::create_dir_all(&logs2).unwrap();
    let mut serve = kw(&restored, &data2);
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Serve::start(serve, &logs2);
    // Users, with their token…
    let shown = run_ok(
        kw(&restored, &data2),
        &["user", "show", "bob@acme.test"],
        None,
    );
    assert!(shown.contains("bob@acme.test"), "{shown}");
    let (status, body) = soap(
        &http,
        &server.base,
        login_envelope("ada@acme.test", &secret),
    )
    .await;
    assert_eq!(
        status, 200,
        "the token does not log in after the restore: {body}"
    );
    // …their session from before the backup…
    let (status, body) = soap(
        &http,
        &server.base,
        session_envelope(
            &session,
            "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>",
        ),
    )
    .await;
    assert_eq!(status, 200, "the session did not survive: {body}");
    assert!(body.contains("ada@acme.test"), "{body}");
    // …and their history: everything before the backup, nothing after the last login.
    let rows = history_rows(&restored, &data2);
    assert!(
        (before..=after).contains(&(rows - 1)),
        "{rows} rows restored (one from the login just now); {before} before the backup, {after} after"
    );
    assert_eq!(server.stop(), 0);
    restored.drop_db().await;
    db.drop_db().await;
}

/// Hostile targets (found by attacking it): a backup never writes through a symlink, never reads
/// its path as an SQLite URI, never touches files beside it; a restore refuses a journal left
/// from another database, and one that fails leaves nothing behind.
async fn backup_writes_only_a_new_file_of_its_own_and_a_failed_restore_leaves_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let dir = db.dir.path().to_path_buf();
    let data = db.data_dir();
    run_ok(kw(&db, &data), &["init"], None);
    let run = |args: &[&std::ffi::OsStr]| {
        let o = kw(&db, &data).args(args).output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let backup = |to: &Path| run(&["backup".as_ref(), "--to".as_ref(), to.as_os_str()]);
    if b == Backend::Postgres {
        let (code, err) = backup(&dir.join("x.db"));
        assert_eq!((code, err.contains("pg_dump")), (1, true), "{err}");
        let (code, err) = run(&[
            "restore".as_ref(),
            "--from".as_ref(),
            dir.join("x.db").as_os_str(),
        ]);
        assert_eq!((code, err.contains("pg_restore")), (1, true), "{err}");
        db.drop_db().await;
        return;
    }
    // A dangling symlink is an existing name: refused, and nothing written where it points.
    std::os::unix::fs::symlink(dir.join("elsewhere.db"), dir.join("dangling.db")).unwrap();
    let (code, err) = backup(&dir.join("dangling.db"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a backup never replaces a file"), "{err}");
    assert!(!dir.join("elsewhere.db").exists());
    // `file:` is part of the name; what lies beside the target is left alone.
    std::fs::write(dir.join("copy.db-wal"), "not ours").unwrap();
    for name in ["file:copy.db", "copy.db"] {
        let (code, err) = backup(&dir.join(name));
        assert_eq!(code, 0, "{err}");
        let meta = std::fs::metadata(dir.join(name)).unwrap();
        assert!(meta.len() > 0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("copy.db-wal")).unwrap(),
        "not ours"
    );
    // Nothing of the backup's scratch work stays in the data dir.
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".backup"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let restore = |into: &Path, from: &Path| {
        let o = kw(&db, into)
            .args(["restore", "--from"])
            .arg(from)
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // A journal left in the target dir would be replayed onto the copy: refused.
    let stale = dir.join("stale");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("keyward.db-wal"), "old").unwrap();
    let (code, err) = restore(&stale, &dir.join("copy.db"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("keyward.db-wal is left from an earlier database"),
        "{err}"
    );
    assert!(!stale.join("keyward.db").exists());
    // A copy whose migrations cannot be completed: an error, and no database left to trip on.
    let broken = dir.join("broken.db");
    std::fs::copy(dir.join("copy.db"), &broken).unwrap();
    let c = sqlx::sqlite::SqlitePool::connect(&format!("sqlite:{}", broken.display()))
        .await
        .unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&c)
    .await
    .unwrap();
    c.close().await;
    let fresh = dir.join("fresh");
    let (code, err) = restore(&fresh, &broken);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("migration"), "{err}");
    assert!(!fresh.exists(), "a failed restore left {}", fresh.display());
    db.drop_db().await;
}
