//! `keyward integration …`, `keyward token usage` and the integration-token policy settings:
//! ids on stdout and the token only in the user's mail, the list formats, rotation and
//! revocation as the list shows them, the usage inventories, and bad input that changes
//! nothing.

use super::support::{Kw, count};
use crate::common;
use crate::common::{Backend, TestDb, latest_token};
use crate::on_both;
use keyward::domain::login::Channel;
use keyward::domain::secret::Password;
use keyward::domain::token::SuppliedSecret;
use keyward::service::login::LoginRequest;
use serde_json::Value;

on_both!(
    cli_creates_lists_rotates_and_revokes_integration_tokens,
    cli_shows_where_tokens_were_used,
    cli_sets_and_shows_the_integration_token_policy,
    cli_refuses_bad_integration_input_and_changes_nothing,
);

const PW: &str = "First-Passw0rd";
const ADA: &str = "ada@acme.test";
const ADA_MAIL: &str = "ada@mail.acme.test";
const COLUMNS: [&str; 7] = [
    "id",
    "name",
    "status",
    "created",
    "expires",
    "last_used",
    "last_address",
];

/// The one line a creating command prints: an 18-character id with `prefix`.
fn one_id(out: &str, prefix: &str) -> String {
    let id = out.strip_suffix('\n').unwrap_or_else(|| panic!("{out:?}"));
    assert!(!id.contains('\n'), "more than an id: {out:?}");
    assert_eq!(id.len(), 18, "{out:?}");
    assert!(id.starts_with(prefix), "{out:?}");
    id.to_string()
}

/// The integration tokens mailed so far, oldest first: (subject, token).
fn mailed_tokens(kw: &Kw) -> Vec<(String, String)> {
    kw.mails()
        .iter()
        .filter(|m| m.to == ADA_MAIL)
        .filter_map(|m| m.integration_token().map(|t| (m.subject.clone(), t)))
        .collect()
}

fn list(kw: &Kw) -> Vec<Value> {
    kw.json(&["integration", "list", ADA])
        .as_array()
        .unwrap()
        .clone()
}

fn field<'a>(rows: &'a [Value], id: &str, name: &str) -> &'a Value {
    let row = rows
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {rows:?}"));
    &row[name]
}

