//! The web UI's security and the admin JSON API, over HTTP through the real router, on SQLite
//! and PostgreSQL: page headers (CSP, no-store), cookie flags, CSRF refusals that change nothing,
//! R-M1 isolation between orgs by id (pages and API answer 404), API authentication, the API's
//! flows, and schemathesis against the OpenAPI document (no 5xx). The browser journeys are in
//! tests/clients/web_test.mjs (headless Chromium).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{Browser, browser, csrf_in, set_cookie};
use common::server::{Answer, TestServer, answer, form_body, login_envelope};
use common::{Backend, latest_token, org};
use keyward::service::{Actor, Services};
use serde_json::{Value, json};

on_both!(
    pages_send_strict_headers_and_safe_cookies,
    forms_without_the_csrf_token_change_nothing,
    r_m1_an_admin_cannot_read_or_change_another_org_by_id,
    r_m1_setup_and_the_api_are_for_admins_only,
    api_flows_use_the_same_rules_as_the_cli,
    schemathesis_finds_no_server_errors,
    r_u1_codes_are_limited_expire_and_stay_with_their_address,
    r_l6_an_expired_password_opens_only_the_change_password_page,
    r_l8_r_l5_api_only_users_and_lockouts_in_the_browser,
    changing_the_email_notifies_the_old_address,
    address_limit_in_the_browser_counts_wrong_codes_and_says_when_to_return,
);

const PW: &str = "Passw0rd!one";

fn cli() -> Actor {
    Actor::Cli("test".into())
}

/// A SOAP login's session id (password alone: 127.0.0.1 is trusted in these orgs).
async fn soap_session(srv: &TestServer, username: &str) -> String {
    let a = srv
        .soap("/services/Soap/u/59.0", &login_envelope(username, PW))
        .await;
    a.xml("sessionId")
        .unwrap_or_else(|| panic!("login failed: {}", a.text))
}

