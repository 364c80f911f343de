//! Getting a server running: `serve` on an empty data dir, setup errors, migrations from many
//! processes, config errors, `init` with a given password, and `cert generate`.

use super::support::{Kw, Out, count};
use crate::common;
use crate::common::process::{Serve, wait_for};
use crate::common::{Backend, TestDb, latest_token, mails_in};
use crate::on_both;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

on_both!(
    cli_serve_bootstraps_an_empty_data_dir,
    cli_errors_name_their_cause_and_a_server_that_cannot_start_creates_nothing,
    cli_migrations_run_once_from_many_processes_and_a_newer_schema_is_refused,
);

/// Reads `path` until `pred` holds for its content or 30 seconds pass.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts `keyward serve` on a free port in `cwd` with the default data dir.
fn start_serve(kw: &Kw, cwd: &Path) -> Serve {
    let mut c = kw.base_command(cwd);
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    Serve::start(c, cwd)
}

async fn cli_serve_bootstraps_an_empty_data_dir(b: Backend) {
    let kw = Kw::new(b).await;
    let cwd = kw.db.dir.path().join("fresh");
    std::fs::create_dir_all(&cwd).unwrap();
    let serve = start_serve(&kw, &cwd);
    let (out, addr) = (serve.out.clone(), serve.addr());
    let err = cwd.join("serve.err");
    let banner = wait_for(&out, |t| t.contains("emailed to"));
    let data = cwd.join("keyward-data");
    assert!(data.is_dir(), "./keyward-data was not created");
    assert!(banner.contains("org:            Default (00D"), "{banner}");
    assert!(
        banner.contains("administrator:  admin@keyward.local (005"),
        "{banner}"
    );
    let password = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(password.len() >= 16);
    // The admin's token mail lands in ./keyward-data/mail.
    let mail_dir = data.join("mail");
    let start = Instant::now();
    while mails_in(&mail_dir).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "no token mail");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_token = latest_token(&mails_in(&mail_dir), "admin@keyward.local");
    let health = http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    // While the server runs, mail queued by the CLI is the server's to deliver (docs/rules.md, Interfaces): this
    // CLI is configured with an SMTP server that does not exist and must not try it.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reset = kw
        .base_command(&cwd)
        .args(["token", "reset", "admin@keyward.local"])
        .env("KEYWARD_MAIL_TRANSPORT", "smtp")
        .env("KEYWARD_MAIL_SMTP_HOST", "127.0.0.1")
        .env("KEYWARD_MAIL_SMTP_PORT", dead_port.to_string())
        .env("KEYWARD_MAIL_SMTP_SECURITY", "none")
        .output()
        .unwrap();
    assert!(reset.status.success());
    assert!(
        !String::from_utf8_lossy(&reset.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let start = Instant::now();
    while mails_in(&mail_dir).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not deliver the CLI's mail"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = latest_token(&mails_in(&mail_dir), "admin@keyward.local");
    assert_eq!(serve.stop(), 0, "serve did not exit cleanly");
    // With no server running, the command delivers its mail itself.
    let reset = kw
        .base_command(&cwd)
        .args(["token", "reset", "admin@keyward.local"])
        .output()
        .unwrap();
    assert!(reset.status.success());
    assert_eq!(mails_in(&mail_dir).len(), 3);
    // The log has neither the password nor the token.
    let log = std::fs::read(&err).unwrap();
    assert!(
        count(&log, "mail delivered") >= 1,
        "{}",
        String::from_utf8_lossy(&log)
    );
    assert_eq!(count(&log, &password), 0);
    assert_eq!(count(&log, &token), 0);
    assert_eq!(count(&log, &first_token), 0);
    // The password is printed once, and only there; a second start prints no banner.
    let serve = start_serve(&kw, &cwd);
    let out2 = serve.out.clone();
    assert_eq!(serve.stop(), 0);
    let second = std::fs::read_to_string(&out2).unwrap();
    assert!(!second.contains("password"), "{second}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // Only the owner can read what holds hashes and tokens.
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&mail_dir), 0o700);
        let file = mail_dir.join(&mails_in(&mail_dir)[0].file);
        assert_eq!(mode(&file), 0o600);
        if b == Backend::Sqlite {
            for f in ["keyward.db", "keyward.db-wal", "keyward.db-shm"] {
                if data.join(f).exists() {
                    assert_eq!(mode(&data.join(f)), 0o600, "{f}");
                }
            }
        }
    }
    if b == Backend::Sqlite {
        let mut db = Vec::new();
        for f in ["keyward.db", "keyward.db-wal"] {
            if let Ok(bytes) = std::fs::read(data.join(f)) {
                db.extend(bytes);
            }
        }
        assert_eq!(count(&db, &password), 0);
        assert_eq!(count(&db, &token), 0);
    }
    kw.db.drop_db().await;
}

