//! The commands an operator uses day to day: the whole token lifecycle with no secret leaked,
//! OAuth client commands, `mail wait`, and list formats.

use super::support::{Kw, count};
use crate::common;
use crate::common::{Backend, TestDb, latest_token};
use crate::on_both;
use keyward::domain::login::Channel;
use keyward::domain::secret::Password;
use keyward::domain::token::SuppliedSecret;
use keyward::service::login::LoginRequest;
use std::path::Path;

on_both!(
    cli_runs_the_whole_token_lifecycle_and_leaks_no_secret,
    cli_list_formats,
    cli_rotates_disables_enables_and_deletes_oauth_clients,
    cli_mail_wait_prints_the_delivered_mail_or_says_why_not,
);

fn assert_id(out: &str, prefix: &str) -> String {
    let id = out.trim_end_matches('\n');
    assert!(!id.contains('\n'), "more than an id: {out:?}");
    assert_eq!(id.len(), 18, "{out:?}");
    assert!(id.starts_with(prefix), "{out:?}");
    id.to_string()
}

async fn token_digest_of(db: &TestDb, username: &str) -> Option<String> {
    let store = db.open().await;
    let digest = {
        let mut c = store.conn().await.unwrap();
        keyward::test_support::store::users::find_by_username(&mut c.as_conn(), username)
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
        services.close().await;
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
            s.close().await;
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
