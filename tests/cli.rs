//! The `keyward` binary, driven as a user would: every command of docs/cli.md, on
//! SQLite and PostgreSQL, with the secrets hygiene check of issue 2's "done when".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::{Serve, wait_for};
use common::{Backend, TestDb, latest_token, mails_in};
use keyward::domain::login::Channel;
use keyward::domain::secret::Password;
use keyward::domain::token::SuppliedSecret;
use keyward::service::login::LoginRequest;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `keyward` against one test database, collecting everything it prints.
struct Kw {
    db: TestDb,
    /// Every stdout and stderr byte of every run, for the secrets check.
    transcript: std::cell::RefCell<Vec<u8>>,
    log_level: &'static str,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kw {
    /// Over a store that exists (commands other than `init` and `serve` refuse a data dir
    /// without one).
    async fn new(b: Backend) -> Kw {
        let db = TestDb::new(b).await;
        db.open().await.close().await;
        Kw {
            db,
            transcript: Default::default(),
            log_level: "info",
        }
    }

    /// `keyward` with cheap hashing, this test's database and no inherited `KEYWARD_*`, in the
    /// default data dir (`./keyward-data` under `cwd`).
    fn base_command(&self, cwd: &Path) -> Command {
        common::process::keyward(&self.db, cwd, self.log_level)
    }

    fn command(&self) -> Command {
        let mut c = self.base_command(self.db.dir.path());
        c.arg("--data-dir").arg(self.db.data_dir());
        c
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let mut t = self.transcript.borrow_mut();
        t.extend(&out.stdout);
        t.extend(&out.stderr);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run_with(args, stdin);
        assert_eq!(o.code, 0, "keyward {args:?} failed: {}", o.stderr);
        o.stdout
    }