/// Runs `keyward ARGS` in `cwd` (no `--data-dir`: the default one there, unless ARGS name one).
fn run_in(kw: &Kw, cwd: &Path, args: &[&str]) -> Out {
    let o = kw.base_command(cwd).args(args).output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// Issue 15, items 2-5: every setup error says why in one line; `serve` binds before it
/// initialises, so a busy port creates nothing; a mistyped data dir is an error, not a new
/// store; one server per SQLite data dir.
async fn cli_errors_name_their_cause_and_a_server_that_cannot_start_creates_nothing(b: Backend) {
    let kw = Kw::new(b).await;
    let cwd = kw.db.dir.path().join("fresh");
    std::fs::create_dir_all(&cwd).unwrap();
    let one_line = |o: &Out, cause: &str| {
        assert_eq!(o.code, 1, "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
        assert!(o.stderr.contains(cause), "{cause:?} not in {}", o.stderr);
    };
    // A busy port: the cause, and no data dir, org or admin (a fresh database stays empty).
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = run_in(&kw, &cwd, &["serve", "--listen", &addr]);
    one_line(
        &o,
        &format!("cannot listen on {addr}: Address already in use"),
    );
    assert_eq!(o.stdout, "", "nothing initialised, no password printed");
    assert!(!cwd.join("keyward-data").exists());
    drop(busy);
    // A data dir that cannot be created says why.
    let o = run_in(&kw, &cwd, &["--data-dir", "/proc/no/such/dir", "init"]);
    one_line(&o, "cannot create the data directory /proc/no/such/dir: ");
    assert!(o.stderr.contains("os error"), "{}", o.stderr);
    if b == Backend::Sqlite {
        // A mistyped data dir: refused with its path and what creates one; nothing created.
        let o = run_in(&kw, &cwd, &["--data-dir", "keyward-dta", "org", "list"]);
        one_line(&o, "the data directory keyward-dta does not exist");
        assert!(
            o.stderr.contains("keyward init --data-dir keyward-dta"),
            "{}",
            o.stderr
        );
        assert!(!cwd.join("keyward-dta").exists());
        std::fs::create_dir(cwd.join("empty")).unwrap();
        let o = run_in(&kw, &cwd, &["--data-dir", "empty", "user", "show", "x@y.z"]);
        one_line(&o, "the data directory empty holds no keyward database");
        assert_eq!(std::fs::read_dir(cwd.join("empty")).unwrap().count(), 0);
        // An empty file is no database either, and a file is no data dir.
        std::fs::write(cwd.join("empty/keyward.db"), "").unwrap();
        let o = run_in(&kw, &cwd, &["--data-dir", "empty", "org", "list"]);
        one_line(&o, "empty/keyward.db is not a keyward database");
        assert_eq!(
            std::fs::metadata(cwd.join("empty/keyward.db"))
                .unwrap()
                .len(),
            0
        );
        std::fs::write(cwd.join("a-file"), "").unwrap();
        let o = run_in(&kw, &cwd, &["--data-dir", "a-file", "org", "list"]);
        one_line(&o, "the data directory a-file is not a directory");
        // One server per SQLite data dir: a second one is refused and names the first.
        let first = start_serve(&kw, &cwd);
        let o = run_in(&kw, &cwd, &["serve", "--listen", "127.0.0.1:0"]);
        one_line(&o, "another keyward serve (process ");
        assert!(
            o.stderr
                .contains("is using the data directory ./keyward-data"),
            "{}",
            o.stderr
        );
        // Nor through another data dir whose database is a link to this one.
        std::fs::create_dir(cwd.join("linked")).unwrap();
        std::os::unix::fs::symlink("../keyward-data/keyward.db", cwd.join("linked/keyward.db"))
            .unwrap();
        let o = run_in(
            &kw,
            &cwd,
            &["--data-dir", "linked", "serve", "--listen", "127.0.0.1:0"],
        );
        one_line(&o, "another keyward serve");
        // Admin commands still run beside it.
        assert_eq!(run_in(&kw, &cwd, &["org", "list"]).code, 0);
        assert_eq!(first.stop(), 0);
        // Once it stopped, the data dir is free again.
        let again = start_serve(&kw, &cwd);
        assert_eq!(again.stop(), 0);
    } else {
        // Each way of not reaching PostgreSQL names its own cause and where it looked.
        let url = url::Url::parse(&kw.db.url).unwrap();
        let with = |f: &dyn Fn(&mut url::Url)| {
            let mut u = url.clone();
            f(&mut u);
            u.to_string()
        };
        let closed = with(&|u| u.set_port(Some(common::process::free_port())).unwrap());
        let role = with(&|u| u.set_username("no_such_role").unwrap());
        let database = with(&|u| u.set_path("/no_such_database"));
        for (url, cause) in [
            (closed, "Connection refused"),
            (role, "role \"no_such_role\" does not exist"),
            (database, "database \"no_such_database\" does not exist"),
        ] {
            let o = run_in(&kw, &cwd, &["--database-url", &url, "org", "list"]);
            one_line(&o, "cannot connect to PostgreSQL at ");
            assert!(o.stderr.contains(cause), "{cause:?} not in {}", o.stderr);
        }
        // The value of a parameter the driver does not know may be a secret: never shown.
        let secret = format!("{}?sslpassword=Key-Passphr4se", with(&|_| {}));
        let o = run_in(&kw, &cwd, &["--database-url", &secret, "org", "list"]);
        assert!(!o.stderr.contains("Key-Passphr4se"), "{}", o.stderr);
        // The data dir holds only mail here: listing creates none, and nodes may share one.
        assert_eq!(run_in(&kw, &cwd, &["org", "list"]).code, 0);
        assert!(!cwd.join("keyward-data").exists());
        let first = start_serve(&kw, &cwd);
        let logs = kw.db.dir.path().join("second");
        std::fs::create_dir_all(&logs).unwrap();
        let mut c = kw.base_command(&cwd);
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        let second = Serve::start(c, &logs);
        assert_eq!(second.stop(), 0);
        assert_eq!(first.stop(), 0);
    }
    kw.db.drop_db().await;
}

/// Upgrades (docs/deployment.md): several processes starting on one new database migrate it
/// once between them, and a binary refuses a database a newer keyward migrated further.
async fn cli_migrations_run_once_from_many_processes_and_a_newer_schema_is_refused(b: Backend) {
    let kw = Kw {
        db: TestDb::new(b).await,
        transcript: Default::default(),
        log_level: "warn",
    };
    let inits: Vec<_> = (0..4)
        .map(|_| {
            kw.command()
                .arg("init")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = inits
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one init wins");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("already"), "{err}");
        assert!(!err.contains("migration"), "{err}");
    }
    assert_eq!(kw.json(&["org", "list"]).as_array().unwrap().len(), 1);
    // A newer keyward's migration on record: refused before anything runs, saying what to do.
    let store = kw.db.open().await;
    let known = store.schema_version().await.unwrap().unwrap();
    {
        let mut c = store.conn().await.unwrap();
        let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                   execution_time) VALUES (9999, 'from the future', TRUE, $1, 0)";
        match c.as_conn() {
            keyward::test_support::store::Conn::Sqlite(e) => {
                sqlx::query(sql).bind(vec![0u8]).execute(e).await
            }
            keyward::test_support::store::Conn::Postgres(e) => sqlx::query(sql)
                .bind(vec![0u8])
                .execute(e)
                .await
                .map(|_| Default::default()),
        }
        .unwrap();
    }
    store.close().await;
    let o = kw.run(&["org", "list"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        format!(
            "error: the database's schema is at migration 9999, newer than this keyward knows \
             (up to {known}): run the newer keyward, or restore the backup taken before the \
             upgrade (docs/deployment.md)\n"
        )
    );
    kw.db.drop_db().await;
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("k.toml");
    std::fs::write(&conf, "[mail]\ntransprot = \"smtp\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .args(["--config", conf.to_str().unwrap(), "org", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transprot"), "{err}");
    assert!(
        !dir.path().join("keyward-data").exists(),
        "a refused start created the data dir"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env("KEYWARD_MAIL_TRANSPROT", "smtp")
        .args(["org", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYWARD_MAIL_TRANSPROT"));
}

#[test]
fn init_with_a_given_password_prints_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env("KEYWARD_PASSWORD_HASH_MEMORY_KIB", "256")
        .args([
            "init",
            "--org-name",
            "Acme",
            "--admin-username",
            "root@acme.test",
            "--admin-password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Admin-Passw0rd\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("root@acme.test"), "{text}");
    assert!(
        !text.contains("Admin-Passw0rd") && !text.contains("password:"),
        "{text}"
    );
    let mails = mails_in(&dir.path().join("keyward-data/mail"));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "root@acme.test");
}

#[test]
fn cert_generate_writes_a_ca_and_a_localhost_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .current_dir(dir.path())
            .args(["cert", "generate"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = dir.path().join("keyward-data/tls");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(
        !tls.join("../keyward.db").exists(),
        "cert generate opened the database"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // openssl agrees the chain is valid for localhost and 127.0.0.1.
    for (flag, name) in [
        ("-verify_hostname", "localhost"),
        ("-verify_ip", "127.0.0.1"),
    ] {
        let v = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(tls.join("ca.pem"))
            .args([flag, name])
            .arg(tls.join("cert.pem"))
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    // Existing files are not replaced without --force.
    let again = run(&[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(run(&["--force"]).status.success());
}