async fn api(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    sid: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut r = srv.http.request(method, format!("{}{path}", srv.base));
    if let Some(s) = sid {
        r = r.bearer_auth(s);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    answer(r.send().await.unwrap()).await
}

fn token_mails(mails: &[common::Mail], to: &str) -> usize {
    mails
        .iter()
        .filter(|m| m.to == to && m.token().is_some())
        .count()
}

async fn pages_send_strict_headers_and_safe_cookies(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let page = answer(
        browser()
            .get(format!("{}/", srv.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let csp = page.header("content-security-policy");
    for part in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !page.text.contains("<script"),
        "the login page has a script"
    );
    assert!(
        !page.text.contains("style="),
        "the login page has inline style"
    );
    assert_eq!(page.header("cache-control"), "no-store");
    let csrf = set_cookie(&page, "kw_csrf").unwrap();
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"),
        "{csrf}"
    );
    assert!(!csrf.contains("Secure"), "Secure on plain http: {csrf}");
    // The logged-in pages: not cached, same policy.
    let web = Browser::login(&srv, &acme.user).await;
    let settings = web.get("/settings").await;
    assert_eq!(settings.status, 200);
    assert_eq!(settings.header("cache-control"), "no-store");
    assert_eq!(settings.header("content-security-policy"), csp);
    assert!(settings.text.contains(&acme.user));
    // The stylesheet and the icon browsers ask for on every page view may be cached; they are
    // the only assets.
    let css = srv.get("/static/keyward.css", None).await;
    assert_eq!(css.status, 200);
    assert!(css.header("cache-control").starts_with("public"));
    let icon = srv.get("/favicon.ico", None).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), "image/x-icon");
    assert!(icon.header("cache-control").starts_with("public"));
    // Logged out: every personal page sends the browser to the login page.
    let anon = answer(
        browser()
            .get(format!("{}/settings/token", srv.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((anon.status, anon.header("location")), (303, "/"));
    // A session id from an API login is not a web session (its cookie is ignored).
    let api_sid = soap_session(&srv, &acme.user).await;
    let forged = answer(
        browser()
            .get(format!("{}/settings", srv.base))
            .header("Cookie", format!("kw_sid={api_sid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status, 303);
    srv.finish().await;
}

async fn forms_without_the_csrf_token_change_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let before = token_mails(&srv.mails().await, &acme.user);
    for pairs in [vec![], vec![("csrf", "0123456789abcdef0123456789abcdef")]] {
        let r = web.post("/settings/token", &pairs).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("Nothing was changed"));
    }
    assert_eq!(token_mails(&srv.mails().await, &acme.user), before);
    // A login form posted without its cookie is refused too, and is not a login attempt.
    let history = srv
        .services()
        .login_history(&cli(), None, Some(&acme.user), 100)
        .await
        .unwrap()
        .len();
    let r = srv
        .form(
            "/login",
            &[("csrf", "x"), ("username", &acme.user), ("password", PW)],
        )
        .await;
    assert_eq!(r.status, 403);
    let after = srv
        .services()
        .login_history(&cli(), None, Some(&acme.user), 100)
        .await
        .unwrap()
        .len();
    assert_eq!(after, history);
    // With the token: R-T5, a new token is mailed and the page says so.
    let csrf = web.csrf().await;
    let r = web.post("/settings/token", &[("csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings/token?done=sent")
    );
    assert!(
        web.get("/settings/token?done=sent")
            .await
            .text
            .contains("Check your email")
    );
    assert_eq!(token_mails(&srv.mails().await, &acme.user), before + 1);
    srv.finish().await;
}

async fn r_m1_an_admin_cannot_read_or_change_another_org_by_id(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let globex = org(s, "Globex").await;
    let victim = keyward::service::id18(&globex.user_id);
    let range = s.list_trusted_ranges(&cli(), "Globex").await.unwrap()[0]
        .id
        .clone();
    let profile = s
        .list_profiles(&cli(), "Globex")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "Standard User")
        .unwrap()
        .id;

    // The pages.
    let web = Browser::login(&srv, &acme.admin).await;
    let csrf = web.csrf().await;
    assert_eq!(web.get(&format!("/setup/users/{victim}")).await.status, 404);
    assert_eq!(
        web.get(&format!("/setup/users/{}", globex.user))
            .await
            .status,
        404
    );
    assert_eq!(
        web.get(&format!("/setup/profiles/{profile}")).await.status,
        404
    );
    for action in ["deactivate", "unlock", "reset-token"] {
        let r = web
            .post(
                &format!("/setup/users/{victim}/{action}"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 404, "{action}: {}", r.text);
    }
    let r = web
        .post(
            &format!("/setup/users/{victim}"),
            &[("csrf", &csrf), ("email", "mallory@evil.test")],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = web
        .post(
            &format!("/setup/network/{range}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
    let users = web.get("/setup/users").await.text;
    assert!(users.contains(&acme.user) && !users.contains(&globex.user));

    // The API.
    let sid = soap_session(&srv, &acme.admin).await;
    use reqwest::Method as M;
    for (method, path, body) in [
        (M::GET, format!("/api/v1/users/{victim}"), None),
        (M::GET, format!("/api/v1/users/{}", globex.user), None),
        (
            M::PATCH,
            format!("/api/v1/users/{victim}"),
            Some(json!({"email": "m@evil.test"})),
        ),
        (M::POST, format!("/api/v1/users/{victim}/deactivate"), None),
        (M::POST, format!("/api/v1/users/{victim}/reset-token"), None),
        (
            M::POST,
            format!("/api/v1/users/{victim}/password"),
            Some(json!({"password": "Pwn3d-it-all"})),
        ),
        (M::GET, format!("/api/v1/users/{victim}/sessions"), None),
        (M::GET, format!("/api/v1/profiles/{profile}"), None),
        (
            M::PATCH,
            format!("/api/v1/profiles/{profile}"),
            Some(json!({"permissions": {"manage_users": true}})),
        ),
        (
            M::DELETE,
            format!("/api/v1/trusted-ip-ranges/{range}"),
            None,
        ),
    ] {
        let r = api(&srv, method.clone(), &path, Some(&sid), body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.json()["error"], "not_found");
    }
    let listed = api(&srv, M::GET, "/api/v1/users", Some(&sid), None)
        .await
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&acme.user.as_str()) && !names.contains(&globex.user.as_str()));

    // Nothing changed in Globex.
    let v = s.show_user(&cli(), &globex.user_id).await.unwrap();
    assert!(v.user.active);
    assert_eq!(v.user.email, globex.user);
    assert_eq!(v.tokens_issued, 1);
    assert_eq!(
        s.list_trusted_ranges(&cli(), "Globex").await.unwrap().len(),
        1
    );
    srv.finish().await;
}

async fn r_m1_setup_and_the_api_are_for_admins_only(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let r = web.get("/setup/users").await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("Setup is for administrators"));
    assert!(!web.get("/settings").await.text.contains("href=\"/setup\""));
    let csrf = web.csrf().await;
    let admin18 = keyward::service::id18(&acme.admin_id);
    let r = web
        .post(
            &format!("/setup/users/{admin18}/deactivate"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);

    use reqwest::Method as M;
    let none = api(&srv, M::GET, "/api/v1/users", None, None).await;
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").starts_with("Bearer"));
    let bad = api(&srv, M::GET, "/api/v1/users", Some("00Dxx!nonsense"), None).await;
    assert_eq!(bad.status, 401);
    let user_sid = soap_session(&srv, &acme.user).await;
    let r = api(&srv, M::GET, "/api/v1/users", Some(&user_sid), None).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("not_admin"))
    );
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/users/{admin18}/deactivate"),
        Some(&user_sid),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        srv.services()
            .show_user(&cli(), &acme.admin_id)
            .await
            .unwrap()
            .user
            .active
    );
    // The OpenAPI document needs no session.
    let doc = srv.get("/api/v1/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/users"]["post"].is_object());
    srv.finish().await;
}

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

/// A browser that can say where it is: the server trusts 127.0.0.1 as a proxy (R-L11), so
/// `X-Forwarded-For` sets the client address.
struct Visitor {
    http: reqwest::Client,
    base: String,
    ip: String,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Visitor {
    fn new(srv: &TestServer, ip: &str) -> Visitor {
        Visitor {
            http: browser(),
            base: srv.base.clone(),
            ip: ip.into(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, a: &Answer) {
        for v in a.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let a = answer(
            self.http
                .get(format!("{}{path}", self.base))
                .header("Cookie", self.cookie_header())
                .header("X-Forwarded-For", &self.ip)
                .send()
                .await
                .unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let csrf = match self.cookies.get("kw_csrf") {
            Some(c) => c.clone(),
            None => {
                self.get("/").await;
                self.cookies["kw_csrf"].clone()
            }
        };
        let mut all = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "csrf") {
            all.insert(0, ("csrf", csrf.as_str()));
        }
        let a = answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Cookie", self.cookie_header())
                .header("X-Forwarded-For", &self.ip)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(&all))
                .send()
                .await
                .unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    async fn login(&mut self, username: &str, password: &str) -> Answer {
        self.post("/login", &[("username", username), ("password", password)])
            .await
    }
}

/// The newest verification code mailed to `to`, and how many such mails there are.
async fn code_for(srv: &TestServer, to: &str) -> (String, usize) {
    let codes: Vec<String> = srv
        .mails()
        .await
        .iter()
        .filter(|m| m.to == to && m.subject == "Verify your identity")
        .filter_map(|m| {
            m.text
                .lines()
                .find_map(|l| l.strip_prefix("Verification code: "))
                .map(|c| c.trim().to_string())
        })
        .collect();
    (codes.last().cloned().unwrap_or_default(), codes.len())
}

async fn statuses(s: &Services, user: &str) -> Vec<String> {
    let mut rows: Vec<String> = s
        .login_history(&cli(), None, Some(user), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    rows.reverse();
    rows
}

async fn proxied(b: Backend) -> TestServer {
    TestServer::start_with(b, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await
}

async fn r_u1_codes_are_limited_expire_and_stay_with_their_address(b: Backend) {
    let srv = proxied(b).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let ada = "ada@acme.test";
    common::create_user(s, "Acme", ada, Some(PW), None).await;

    // A challenge, then its code sent from another address: refused, and the challenge is gone.
    let mut v = Visitor::new(&srv, "203.0.113.5");
    let r = v.login(ada, PW).await;
    assert_eq!((r.status, r.header("location")), (303, "/verify"));
    let (code, n) = code_for(&srv, ada).await;
    assert_eq!((code.len(), n), (6, 1));
    let page = v.get("/verify").await;
    assert!(page.text.contains("a***@acme.test"), "{}", page.text);
    assert!(!page.text.contains(&code));
    v.ip = "198.51.100.7".into();
    let r = v.post("/verify", &[("code", &code)]).await;
    assert!(r.text.contains("expired or was used up"), "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    v.ip = "203.0.113.5".into();
    let r = v.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.status, 303, "the challenge survived: {}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));

    // Five tries: four wrong codes say how many are left, the fifth ends the challenge, and
    // then even the right code is refused.
    v.login(ada, PW).await;
    let (code, n) = code_for(&srv, ada).await;
    assert_eq!(n, 2);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let r = v.post("/verify", &[("code", wrong)]).await;
        let plural = if left == 1 { "" } else { "s" };
        assert!(
            r.text
                .contains(&format!("You can try {left} more time{plural}.")),
            "{}",
            r.text
        );
    }
    let r = v.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("expired or was used up"));
    v.get("/").await;
    assert!(!v.cookies.contains_key("kw_challenge"));

    // A code older than 10 minutes is refused.
    v.login(ada, PW).await;
    let (code, _) = code_for(&srv, ada).await;
    srv.env.clock.advance(time::Duration::minutes(11));
    let r = v.post("/verify", &[("code", &code)]).await;
    assert!(r.text.contains("expired or was used up"));

    // A new login replaces the pending challenge: only the newest code works.
    v.login(ada, PW).await;
    let (first, _) = code_for(&srv, ada).await;
    let mut other = Visitor::new(&srv, "203.0.113.5");
    other.login(ada, PW).await;
    let r = v.post("/verify", &[("code", &first)]).await;
    assert!(r.text.contains("expired or was used up"));
    let (second, _) = code_for(&srv, ada).await;
    let r = other.post("/verify", &[("code", &second)]).await;
    assert_eq!((r.status, r.header("location")), (303, "/settings"));
    let browser_cookie = set_cookie(&r, "kw_browser").unwrap();
    assert!(browser_cookie.contains("Max-Age=31536000") && browser_cookie.contains("HttpOnly"));

    // Every step is in login history, type Application (R-L9).
    let want = [
        "Failed: Computer activation required",
        "Failed: Verification code invalid",
        "Failed: Computer activation required",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Computer activation required",
        "Failed: Computer activation required",
        "Failed: Computer activation required",
        "Success",
    ];
    assert_eq!(statuses(s, ada).await, want);
    let rows = s.login_history(&cli(), None, Some(ada), 100).await.unwrap();
    assert!(rows.iter().all(|r| r.login_type == "Application"));
    assert_eq!(rows[0].source_ip, "203.0.113.5");
    // The verified browser logs in without a code from anywhere; a new one is challenged.
    other.ip = "192.0.2.44".into();
    other.cookies.remove("kw_sid");
    let r = other.login(ada, PW).await;
    assert_eq!(r.header("location"), "/settings");
    let r = Visitor::new(&srv, "192.0.2.44").login(ada, PW).await;
    assert_eq!(r.header("location"), "/verify");

    // Wrong codes count as failed logins (R-L5): a new login gives a new challenge but no new
    // budget of guesses. With a lockout after 3, the third wrong code locks the user, the lock
    // mail goes out, and then even the right code is refused.
    s.set_policy(
        &cli(),
        "Acme",
        &keyward::service::orgs::PolicyChange {
            lockout_attempts: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut w = Visitor::new(&srv, "203.0.113.9");
    w.login(ada, PW).await;
    w.post("/verify", &[("code", "000001")]).await;
    w.post("/verify", &[("code", "000002")]).await;
    w.login(ada, PW).await;
    let (code, _) = code_for(&srv, ada).await;
    let wrong = if code == "000003" { "000004" } else { "000003" };
    let r = w.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("You can try 4 more times."), "{}", r.text);
    assert!(s.show_user(&cli(), ada).await.unwrap().locked);
    assert!(
        srv.mails()
            .await
            .iter()
            .any(|m| m.to == ada && m.subject == "Your account is locked")
    );
    let r = w.post("/verify", &[("code", &code)]).await;
    assert!(
        r.text.contains("Please check your username and password"),
        "{}",
        r.text
    );
    assert!(!w.cookies.contains_key("kw_sid"));
    assert_eq!(statuses(s, ada).await.last().unwrap(), "Password lockout");
    srv.finish().await;
}

async fn r_l6_an_expired_password_opens_only_the_change_password_page(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    srv.env.clock.advance(time::Duration::days(91));
    let mut v = Visitor::new(&srv, "127.0.0.1");
    let r = v.login(&acme.user, PW).await;
    assert_eq!(r.header("location"), "/settings/password?done=expired");
    for path in ["/settings", "/settings/token", "/settings/sessions"] {
        let r = v.get(path).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, "/settings/password"),
            "{path}"
        );
    }
    let page = v.get("/settings/password").await;
    assert!(page.text.contains("Your password has expired"));
    let csrf = csrf_in(&page.text);
    let r = v
        .post(
            "/settings/password",
            &[
                ("csrf", &csrf),
                ("current", PW),
                ("new", "N3w-password-1"),
                ("confirm", "N3w-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(v.get("/settings").await.status, 200);
    srv.finish().await;
}

async fn r_l8_r_l5_api_only_users_and_lockouts_in_the_browser(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    common::create_user(
        s,
        "Acme",
        "bot@acme.test",
        Some(PW),
        Some("API Only Integration"),
    )
    .await;
    let mut v = Visitor::new(&srv, "127.0.0.1");
    let r = v.login("bot@acme.test", PW).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("API-only user"), "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    assert_eq!(
        statuses(s, "bot@acme.test").await,
        ["Failed: API-only user"]
    );
    // Ten wrong passwords lock the user; the page says the same thing every time (R-L4), and
    // the right password no longer works.
    let generic = "Please check your username and password.";
    for _ in 0..10 {
        let r = v.login(&acme.user, "Wr0ng-password").await;
        assert!(r.text.contains(generic));
    }
    let r = v.login(&acme.user, PW).await;
    assert!(r.text.contains(generic) && !v.cookies.contains_key("kw_sid"));
    let r = v.login("nobody@acme.test", PW).await;
    assert!(r.text.contains(generic));
    assert_eq!(
        statuses(s, &acme.user).await.last().unwrap(),
        "Password lockout"
    );
    assert!(s.show_user(&cli(), &acme.user).await.unwrap().locked);
    srv.finish().await;
}

async fn changing_the_email_notifies_the_old_address(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let csrf = web.csrf().await;
    let r = web
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", "ada.king@acme.test"),
            ],
        )
        .await;
    // A session alone cannot move the address the tokens go to: the password is needed.
    assert_eq!(r.status, 200);
    assert!(
        r.text
            .contains("Enter your current password to confirm this change"),
        "{}",
        r.text
    );
    let v = srv.services().show_user(&cli(), &acme.user).await.unwrap();
    assert_eq!(v.user.email, acme.user);
    let r = web
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", "ada.king@acme.test"),
                ("current_password", PW),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings?done=saved")
    );
    let mails = srv.mails().await;
    let notice = mails
        .iter()
        .find(|m| m.subject == "Your email address was changed")
        .expect("no notice");
    assert_eq!(notice.to, acme.user);
    assert!(notice.text.contains("New address: ada.king@acme.test"));
    // Bad input: a clear error on the page, nothing changed.
    let r = web
        .post("/settings", &[("csrf", &csrf), ("email", "not-an-email")])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("class=\"error\""), "{}", r.text);
    let v = srv.services().show_user(&cli(), &acme.user).await.unwrap();
    assert_eq!(
        (v.user.email.as_str(), v.user.last_name.as_str()),
        ("ada.king@acme.test", "King")
    );
    // The token reset is refused for a user whose profile has login IP ranges (R-T9), by every
    // interface; the page is hidden from the navigation.
    let s = srv.services();
    s.create_profile(
        &cli(),
        "Acme",
        "Office",
        keyward::domain::profile::Permissions {
            api_enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_login_range(&cli(), "Acme", "Office", "127.0.0.0/8", None, "office")
        .await
        .unwrap();
    s.update_user(
        &cli(),
        &acme.user,
        &keyward::service::account::UserChange {
            profile: Some("Office".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nav = web.get("/settings").await.text;
    assert!(!nav.contains("href=\"/settings/token\""));
    let r = web.post("/settings/token", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("login IP ranges"));
    srv.finish().await;
}

/// Issue 5's per-address limit in the browser: wrong passwords, challenges (the right password
/// without its verification) and wrong verification codes count against the address; once over, the
/// login page answers 429 with when to come back — and says nothing about the account — and a
/// pending challenge cannot be answered from it.
async fn address_limit_in_the_browser_counts_wrong_codes_and_says_when_to_return(b: Backend) {
    let env = common::Env::new_with(b, |s| {
        s.with_address_limit(keyward::domain::throttle::AddressLimit {
            failures: 3,
            window: time::Duration::minutes(10),
            exempt: Vec::new(),
        })
    })
    .await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let ada = "ada@acme.test";
    common::create_user(s, "Acme", ada, Some(PW), None).await;

    let mut v = Visitor::new(&srv, "203.0.113.5");
    let r = v.login(ada, "wrong-password").await;
    assert!(r.text.contains("Please check your username and password"));
    // The right password from a new browser: a challenge (it counts too, issue 14: the right
    // password without its second factor), then a wrong code.
    let r = v.login(ada, PW).await;
    assert_eq!(r.header("location"), "/verify");
    let (code, _) = code_for(&srv, ada).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let hashes = s.hasher.invocations();
    let r = v.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("You can try 4 more times."), "{}", r.text);
    // The third failure engaged the limit: the right code is refused, and so is a login.
    let r = v.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    let r = v.login(ada, PW).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "600");
    assert!(
        r.text
            .contains("Too many failed logins from your network address. Try again in 10 minutes"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Please check your username"));
    assert_eq!(
        s.hasher.invocations(),
        hashes,
        "no hash for a refused address"
    );
    // Another address logs in (through its own verification).
    let mut other = Visitor::new(&srv, "198.51.100.8");
    assert_eq!(other.login(ada, PW).await.header("location"), "/verify");
    let (code, _) = code_for(&srv, ada).await;
    let r = other.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.header("location"), "/settings");
    // When the window ends, the first address may try again.
    srv.env.clock.advance(time::Duration::minutes(10));
    assert_eq!(v.login(ada, PW).await.header("location"), "/verify");
    srv.finish().await;
}
