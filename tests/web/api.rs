//! The admin JSON API: its flows follow the CLI's rules, and schemathesis against the OpenAPI
//! document finds no 5xx.

use super::support::{PW, api, cli, soap_session};
use crate::common::browser::Browser;
use crate::common::server::{TestServer, login_envelope};
use crate::common::{Backend, latest_token, org};
use crate::on_both;
use serde_json::{Value, json};

on_both!(
    api_flows_use_the_same_rules_as_the_cli,
    schemathesis_finds_no_server_errors,
);

async fn api_flows_use_the_same_rules_as_the_cli(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let sid = soap_session(&srv, &acme.admin).await;
    use reqwest::Method as M;
    // Bad bodies: a specific error each, nothing created.
    let r = srv
        .http
        .post(format!("{}/api/v1/users", srv.base))
        .bearer_auth(&sid)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = api(
        &srv,
        M::POST,
        "/api/v1/users",
        Some(&sid),
        Some(json!({"username": "x@acme.test", "email": "x@acme.test", "admin": true})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
    let r = api(
        &srv,
        M::POST,
        "/api/v1/users",
        Some(&sid),
        Some(json!({"username": "not an email", "email": "x@acme.test"})),
    )
    .await;
    assert_eq!(r.status, 400);
    // Create with a password: 201, the first token is mailed (R-T7) and never answered (R-T2).
    let r = api(
        &srv,
        M::POST,
        "/api/v1/users",
        Some(&sid),
        Some(json!({"username": "bob@acme.test", "email": "bob@acme.test", "first_name": "Bob", "password": PW})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bob = r.json();
    assert_eq!(bob["profile"], "Standard User");
    assert_eq!(bob["id"].as_str().unwrap().len(), 18);
    let t1 = latest_token(&srv.mails().await, "bob@acme.test");
    assert!(!r.text.contains(&t1));
    let id = bob["id"].as_str().unwrap();
    // Search and paging: in username order, `after` the last one seen; LIKE wildcards typed
    // in the search are literal.
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    let found = api(&srv, M::GET, "/api/v1/users?q=BOB", Some(&sid), None).await;
    assert_eq!(names(found.json()), ["bob@acme.test"]);
    let first = api(&srv, M::GET, "/api/v1/users?limit=1", Some(&sid), None).await;
    let first = names(first.json());
    assert_eq!(first, ["admin@acme.test"]);
    let next = api(
        &srv,
        M::GET,
        "/api/v1/users?limit=1&after=admin@acme.test",
        Some(&sid),
        None,
    )
    .await;
    assert_eq!(names(next.json()), ["bob@acme.test"]);
    for q in ["%25", "_", "%5C"] {
        let r = api(
            &srv,
            M::GET,
            &format!("/api/v1/users?q={q}"),
            Some(&sid),
            None,
        )
        .await;
        assert_eq!((r.status, r.text.as_str()), (200, "[]"), "q={q}");
    }
    let r = api(&srv, M::GET, "/api/v1/users?limit=0", Some(&sid), None).await;
    assert_eq!(r.status, 400);
    // NUL and other control characters are refused as input, never reach PostgreSQL (which
    // refuses NUL in text) — found by schemathesis.
    // (A user named with a control character names nobody: 404, issue 14.)
    for (path, status) in [
        (
            "/api/v1/users?after=l%C2%80%F0%A4%80%91%1B%00%F3%B5%BF%89",
            400,
        ),
        ("/api/v1/users?q=%00", 400),
        ("/api/v1/login-history?status=%00", 400),
        ("/api/v1/login-history?login_type=a%00b", 400),
        ("/api/v1/login-history?user=a%00b", 404),
    ] {
        let r = api(&srv, M::GET, path, Some(&sid), None).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
    }
    // A username with a NUL in a login is an unknown user, like any other (R-L4).
    let (client, secret) = srv
        .services()
        .create_oauth_client(&cli(), "Acme", "app", &Default::default())
        .await
        .unwrap();
    let r = srv
        .form(
            "/services/oauth2/token",
            &[
                ("grant_type", "password"),
                ("client_id", &client.client_id),
                ("client_secret", &secret.0),
                ("username", "ada\0x@acme.test"),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
    let web_found = Browser::login(&srv, &acme.admin)
        .await
        .get("/setup/users?q=bob")
        .await;
    assert!(
        web_found.text.contains("bob@acme.test") && !web_found.text.contains(">user@acme.test<")
    );
    let again = api(
        &srv,
        M::POST,
        "/api/v1/users",
        Some(&sid),
        Some(json!({"username": "bob@acme.test", "email": "b@acme.test"})),
    )
    .await;
    assert_eq!(again.status, 409);
    // Reset the token: a new one is mailed, none is answered.
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/users/{id}/reset-token"),
        Some(&sid),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t2 = latest_token(&srv.mails().await, "bob@acme.test");
    assert_ne!(t1, t2);
    assert!(!r.text.contains(&t2));
    // Deactivate: Bob's SOAP login fails (R-T8).
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/users/{id}/deactivate"),
        Some(&sid),
        None,
    )
    .await;
    assert_eq!(r.json()["active"], false);
    let login = srv
        .soap(
            "/services/Soap/u/59.0",
            &login_envelope("bob@acme.test", PW),
        )
        .await;
    assert_eq!(login.status, 500);
    // The admin may not reset their own password with a session alone.
    let me = keyward::service::id18(&acme.admin_id);
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/users/{me}/password"),
        Some(&sid),
        Some(json!({"password": "N3w-password-x"})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Policy: validated, then changed.
    let r = api(
        &srv,
        M::PATCH,
        "/api/v1/policy",
        Some(&sid),
        Some(json!({"session_seconds": 10})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = api(
        &srv,
        M::PATCH,
        "/api/v1/policy",
        Some(&sid),
        Some(json!({"lockout_attempts": 3})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["lockout_attempts"].as_u64()),
        (200, Some(3))
    );
    // The audit trail names each change and the admin.
    let audit = api(
        &srv,
        M::GET,
        "/api/v1/audit-trail?limit=50",
        Some(&sid),
        None,
    )
    .await
    .json();
    let lines: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["actor"].as_str().unwrap(),
                e["display"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Created user bob@acme.test",
        "security token of user bob@acme.test",
        "Deactivated user bob@acme.test",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&acme.admin) && l.contains(want)),
            "{want}: {lines:?}"
        );
    }
    // Login history and the hourly summary.
    let h = api(
        &srv,
        M::GET,
        "/api/v1/login-history?user=bob@acme.test&limit=10",
        Some(&sid),
        None,
    )
    .await
    .json();
    assert_eq!(h[0]["status"], "User is inactive");
    let r = api(
        &srv,
        M::GET,
        "/api/v1/login-history?from=yesterday",
        Some(&sid),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let hours = api(
        &srv,
        M::GET,
        "/api/v1/login-history/per-hour",
        Some(&sid),
        None,
    )
    .await
    .json();
    let total: i64 = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["success"].as_i64().unwrap() + h["failure"].as_i64().unwrap())
        .sum();
    assert!(total >= 2, "{hours}");
    // The email log holds the token mails, redacted.
    let mail = api(&srv, M::GET, "/api/v1/mail?limit=100", Some(&sid), None).await;
    assert!(mail.text.contains("Your new security token"));
    assert!(!mail.text.contains(&t1) && !mail.text.contains(&t2));
    srv.finish().await;
}

async fn schemathesis_finds_no_server_errors(b: Backend) {
    let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("KEYWARD_TEST_PYTHON is not set: run the tests with scripts/test, which installs schemathesis")
    });
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    org(srv.services(), "Globex").await;
    let sid = soap_session(&srv, &acme.admin).await;
    // Its caches (.schemathesis/, .hypothesis/) go to the working directory: not the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&schemathesis)
        .current_dir(scratch.path())
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", srv.base),
            "--header",
            &format!("Authorization: Bearer {sid}"),
            "--checks",
            "not_a_server_error",
            "--max-examples",
            &std::env::var("KEYWARD_TEST_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into()),
            "--no-color",
        ])
        .env("NO_PROXY", "127.0.0.1")
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("passed"), "{text}");
    // The admin's session lived through it, so every operation ran authenticated.
    assert!(
        srv.services().check_session(&sid).await.unwrap().is_some(),
        "{text}"
    );
    assert!(!text.contains("Authentication failed"), "{text}");
    srv.finish().await;
}