fn instant(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// Logs `username` in over SOAP with `secret` from `ip`, through the library (as
/// lifecycle.rs does: the HTTP interfaces have their own tests).
async fn login(db: &TestDb, username: &str, secret: &str, ip: &str, client: &str) -> bool {
    let clock = std::sync::Arc::new(keyward::clock::FixedClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let services = common::services_on(
        db,
        clock,
        keyward::mail::transport::Transport::file(db.mail_dir()),
    )
    .await;
    let mut r = LoginRequest::new(
        username,
        SuppliedSecret::split(&Password::new(secret.to_string())),
        Channel::SoapPartner,
        ip.parse().unwrap(),
    );
    r.client = client.into();
    r.api_version = "59.0".into();
    let answer = services.login(r).await.unwrap();
    services.close().await;
    answer.session.is_some()
}

async fn cli_creates_lists_rotates_and_revokes_integration_tokens(b: Backend) {
    let mut kw = Kw::new(b).await;
    kw.log_level = "trace";
    kw.acme_with_ada(ADA_MAIL, PW);

    // The id, one line; the token goes to the user's mail only.
    let o = kw.run(&["integration", "create", ADA, "--name", "Data Loader"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let loader = one_id(&o.stdout, "0Ik");
    assert!(o.stderr.contains("emailed"), "{}", o.stderr);
    let mailed = mailed_tokens(&kw);
    assert_eq!(mailed.len(), 1, "{mailed:?}");
    assert_eq!(mailed[0].0, "Your new integration token: Data Loader");
    let t1 = mailed[0].1.clone();
    assert!(t1.starts_with("kwi_") && t1.len() == 40, "{t1}");
    // The outbox keeps the mail with the token line redacted.
    let outbox = kw.ok(&["mail", "list", "--to", ADA_MAIL, "--format", "json"]);
    assert!(outbox.contains("Your new integration token"), "{outbox}");
    assert!(!outbox.contains(&t1));
    let backup = one_id(
        &kw.ok(&[
            "integration",
            "create",
            &ADA.to_uppercase(),
            "--name",
            "Backup",
            "--expires-days",
            "7",
        ]),
        "0Ik",
    );

    // JSON: newest first, exactly the listing's columns, never a value or digest.
    let rows = list(&kw);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [backup.as_str(), loader.as_str()]);
    for r in &rows {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = COLUMNS.to_vec();
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want, "{r}");
        assert_eq!(r["status"], "active");
        assert_eq!(r["last_used"], Value::Null);
        assert_eq!(r["last_address"], Value::Null);
    }
    let lifetime =
        |id: &str| instant(field(&rows, id, "expires")) - instant(field(&rows, id, "created"));
    assert_eq!(lifetime(&backup), time::Duration::days(7));
    assert_eq!(lifetime(&loader), time::Duration::days(90));
    // Table: the columns in upper case, one row each; CSV: the header row, then the rows.
    let table = kw.ok(&["integration", "list", ADA]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        COLUMNS
            .map(str::to_uppercase)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(lines.clone().count(), 2, "{table}");
    assert!(
        table.contains("Data Loader") && table.contains(&backup),
        "{table}"
    );
    let csv = kw.ok(&["integration", "list", ADA, "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{backup},Backup,active,"))
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{loader},Data Loader,active,"))
    );
    assert_eq!(lines.next(), None);
    // A user with none: an empty list in every format.
    kw.ok(&[
        "user",
        "create",
        "--org",
        "Acme",
        "--username",
        "bob@acme.test",
        "--email",
        "bob@acme.test",
    ]);
    assert_eq!(
        kw.json(&["integration", "list", "bob@acme.test"]),
        Value::Array(vec![])
    );
    assert_eq!(
        kw.ok(&["integration", "list", "bob@acme.test", "--format", "csv"]),
        format!("{}\r\n", COLUMNS.join(","))
    );

    // Rotation: the successor's id, one line; a new token by mail with the same name; the old
    // one in its grace window.
    let o = kw.run(&["integration", "rotate", &loader.to_lowercase()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("the old one keeps working"),
        "{}",
        o.stderr
    );
    let successor = one_id(&o.stdout, "0Ik");
    assert_ne!(successor, loader);
    let mailed = mailed_tokens(&kw);
    assert_eq!(mailed.len(), 3, "{mailed:?}");
    assert_eq!(mailed[2].0, "Your new integration token: Data Loader");
    let t3 = mailed[2].1.clone();
    assert_ne!(t3, t1);
    let rows = list(&kw);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], successor.as_str());
    assert_eq!(field(&rows, &successor, "name"), "Data Loader");
    assert_eq!(field(&rows, &successor, "status"), "active");
    assert_eq!(field(&rows, &loader, "status"), "in grace");
    // Both work now: the predecessor for its grace window.
    assert!(login(&kw.db, ADA, &t1, "203.0.113.5", "etl").await);
    assert!(login(&kw.db, ADA, &t3, "203.0.113.5", "etl").await);

    // Revocation: nothing on stdout, a confirmation on stderr, the list says so, and the token
    // no longer logs in.
    let o = kw.run(&["integration", "revoke", &successor]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stderr);
    assert!(
        o.stderr.contains("revoked") && o.stderr.contains(&successor),
        "{}",
        o.stderr
    );
    assert_eq!(field(&list(&kw), &successor, "status"), "revoked");
    assert!(!login(&kw.db, ADA, &t3, "203.0.113.5", "etl").await);
    // Twice is refused and says why.
    let o = kw.run(&["integration", "revoke", &successor]);
    assert_eq!(o.code, 1);
    // (The transcript is at trace level here: the error is stderr's last line.)
    assert!(
        o.stderr.ends_with(&format!(
            "\nerror: integration token {successor} is revoked already\n"
        )),
        "{}",
        o.stderr
    );
    // A token in its grace window is revoked at once too.
    kw.ok(&["integration", "revoke", &loader]);
    assert_eq!(field(&list(&kw), &loader, "status"), "revoked");
    assert!(!login(&kw.db, ADA, &t1, "203.0.113.5", "etl").await);

    // With no grace, a rotation ends the old token at once, and says so.
    kw.ok(&["policy", "set", "Acme", "--integration-grace-hours", "0"]);
    let o = kw.run(&["integration", "rotate", &backup]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("the old one stopped working now"),
        "{}",
        o.stderr
    );
    assert_eq!(field(&list(&kw), &backup, "status"), "revoked");

    // No token was ever printed.
    let transcript = kw.transcript.take();
    for t in [&t1, &t3] {
        assert_eq!(count(&transcript, t), 0, "a token was printed");
    }
    assert_eq!(count(&transcript, "kwi_"), 0, "a token was printed");
    kw.db.drop_db().await;
}

async fn cli_shows_where_tokens_were_used(b: Backend) {
    let kw = Kw::new(b).await;
    kw.acme_with_ada(ADA_MAIL, PW);
    let security_token = latest_token(&kw.mails(), ADA_MAIL);
    let id = one_id(
        &kw.ok(&["integration", "create", ADA, "--name", "ETL"]),
        "0Ik",
    );
    let token = mailed_tokens(&kw).pop().unwrap().1;
    let usage = |args: &[&str]| kw.json(args).as_array().unwrap().clone();
    assert!(usage(&["integration", "usage", &id]).is_empty());
    assert!(usage(&["token", "usage", ADA]).is_empty());

    for (secret, ip, client) in [
        (token.as_str(), "203.0.113.5", "etl"),
        (token.as_str(), "203.0.113.5", "etl"),
        (token.as_str(), "198.51.100.7", "dataloader"),
    ] {
        assert!(login(&kw.db, ADA, secret, ip, client).await);
    }
    assert!(
        login(
            &kw.db,
            ADA,
            &format!("{PW}{security_token}"),
            "192.0.2.1",
            "jsforce"
        )
        .await
    );

    // The token's inventory: one row per client and address, with its count.
    let rows = usage(&["integration", "usage", &id]);
    let mut seen: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["client"].as_str().unwrap().to_string(),
                r["source_ip"].as_str().unwrap().to_string(),
                r["uses"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("dataloader".to_string(), "198.51.100.7".to_string(), 1),
            ("etl".to_string(), "203.0.113.5".to_string(), 2),
        ]
    );
    for r in &rows {
        assert!(instant(&r["first_seen"]) <= instant(&r["last_seen"]), "{r}");
    }
    let csv = kw.ok(&["integration", "usage", &id, "--format", "csv"]);
    assert_eq!(
        csv.lines().next(),
        Some("client,source_ip,first_seen,last_seen,uses")
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let table = kw.ok(&["integration", "usage", &id.to_lowercase()]);
    assert!(
        table.starts_with("CLIENT") && table.contains("198.51.100.7"),
        "{table}"
    );
    // The list shows the last use.
    let listed = list(&kw);
    assert!(listed[0]["last_used"].is_string(), "{listed:?}");
    assert!(listed[0]["last_address"].is_string(), "{listed:?}");

    // The security token's inventory has only the login that used it.
    let rows = usage(&["token", "usage", ADA]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["client"], "jsforce");
    assert_eq!(rows[0]["source_ip"], "192.0.2.1");
    assert_eq!(rows[0]["uses"], 1);
    let user_id = kw.json(&["user", "show", ADA])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let table = kw.ok(&["token", "usage", &user_id]);
    assert!(
        table.starts_with("CLIENT") && table.contains("jsforce"),
        "{table}"
    );
    kw.db.drop_db().await;
}

async fn cli_sets_and_shows_the_integration_token_policy(b: Backend) {
    let kw = Kw::new(b).await;
    kw.acme_with_ada(ADA_MAIL, PW);
    let shown = kw.json(&["policy", "show", "Acme"]);
    assert_eq!(
        (
            &shown["integration_max_days"],
            &shown["integration_grace_hours"],
            &shown["token_grace_hours"],
            &shown["integration_reminder_days"],
        ),
        (
            &Value::from(90),
            &Value::from(24),
            &Value::from(0),
            &Value::from("14,3,1")
        )
    );
    let o = kw.run(&[
        "policy",
        "set",
        "Acme",
        "--integration-max-days",
        "30",
        "--integration-grace-hours",
        "2",
        "--token-grace-hours",
        "1",
        "--integration-reminder-days",
        "7,1",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{}", o.stderr);
    let shown = kw.json(&["policy", "show", "Acme"]);
    assert_eq!(shown["integration_max_days"], 30);
    assert_eq!(shown["integration_grace_hours"], 2);
    assert_eq!(shown["token_grace_hours"], 1);
    assert_eq!(shown["integration_reminder_days"], "7,1");
    let table = kw.ok(&["policy", "show", "Acme"]);
    for line in [
        "integration_max_days",
        "integration_grace_hours",
        "integration_reminder_days",
        "token_grace_hours",
    ] {
        assert!(table.lines().any(|l| l.starts_with(line)), "{table}");
    }
    assert!(table.contains("7,1"), "{table}");
    let audit = kw.json(&["audit-trail", "Acme"]);
    let latest = audit[0]["display"].as_str().unwrap();
    assert!(
        latest.contains("integration token maximum days 90 → 30")
            && latest.contains("integration token reminder days 14,3,1 → 7,1"),
        "{latest}"
    );
    // "" turns the reminders off.
    kw.ok(&["policy", "set", "Acme", "--integration-reminder-days", ""]);
    assert_eq!(
        kw.json(&["policy", "show", "Acme"])["integration_reminder_days"],
        ""
    );

    // The new maximum is what a token gets and the most it may ask for.
    let id = one_id(
        &kw.ok(&["integration", "create", ADA, "--name", "ETL"]),
        "0Ik",
    );
    let rows = list(&kw);
    assert_eq!(
        instant(field(&rows, &id, "expires")) - instant(field(&rows, &id, "created")),
        time::Duration::days(30)
    );
    let o = kw.run(&[
        "integration",
        "create",
        ADA,
        "--name",
        "Long",
        "--expires-days",
        "31",
    ]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "error: an integration token expires after 1 to 30 days in this org (got 31)\n"
    );

    // Out of range: one line, and the policy stays as it was.
    let before = kw.json(&["policy", "show", "Acme"]);
    for (flag, value, expect) in [
        (
            "--integration-max-days",
            "0",
            "integration-max-days must be between 1 and 3650",
        ),
        (
            "--integration-max-days",
            "3651",
            "integration-max-days must be between 1 and 3650",
        ),
        (
            "--integration-grace-hours",
            "721",
            "integration-grace-hours",
        ),
        ("--token-grace-hours", "721", "token-grace-hours"),
        (
            "--integration-reminder-days",
            "14,x",
            "whole numbers of days",
        ),
        ("--integration-reminder-days", "0", "reminder"),
    ] {
        let o = kw.run(&["policy", "set", "Acme", flag, value]);
        assert_ne!(o.code, 0, "{flag} {value} was accepted");
        let line = o.stderr.trim_end();
        assert!(
            !line.contains('\n') && line.starts_with("error: "),
            "{line}"
        );
        assert!(line.contains(expect), "{flag} {value}: {line}");
    }
    assert_eq!(kw.json(&["policy", "show", "Acme"]), before);
    kw.db.drop_db().await;
}

/// Everything a refused integration command could have changed.
fn snapshot(kw: &Kw) -> String {
    let mut s = String::new();
    for args in [
        vec!["integration", "list", ADA],
        vec!["audit-trail", "Acme"],
        vec!["mail", "list"],
        vec!["policy", "show", "Acme"],
    ] {
        s.push_str(&kw.json(&args).to_string());
        s.push('\n');
    }
    s
}

async fn cli_refuses_bad_integration_input_and_changes_nothing(b: Backend) {
    let kw = Kw::new(b).await;
    kw.acme_with_ada(ADA_MAIL, PW);
    let id = one_id(
        &kw.ok(&["integration", "create", ADA, "--name", "ETL"]),
        "0Ik",
    );
    let user_id = kw.json(&["user", "show", ADA])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org_id = kw.json(&["org", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&kw);
    let unknown = "0Ik000000000001";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["integration", "rotate", unknown],
            format!("no integration token {unknown}"),
        ),
        (
            vec!["integration", "revoke", unknown],
            format!("no integration token {unknown}"),
        ),
        (
            vec!["integration", "usage", unknown],
            format!("no integration token {unknown}"),
        ),
        // Another object's id names no token.
        (
            vec!["integration", "revoke", &user_id],
            format!("no integration token {user_id}"),
        ),
        (
            vec!["integration", "rotate", &org_id],
            format!("no integration token {org_id}"),
        ),
        (
            vec!["integration", "usage", "nonsense"],
            "no integration token nonsense".into(),
        ),
        // A token's id is not a user.
        (
            vec!["integration", "list", &id],
            format!("{id:?} is not a user id"),
        ),
        (
            vec!["integration", "create", "ghost@acme.test", "--name", "X"],
            "no user ghost@acme.test".into(),
        ),
        (
            vec!["token", "usage", "ghost@acme.test"],
            "no user ghost@acme.test".into(),
        ),
        (
            vec![
                "integration",
                "create",
                ADA,
                "--name",
                "X",
                "--expires-days",
                "0",
            ],
            "an integration token expires after 1 to 90 days in this org (got 0)".into(),
        ),
        (
            vec![
                "integration",
                "create",
                ADA,
                "--name",
                "X",
                "--expires-days",
                "91",
            ],
            "an integration token expires after 1 to 90 days in this org (got 91)".into(),
        ),
        (
            vec!["integration", "create", ADA, "--name", ""],
            "integration token name".into(),
        ),
        (
            vec!["integration", "create", ADA, "--name", "   "],
            "integration token name".into(),
        ),
        (
            vec!["integration", "create", ADA, "--name", "etl"],
            "already has an integration token named \"etl\"".into(),
        ),
    ];
    for (args, expect) in &cases {
        let o = kw.run(args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?} printed {:?}", o.stdout);
        let line = o.stderr.trim_end();
        assert!(
            !line.contains('\n'),
            "{args:?}: more than one line: {line:?}"
        );
        assert!(line.starts_with("error: "), "{args:?}: {line:?}");
        assert!(
            line.contains(expect.as_str()),
            "{args:?}: {line:?} lacks {expect:?}"
        );
    }
    // What clap refuses (a negative or missing number, no name) is a usage error, exit 2.
    for args in [
        vec![
            "integration",
            "create",
            ADA,
            "--name",
            "X",
            "--expires-days",
            "-1",
        ],
        vec![
            "integration",
            "create",
            ADA,
            "--name",
            "X",
            "--expires-days",
            "ten",
        ],
        vec!["integration", "create", ADA],
        vec!["integration", "rotate"],
    ] {
        let o = kw.run(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("error: "), "{args:?}: {}", o.stderr);
    }
    assert_eq!(snapshot(&kw), before, "a refused command changed something");
    kw.db.drop_db().await;
}