    /// Org Acme and its user ada@acme.test (mail to `email`) with `password`.
    fn acme_with_ada(&self, email: &str, password: &str) {
        self.ok(&["org", "create", "--name", "Acme"]);
        self.ok_with(
            &[
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "ada@acme.test",
                "--email",
                email,
                "--password-stdin",
            ],
            Some(password),
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn mails(&self) -> Vec<common::Mail> {
        mails_in(&self.db.mail_dir())
    }
}

fn assert_id(out: &str, prefix: &str) -> String {
    let id = out.trim_end_matches('\n');
    assert!(!id.contains('\n'), "more than an id: {out:?}");
    assert_eq!(id.len(), 18, "{out:?}");
    assert!(id.starts_with(prefix), "{out:?}");
    id.to_string()
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

on_both!(
    cli_runs_the_whole_token_lifecycle_and_leaks_no_secret,
    cli_bad_input_gives_one_line_and_changes_nothing,
    cli_serve_bootstraps_an_empty_data_dir,
    cli_list_formats,
    cli_rotates_disables_enables_and_deletes_oauth_clients,
    cli_errors_name_their_cause_and_a_server_that_cannot_start_creates_nothing,
    cli_mail_wait_prints_the_delivered_mail_or_says_why_not,
    cli_migrations_run_once_from_many_processes_and_a_newer_schema_is_refused,
);

async fn token_digest_of(db: &TestDb, username: &str) -> Option<String> {
    let store = db.open().await;
    let digest = {
        let mut c = store.conn().await.unwrap();
        keyward::store::users::find_by_username(&mut c.as_conn(), username)
            .await
            .unwrap()
            .unwrap()
            .token_digest
    };
    store.close().await;
    digest
}

async fn cli_runs_the_whole_token_lifecycle_and_leaks_no_secret(b: Backend) {
    let mut kw = Kw::new(b).await;
    kw.log_level = "trace";
    let pw1 = "First-Passw0rd";
    let pw2 = "Second-Passw0rd";

    let org = assert_id(&kw.ok(&["org", "create", "--name", "Acme"]), "00D");
    let user = assert_id(
        &kw.ok_with(
            &[
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "ada@acme.test",
                "--email",
                "ada@mail.acme.test",
                "--first-name",
                "Ada",
                "--last-name",
                "Lovelace",
                "--password-stdin",
            ],
            Some(&format!("{pw1}\n")),
        ),
        "005",
    );
    // R-T7: the first token is mailed with the first password.
    let mails = kw.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Your new security token");
    let t1 = latest_token(&mails, "ada@mail.acme.test");
    let d1 = token_digest_of(&kw.db, "ada@acme.test").await.unwrap();

    // R-T5 (admin-triggered, R-T9): new mail, old digest no longer current.
    let o = kw.run(&["token", "reset", "ada@acme.test"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.contains("emailed to ada@mail.acme.test"));
    let t2 = latest_token(&kw.mails(), "ada@mail.acme.test");
    assert_ne!(t1, t2);
    let d2 = token_digest_of(&kw.db, "ada@acme.test").await.unwrap();
    assert_ne!(d1, d2);

    // R-T6: a password change mails a new token.
    kw.ok_with(
        &["user", "set-password", &user, "--password-stdin"],
        Some(pw2),
    );
    let mails = kw.mails();
    assert!(
        mails
            .iter()
            .any(|m| m.subject == "Your password was changed")
    );
    let t3 = latest_token(&mails, "ada@mail.acme.test");
    assert_ne!(t3, t2);
    let d3 = token_digest_of(&kw.db, "ada@acme.test").await.unwrap();

    // R-T8: deactivation keeps the digest; reactivation makes the same token work again.
    kw.ok(&["user", "deactivate", "ada@acme.test"]);
    let shown = kw.json(&["user", "show", "ada@acme.test"]);
    assert_eq!(shown["active"], false);
    kw.ok(&["user", "reactivate", &user.to_lowercase()]);
    assert_eq!(kw.json(&["user", "show", &user])["active"], true);
    assert_eq!(token_digest_of(&kw.db, "ada@acme.test").await.unwrap(), d3);

    // Network access, login IP ranges, policy.
    let r1 = assert_id(
        &kw.ok(&[
            "network",
            "add",
            "Acme",
            "10.0.0.0/8",
            "--description",
            "office",
        ]),
        "0IP",
    );
    assert_id(
        &kw.ok(&["network", "add", &org, "192.0.2.1", "192.0.2.9"]),
        "0IP",
    );
    let ranges = kw.json(&["network", "list", "Acme"]);
    assert_eq!(ranges.as_array().unwrap().len(), 2);
    assert_eq!(ranges[0]["start"], "10.0.0.0");
    assert_eq!(ranges[0]["end"], "10.255.255.255");
    kw.ok(&["network", "remove", "Acme", &r1]);
    assert_eq!(
        kw.json(&["network", "list", "Acme"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let profile = assert_id(
        &kw.ok(&[
            "profile",
            "create",
            "--org",
            "Acme",
            "--name",
            "Integrations",
            "--api-only",
        ]),
        "00e",
    );
    assert_id(
        &kw.ok(&[
            "profile",
            "login-ip",
            "add",
            "Acme",
            "Integrations",
            "198.51.100.0/24",
        ]),
        "0LI",
    );
    let lr = kw.json(&["profile", "login-ip", "list", "Acme", &profile]);
    assert_eq!(lr[0]["start"], "198.51.100.0");
    kw.ok(&[
        "policy",
        "set",
        "Acme",
        "--lockout-attempts",
        "5",
        "--session-seconds",
        "3600",
    ]);
    let p = kw.json(&["policy", "show", "Acme"]);
    assert_eq!(
        (
            p["lockout_attempts"].as_i64(),
            p["session_seconds"].as_i64()
        ),
        (Some(5), Some(3600))
    );
    let (client_id, client_secret) = {
        let out = kw.ok(&[
            "oauth", "client", "create", "--org", "Acme", "--name", "ETL",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        (lines[0].to_string(), lines[1].to_string())
    };
    assert!(client_id.starts_with("3MVG9"));
    let clients = kw.ok(&["oauth", "client", "list", "Acme"]);
    assert!(clients.contains(&client_id) && !clients.contains(&client_secret));

    // Logins go through the library here (the HTTP interfaces come later); the CLI lists them.
    {
        let services = services_for(&kw.db).await;
        for secret in [format!("{pw2}{t3}"), pw2.to_string(), format!("{pw1}{t1}")] {
            services
                .login({
                    let mut r = LoginRequest::new(
                        "ada@acme.test",
                        SuppliedSecret::split(&Password::new(secret)),
                        Channel::SoapPartner,
                        "203.0.113.5".parse().unwrap(),
                    );
                    r.client = "cli-test".into();
                    r.api_version = "59.0".into();
                    r
                })
                .await
                .unwrap();
        }
        services.db.close().await;
    }
    let history = kw.json(&["login-history", "--org", "Acme"]);
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        // newest first: an old password with an old token, the password alone, then both right
        [
            "Invalid password",
            "Failed: API security token required",
            "Success"
        ]
    );
    assert_eq!(history[0]["username"], "ada@acme.test");
    let by_user = kw.ok(&["login-history", "--user", "ada@acme.test", "--limit", "1"]);
    assert_eq!(by_user.lines().count(), 2, "{by_user}");

    let audit = kw.json(&["audit-trail", "Acme"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for expected in [
        "org.created",
        "user.created",
        "password.set",
        "token.reset",
        "password.reset",
        "user.deactivated",
        "user.reactivated",
        "trusted_ip_range.added",
        "trusted_ip_range.removed",
        "profile.created",
        "login_ip_range.added",
        "policy.changed",
        "oauth_client.created",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let mail_list = kw.json(&["mail", "list", "--to", "ada@mail.acme.test"]);
    let first = mail_list[0]["id"].as_str().unwrap().to_string();
    let shown = kw.ok(&["mail", "show", &first]);
    assert!(
        shown.contains("Security token (case-sensitive): [redacted]"),
        "{shown}"
    );

    // The secrets check: no token and no password anywhere but the mail files.
    let tokens = [&t1, &t2, &t3];
    let mail_text: String = kw.mails().iter().map(|m| m.text.clone()).collect();
    for t in tokens {
        assert_eq!(
            count(mail_text.as_bytes(), t),
            1,
            "token {t} not mailed exactly once"
        );
    }
    let dump = kw.db.dump();
    let transcript = kw.transcript.borrow().clone();
    assert!(
        String::from_utf8_lossy(&transcript).contains("sqlx::query"),
        "the transcript should hold the most verbose logs, SQL statements included"
    );
    for secret in [t1.as_str(), &t2, &t3, pw1, pw2, &client_secret] {
        assert_eq!(count(&dump, secret), 0, "{secret:?} found in the database");
        if secret != client_secret {
            assert_eq!(
                count(&transcript, secret),
                0,
                "{secret:?} found in the CLI output"
            );
        }
    }
    // The consumer secret is printed once, at creation, and only there.
    assert_eq!(count(&transcript, &client_secret), 1);
    kw.db.drop_db().await;
}

/// Issue 14, item 3, on the command line: `oauth client rotate-secret` prints the new secret on
/// one line (the old one is refused), `disable`/`enable` switch the client, `delete` removes it;
/// each takes the consumer key or the client's id, and names what it cannot find.
async fn cli_rotates_disables_enables_and_deletes_oauth_clients(b: Backend) {
    let kw = Kw::new(b).await;
    kw.ok(&["org", "create", "--name", "Acme"]);
    let out = kw.ok(&[
        "oauth", "client", "create", "--org", "Acme", "--name", "ETL",
    ]);
    let (key, first) = out.split_once('\n').unwrap();
    let first = first.trim_end().to_string();
    let id = kw.json(&["oauth", "client", "list", "Acme"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let authenticates = |secret: String| {
        let key = key.to_string();
        let db = &kw.db;
        async move {
            let s = services_for(db).await;
            let r = s.authenticate_client(&key, &secret).await.unwrap();
            s.db.close().await;
            r.map(|_| ())
        }
    };
    let rotated = kw.ok(&["oauth", "client", "rotate-secret", key]);
    assert_eq!(rotated.lines().count(), 1, "{rotated:?}");
    let second = rotated.trim_end().to_string();
    assert_eq!(second.len(), 64);
    assert!(
        authenticates(first.clone()).await.is_err(),
        "the old secret is refused"
    );
    assert_eq!(authenticates(second.clone()).await, Ok(()));
    // By id too; disabling twice says so and fails nothing.
    assert_eq!(kw.ok(&["oauth", "client", "disable", &id]), "");
    assert_eq!(
        kw.json(&["oauth", "client", "list", "Acme"])[0]["enabled"],
        false
    );
    let again = kw.run(&["oauth", "client", "disable", &id]);
    assert_eq!(again.code, 0);
    assert!(
        again.stderr.contains("already disabled"),
        "{}",
        again.stderr
    );
    assert!(matches!(
        authenticates(second.clone()).await,
        Err(keyward::service::oauth::ClientRefusal::Disabled { .. })
    ));
    kw.ok(&["oauth", "client", "enable", key]);
    assert_eq!(authenticates(second.clone()).await, Ok(()));
    kw.ok(&["oauth", "client", "delete", key]);
    assert_eq!(
        kw.json(&["oauth", "client", "list", "Acme"]),
        serde_json::json!([])
    );
    for cmd in ["rotate-secret", "disable", "enable", "delete"] {
        let o = kw.run(&["oauth", "client", cmd, key]);
        assert_ne!(o.code, 0);
        assert!(
            o.stderr.contains(&format!("no OAuth client {key}")),
            "{cmd}: {}",
            o.stderr
        );
        assert_eq!(o.stdout, "");
    }
    let audit = kw.json(&["audit-trail", "Acme"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"oauth_client.deleted"), "{actions:?}");
    kw.db.drop_db().await;
}

async fn services_for(db: &TestDb) -> std::sync::Arc<keyward::service::Services> {
    let clock = std::sync::Arc::new(keyward::clock::FixedClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    common::services_on(
        db,
        clock,
        keyward::mail::transport::Transport::file(db.mail_dir()),
    )
    .await
}

/// Everything an admin could see, to compare before and after a refused command.
fn snapshot(kw: &Kw) -> String {
    let mut s = String::new();
    for args in [
        vec!["org", "list"],
        vec!["user", "list", "Acme"],
        vec!["network", "list", "Acme"],
        vec!["profile", "list", "Acme"],
        vec!["profile", "login-ip", "list", "Acme", "Standard User"],
        vec!["policy", "show", "Acme"],
        vec!["audit-trail", "Acme"],
        vec!["mail", "list"],
        vec!["oauth", "client", "list", "Acme"],
    ] {
        s.push_str(&kw.json(&args).to_string());
        s.push('\n');
    }
    s
}

async fn cli_bad_input_gives_one_line_and_changes_nothing(b: Backend) {
    let kw = Kw::new(b).await;
    kw.acme_with_ada("ada@acme.test", "First-Passw0rd");
    let before = snapshot(&kw);
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["org", "create", "--name", "acme"],
            None,
            "already exists",
        ),
        (
            vec!["address-limit", "clear", "not-an-address"],
            None,
            "is not an IP address",
        ),
        (
            vec!["address-limit", "clear", "203.0.113.9"],
            None,
            "203.0.113.9 has no failed logins on record",
        ),
        (
            vec!["org", "create", "--name", ""],
            None,
            "must not be empty",
        ),
        (
            vec!["org", "create", "--name", "00D000000000001"],
            None,
            "must not look like an org id",
        ),
        (
            vec![
                "org",
                "set-delegated-auth",
                "Acme",
                "https://sso.acme.test/?key=s3cret",
            ],
            None,
            "no query string",
        ),
        (
            vec!["network", "add", "Acme", "0.0.0.0/0"],
            None,
            "too wide",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Nope",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "no org named \"Nope\"",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "00D000000000001",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "no org with id",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "ADA@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "already taken",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "not-an-email",
                "--email",
                "x@acme.test",
            ],
            None,
            "invalid username",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "nope",
            ],
            None,
            "invalid email",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--profile",
                "Ghost",
            ],
            None,
            "no profile \"Ghost\"",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--password-stdin",
            ],
            Some("weak"),
            "too short",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--password-stdin",
            ],
            Some("abcdefghij"),
            "too weak",
        ),
        (
            vec!["user", "set-password", "ada@acme.test", "--password-stdin"],
            Some("First-Passw0rd"),
            "used recently",
        ),
        (
            vec!["user", "set-password", "ada@acme.test", "--password-stdin"],
            Some(""),
            "no password on stdin",
        ),
        (
            vec!["user", "set-password", "ada@acme.test"],
            None,
            "--password-stdin",
        ),
        (
            vec!["user", "show", "005000000000001"],
            None,
            "no user with id",
        ),
        (
            vec!["user", "show", "005000000000001AA9"],
            None,
            "malformed id",
        ),
        (
            vec!["user", "deactivate", "nobody@acme.test"],
            None,
            "no user nobody@acme.test",
        ),
        (
            vec!["token", "reset", "00D000000000001"],
            None,
            "is not a user id",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.9", "10.0.0.1"],
            None,
            "is after end",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.1", "::1"],
            None,
            "not the same IP version",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.300", "10.0.0.1"],
            None,
            "invalid IP address",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.0/40"],
            None,
            "invalid CIDR",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.300"],
            None,
            "invalid IP address \"10.0.0.300\"",
        ),
        (
            vec!["network", "remove", "Acme", "0IP000000000001"],
            None,
            "no trusted IP range",
        ),
        (
            vec!["network", "remove", "Acme", "0LI000000000001"],
            None,
            "not a trusted IP range id",
        ),
        (
            vec![
                "profile",
                "create",
                "--org",
                "Acme",
                "--name",
                "standard user",
            ],
            None,
            "already has a profile",
        ),
        (
            vec![
                "profile",
                "create",
                "--org",
                "Acme",
                "--name",
                "X",
                "--api-only",
                "--no-api",
            ],
            None,
            "contradict",
        ),
        (
            vec!["profile", "login-ip", "add", "Acme", "Ghost", "10.0.0.0/8"],
            None,
            "no profile",
        ),
        (
            vec!["policy", "set", "Acme", "--session-seconds", "5"],
            None,
            "session-seconds must be between",
        ),
        (vec!["policy", "set", "Acme"], None, "nothing to change"),
        (
            vec!["policy", "set", "Acme", "--complexity", "extreme"],
            None,
            "unknown complexity",
        ),
        (
            vec!["org", "set-delegated-auth", "Acme", "ftp://sso"],
            None,
            "invalid URL",
        ),
        (
            vec!["login-history", "--limit", "0"],
            None,
            "--limit must be between",
        ),
        (
            vec!["login-history", "--user", "ghost@acme.test"],
            None,
            "no user ghost@acme.test",
        ),
        (
            vec!["mail", "show", "02s000000000001"],
            None,
            "no mail with id",
        ),
        (vec!["init"], None, "already has orgs"),
    ];
    for (args, stdin, expect) in cases {
        let o = kw.run_with(&args, stdin);
        assert_ne!(o.code, 0, "{args:?} succeeded");
        assert!(o.stdout.is_empty(), "{args:?} printed {:?}", o.stdout);
        let line = o.stderr.trim_end();
        assert!(
            !line.contains('\n'),
            "{args:?}: more than one line: {line:?}"
        );
        assert!(line.starts_with("error: "), "{args:?}: {line:?}");
        assert!(line.contains(expect), "{args:?}: {line:?} lacks {expect:?}");
        assert!(
            !line.contains("s3cret"),
            "{args:?}: the error repeats a secret: {line:?}"
        );
    }
    assert_eq!(snapshot(&kw), before, "a refused command changed something");
    kw.db.drop_db().await;
}

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

/// `mail wait` (README's examples): the newest delivered mail's file, or why there is none.
async fn cli_mail_wait_prints_the_delivered_mail_or_says_why_not(b: Backend) {
    let kw = Kw::new(b).await;
    let o = kw.run(&["mail", "wait", "--to", "ada@acme.test", "--timeout", "0"]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "error: no mail to ada@acme.test was delivered within 0 s (none was queued)\n"
    );
    kw.acme_with_ada("ADA@acme.test", "Passw0rd!one");
    // No server runs: the command delivered its mail itself, so there is nothing to wait for.
    let file = kw.ok(&["mail", "wait", "--to", "ada@acme.test"]);
    let file = Path::new(file.trim_end());
    assert!(file.starts_with(kw.db.mail_dir()), "{}", file.display());
    let text = std::fs::read_to_string(file).unwrap();
    let token = latest_token(&kw.mails(), "ADA@acme.test");
    assert!(text.contains(&format!("Security token (case-sensitive): {token}")));
    // A file that is not here (another node's data dir, a restored copy) is not printed.
    std::fs::remove_file(file).unwrap();
    let o = kw.run(&["mail", "wait", "--to", "ada@acme.test"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("was delivered, but not to "),
        "{}",
        o.stderr
    );
    let o = kw.run(&["mail", "wait", "--to", "a@b.c", "--timeout", "86401"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    // A mail that goes dead (one attempt, at an SMTP port nothing listens on) is said to be
    // dead, and waiting for it says why.
    let port = common::process::free_port().to_string();
    let reset = kw
        .command()
        .args(["token", "reset", "ada@acme.test"])
        .env("KEYWARD_MAIL_TRANSPORT", "smtp")
        .env("KEYWARD_MAIL_SMTP_HOST", "127.0.0.1")
        .env("KEYWARD_MAIL_SMTP_PORT", &port)
        .env("KEYWARD_MAIL_SMTP_SECURITY", "none")
        .env("KEYWARD_MAIL_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&reset.stderr);
    assert!(said.contains("will not be tried again"), "{said}");
    assert!(!said.contains("stay queued"), "{said}");
    let o = kw.run(&["mail", "wait", "--to", "ada@acme.test"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("could not be delivered: "),
        "{}",
        o.stderr
    );
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
            keyward::store::Conn::Sqlite(e) => sqlx::query(sql).bind(vec![0u8]).execute(e).await,
            keyward::store::Conn::Postgres(e) => sqlx::query(sql)
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

async fn cli_list_formats(b: Backend) {
    let kw = Kw::new(b).await;
    kw.ok(&["org", "create", "--name", "Acme, Inc."]);
    let table = kw.ok(&["org", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("Acme, Inc."));
    let csv = kw.ok(&["org", "list", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,name,delegated_auth_url,created"));
    assert!(lines.next().unwrap().contains(",\"Acme, Inc.\","), "{csv}");
    let json = kw.json(&["org", "list"]);
    assert_eq!(json[0]["name"], "Acme, Inc.");
    assert!(json[0]["id"].as_str().unwrap().starts_with("00D"));
    let profiles = kw.json(&["profile", "list", "Acme, Inc."]);
    assert_eq!(profiles.as_array().unwrap().len(), 3);
    let empty = kw.ok(&["network", "list", "Acme, Inc.", "--format", "csv"]);
    assert_eq!(empty, "id,start,end,description,created\r\n");
    // A single address is the range of that one address.
    assert_id(&kw.ok(&["network", "add", "Acme, Inc.", "10.0.0.7"]), "0IP");
    let one = kw.json(&["network", "list", "Acme, Inc."]);
    assert_eq!(
        (&one[0]["start"], &one[0]["end"]),
        (&"10.0.0.7".into(), &"10.0.0.7".into())
    );
    let o = kw.run(&["org", "list", "--format", "xml"]);
    assert_eq!(o.code, 2);
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
