//! What hostile testing found (issue 14), each on SQLite and PostgreSQL through the real HTTP
//! stack: a session alone never changes the credentials it came from, refresh tokens end with
//! their sessions, OAuth clients can be rotated, disabled and deleted, and the seams between
//! surfaces (web sessions on the API, unknown OAuth clients, forwarded addresses, other orgs'
//! ids, merge patches, hostile ids, session lifetimes, the admin API's error shape) hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{Browser, PW};
use common::server::{Answer, TestServer, login_envelope, password_grant, session_envelope};
use common::{Backend, oauth_client, org};
use keyward::service::Actor;
use serde_json::{Value, json};

const SOAP: &str = "/services/Soap/u/59.0";

fn cli() -> Actor {
    Actor::Cli("test".into())
}

fn id18(id15: &str) -> String {
    keyward::service::id18(id15)
}

on_both!(
    a_session_alone_never_changes_the_credentials_it_came_from,
    ending_a_session_ends_its_refresh_token,
    oauth_clients_rotate_disable_enable_and_delete,
    unknown_clients_and_tokenless_passwords_count_against_the_address,
    other_orgs_ids_answer_like_missing_ones,
    patches_change_only_the_fields_sent,
    hostile_ids_and_extractor_errors_get_the_apis_json_errors,
    a_proxy_that_names_no_client_makes_an_unknown_client,
    delegated_auth_urls_cannot_reach_the_servers_network,
    session_timeouts_apply_to_open_sessions_and_lifetimes_are_absolute,
    an_unknown_username_writes_what_a_wrong_password_writes,
    passwords_without_tokens_earn_no_place_in_the_hash_pool,
    an_authenticator_enrolment_belongs_to_the_session_that_proved_the_password,
    a_session_alone_mints_no_client_acting_as_its_own_user,
);

async fn soap_login(srv: &TestServer, username: &str, password: &str) -> Answer {
    srv.soap(SOAP, &login_envelope(username, password)).await
}

async fn soap_session(srv: &TestServer, username: &str) -> String {
    let a = soap_login(srv, username, PW).await;
    a.xml("sessionId")
        .unwrap_or_else(|| panic!("login failed: {}", a.text))
}

fn soap_call(sid: &str, operation: &str) -> String {
    session_envelope(sid, operation)
}

fn set_password(sid: &str, user_id: &str, password: &str) -> String {
    soap_call(
        sid,
        &format!(
            "<setPassword xmlns=\"urn:partner.soap.sforce.com\"><userId>{user_id}</userId>\
             <password>{password}</password></setPassword>"
        ),
    )
}

fn change_own(sid: &str, old: &str, new: &str) -> String {
    soap_call(
        sid,
        &format!(
            "<changeOwnPassword xmlns=\"urn:partner.soap.sforce.com\"><oldPassword>{old}\
             </oldPassword><newPassword>{new}</newPassword></changeOwnPassword>"
        ),
    )
}

/// An admin API call with a bearer session.
async fn api(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    sid: &str,
    body: Option<Value>,
) -> Answer {
    let mut r = srv
        .http
        .request(method, format!("{}{path}", srv.base))
        .bearer_auth(sid);
    if let Some(b) = body {
        r = r.json(&b);
    }
    common::server::answer(r.send().await.unwrap()).await
}

/// The status UserInfo answers for an access token: 200 while it lives, 403 after.
async fn userinfo(srv: &TestServer, token: &str) -> u16 {
    srv.get("/services/oauth2/userinfo", Some(token))
        .await
        .status
}

/// An admin API `POST` with no body.
async fn post_api(srv: &TestServer, path: &str, admin: &str) -> Answer {
    api(srv, reqwest::Method::POST, path, admin, None).await
}

/// The `kw_sid` cookie's value: the web session's id.
fn web_session_id(b: &Browser) -> String {
    b.cookies.trim_start_matches("kw_sid=").to_string()
}

/// Item 1. A stolen session — SOAP session id, OAuth access token or the web cookie, of a
/// standard user or an admin — cannot replace the password, the email the tokens go to, or
/// the authenticator: every interface asks for the current password, and setPassword never
/// sets one's own.
async fn a_session_alone_never_changes_the_credentials_it_came_from(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let (client_id, secret) = oauth_client(s, "Acme", false, None).await;
    let hijack = "Hijack-Passw0rd1";
    for (username, user_id) in [(&acme.admin, &acme.admin_id), (&acme.user, &acme.user_id)] {
        let soap = soap_session(&srv, username).await;
        let grant = password_grant(&srv, &client_id, &secret, username, PW).await;
        let oauth = grant.json()["access_token"].as_str().unwrap().to_string();
        let web = Browser::login(&srv, username).await;
        for (kind, sid) in [("SOAP", &soap), ("OAuth", &oauth)] {
            let a = srv
                .soap(SOAP, &set_password(sid, &id18(user_id), hijack))
                .await;
            assert_eq!(
                a.xml("exceptionCode").as_deref(),
                Some("INSUFFICIENT_ACCESS"),
                "{kind} session of {username}: {}",
                a.text
            );
            let a = srv
                .soap(SOAP, &change_own(sid, "Wrong-Passw0rd1", hijack))
                .await;
            assert_eq!(
                a.xml("exceptionCode").as_deref(),
                Some("INVALID_OLD_PASSWORD"),
                "{kind} session of {username}: {}",
                a.text
            );
        }
        // The web cookie is no API session at all (R-L8: an API-disabled user would get in).
        let cookie = web_session_id(&web);
        for op in [
            set_password(&cookie, &id18(user_id), hijack),
            soap_call(
                &cookie,
                "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>",
            ),
        ] {
            let a = srv.soap(SOAP, &op).await;
            assert_eq!(
                a.xml("exceptionCode").as_deref(),
                Some("INVALID_SESSION_ID")
            );
        }
        assert_eq!(userinfo(&srv, &cookie).await, 403);
        let a = api(&srv, reqwest::Method::GET, "/api/v1/users", &cookie, None).await;
        assert_eq!(a.status, 401, "{}", a.text);
        // Nor can the API end it: SOAP logout and OAuth revocation leave it alone.
        let logout = soap_call(&cookie, "<logout xmlns=\"urn:partner.soap.sforce.com\"/>");
        srv.soap(SOAP, &logout).await;
        let a = srv
            .form("/services/oauth2/revoke", &[("token", &cookie)])
            .await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(
            web.get("/settings").await.status,
            200,
            "the web session lives"
        );
        // The web pages ask for the current password.
        let csrf = web.csrf().await;
        for current in ["", "Wrong-Passw0rd1"] {
            let a = web
                .post(
                    "/settings/password",
                    &[
                        ("csrf", &csrf),
                        ("current", current),
                        ("new", hijack),
                        ("confirm", hijack),
                    ],
                )
                .await;
            assert_eq!(a.status, 200, "refused in the page: {}", a.text);
            assert!(a.text.contains("current password"), "{}", a.text);
        }
        let a = web
            .post(
                "/settings",
                &[
                    ("csrf", &csrf),
                    ("first_name", "Ada"),
                    ("last_name", "Lovelace"),
                    ("email", "thief@evil.test"),
                    ("current_password", ""),
                ],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let a = web
            .post("/settings/mfa/start", &[("csrf", &csrf), ("password", "")])
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let actor = s
            .actor_for(&s.check_session(&soap).await.unwrap().unwrap())
            .await
            .unwrap();
        let digest = keyward::crypto::digest(&soap);
        assert!(
            s.pending_totp(&actor, "keyward", &digest)
                .await
                .unwrap()
                .is_none()
        );
    }
    // The admin API, with the admin's own SOAP session and OAuth token, on the admin's own
    // user; OAuth itself has no call that changes a credential.
    let grant = password_grant(&srv, &client_id, &secret, &acme.admin, PW).await;
    let oauth = grant.json()["access_token"].as_str().unwrap().to_string();
    let own = format!("/api/v1/users/{}", id18(&acme.admin_id));
    for (sid, (method, path, body)) in [soap_session(&srv, &acme.admin).await, oauth]
        .into_iter()
        .flat_map(|sid| {
            [
                (
                    reqwest::Method::POST,
                    format!("{own}/password"),
                    Some(json!({"password": hijack})),
                ),
                (
                    reqwest::Method::PATCH,
                    own.clone(),
                    Some(json!({"email": "thief@evil.test"})),
                ),
                (
                    reqwest::Method::DELETE,
                    format!("{own}/authenticator"),
                    None,
                ),
            ]
            .map(|call| (sid.clone(), call))
        })
    {
        let a = api(&srv, method.clone(), &path, &sid, body).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.text);
        assert_eq!(a.json()["error"], "refused");
    }
    // Setup, with the admin's web session, on the admin's own user.
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let setup = format!("/setup/users/{}", id18(&acme.admin_id));
    let csrf = admin_web.csrf().await;
    for (path, form) in [
        (format!("{setup}/password"), vec![("password", hijack)]),
        (format!("{setup}/remove-mfa"), vec![]),
        (
            setup.clone(),
            vec![("email", "thief@evil.test"), ("current_password", "")],
        ),
    ] {
        let mut pairs = vec![("csrf", csrf.as_str())];
        pairs.extend(form);
        let a = admin_web.post(&path, &pairs).await;
        assert_eq!(a.status, 200, "refused on the page: {path}: {}", a.text);
    }
    // Nothing changed: the passwords, the emails, no password mail.
    for (username, user_id) in [(&acme.admin, &acme.admin_id), (&acme.user, &acme.user_id)] {
        assert_eq!(
            soap_login(&srv, username, PW).await.status,
            200,
            "{username}"
        );
        assert_eq!(soap_login(&srv, username, hijack).await.status, 500);
        let shown = s.show_user(&cli(), user_id).await.unwrap();
        assert_eq!(&shown.user.email, username);
    }
    let mails = srv.mails().await;
    assert!(
        !mails.iter().any(|m| m.subject.contains("password")),
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    srv.finish().await;
}

/// A password grant for `username` with a client that issues refresh tokens: (access token,
/// refresh token).
async fn grant_with_refresh(
    srv: &TestServer,
    client: &(String, String),
    username: &str,
) -> (String, String) {
    let a = password_grant(srv, &client.0, &client.1, username, PW).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let j = a.json();
    (
        j["access_token"].as_str().unwrap().to_string(),
        j["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn refresh(srv: &TestServer, client: &(String, String), rt: &str) -> Answer {
    srv.form(
        "/services/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client.0),
            ("client_secret", &client.1),
            ("refresh_token", rt),
        ],
    )
    .await
}

/// Asserts the refresh token no longer mints access tokens.
async fn assert_refresh_dead(srv: &TestServer, client: &(String, String), rt: &str, how: &str) {
    let a = refresh(srv, client, rt).await;
    assert_eq!(a.status, 400, "{how}: {}", a.text);
    assert_eq!(
        a.json()["error_description"],
        "expired access/refresh token",
        "{how}"
    );
}

/// The handle of the user's OAuth session (login type `Remote Access 2.0`), from the admin API.
async fn oauth_session_handle(srv: &TestServer, admin: &str, user_id: &str) -> String {
    let path = format!("/api/v1/users/{}/sessions", id18(user_id));
    let a = api(srv, reqwest::Method::GET, &path, admin, None).await;
    let all = a.json();
    let found: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["login_type"] == "Remote Access 2.0")
        .collect();
    assert_eq!(found.len(), 1, "{}", a.text);
    found[0]["handle"].as_str().unwrap().to_string()
}

/// A form posted from a logged-in browser with its CSRF token.
async fn submit(b: &Browser, path: &str, field: &str, value: &str) -> Answer {
    let csrf = b.csrf().await;
    b.post(path, &[("csrf", &csrf), (field, value)]).await
}

/// The handle of the user's newest refresh token, from the admin API.
async fn newest_refresh_handle(srv: &TestServer, admin: &str, user: &str) -> String {
    let path = format!("/api/v1/users/{user}/refresh-tokens");
    let listed = api(srv, reqwest::Method::GET, &path, admin, None)
        .await
        .json();
    listed[0]["handle"].as_str().unwrap().to_string()
}

/// Item 2. Ending a session — by the user, by an admin (API or Setup), or by logging out —
/// ends the refresh token issued with that OAuth login and every access token it minted;
/// refresh tokens are listed beside sessions, with their client and times, and revocable.
async fn ending_a_session_ends_its_refresh_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let client = oauth_client(s, "Acme", true, None).await;
    let admin = soap_session(&srv, &acme.admin).await;
    let web = Browser::login(&srv, &acme.user).await;
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let user = id18(&acme.user_id);
    let tokens_path = format!("/api/v1/users/{user}/refresh-tokens");

    // Listed beside the sessions, for the user and for admins; a refresh's new access token
    // belongs to the same grant.
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    srv.env.clock.advance(time::Duration::minutes(5));
    let minted = refresh(&srv, &client, &rt).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = api(&srv, reqwest::Method::GET, &tokens_path, &admin, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let listed = listed.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["client_name"], "app");
    assert!(listed[0]["client_id"].as_str().unwrap().starts_with("0H4"));
    assert_ne!(
        listed[0]["created_at"], listed[0]["last_used_at"],
        "last use recorded"
    );
    assert!(!listed.to_string().contains(&rt), "never the token itself");
    let page = web.get("/settings/sessions").await;
    assert!(page.text.contains("OAuth refresh tokens") && page.text.contains("app"));

    // 1. The user ends the login's OAuth session (the refreshed one is of the same grant).
    let path = format!("/api/v1/users/{user}/sessions");
    let sessions = api(&srv, reqwest::Method::GET, &path, &admin, None)
        .await
        .json();
    let mut oauth: Vec<&Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["login_type"] == "Remote Access 2.0")
        .collect();
    assert_eq!(oauth.len(), 2, "{sessions}");
    oauth.sort_by_key(|s| s["created_at"].as_str().unwrap().to_string());
    let first = oauth[0]["handle"].as_str().unwrap();
    let a = submit(&web, "/settings/sessions/end", "session", first).await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert_refresh_dead(&srv, &client, &rt, "user ended the session").await;
    for token in [&access, &minted] {
        let a = srv.get("/services/oauth2/userinfo", Some(token)).await;
        assert_eq!(a.status, 403);
    }

    // 2. An admin ends it through the API; 3. in Setup.
    let (_, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let handle = oauth_session_handle(&srv, &admin, &acme.user_id).await;
    let path = format!("/api/v1/users/{user}/sessions/{handle}");
    let a = api(&srv, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_eq!(a.status, 204);
    assert_refresh_dead(&srv, &client, &rt, "admin API end-session").await;
    let (_, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let handle = oauth_session_handle(&srv, &admin, &acme.user_id).await;
    let path = format!("/setup/users/{user}/end-session");
    let a = submit(&admin_web, &path, "session", &handle).await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert_refresh_dead(&srv, &client, &rt, "Setup end-session").await;

    // 4. Logging out: OAuth revocation of the access token, and SOAP logout with it.
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let a = srv
        .form("/services/oauth2/revoke", &[("token", &access)])
        .await;
    assert_eq!(a.status, 200);
    assert_refresh_dead(&srv, &client, &rt, "revocation of the access token").await;
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let logout = soap_call(&access, "<logout xmlns=\"urn:partner.soap.sforce.com\"/>");
    assert_eq!(srv.soap(SOAP, &logout).await.status, 200);
    assert_refresh_dead(&srv, &client, &rt, "SOAP logout").await;

    // 5. Revoked where they are listed: the admin API, the user's page, Setup.
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let handle = newest_refresh_handle(&srv, &admin, &user).await;
    let path = format!("{tokens_path}/{handle}");
    let a = api(&srv, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_refresh_dead(&srv, &client, &rt, "admin API revoke").await;
    let a = srv.get("/services/oauth2/userinfo", Some(&access)).await;
    assert_eq!(a.status, 403);
    let a = api(&srv, reqwest::Method::DELETE, &path, &admin, None).await;
    assert_eq!(a.status, 404, "{}", a.text);
    for (browser, path) in [
        (&web, "/settings/refresh-tokens/revoke".to_string()),
        (
            &admin_web,
            format!("/setup/users/{user}/revoke-refresh-token"),
        ),
    ] {
        let (_, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
        let handle = newest_refresh_handle(&srv, &admin, &user).await;
        let a = submit(browser, &path, "refresh_token", &handle).await;
        assert_eq!(a.status, 303, "{}", a.text);
        assert_refresh_dead(&srv, &client, &rt, &path).await;
    }
    let audit = s.audit_trail(&cli(), "Acme", 100).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "refresh_token.revoked"));
    srv.finish().await;
}

async fn client_credentials(srv: &TestServer, client: &(String, String)) -> Answer {
    srv.form(
        "/services/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.0),
            ("client_secret", &client.1),
        ],
    )
    .await
}

/// The id (`0H4…`) of the client with this consumer key, from the admin API.
async fn client_row_id(srv: &TestServer, admin: &str, consumer_key: &str) -> String {
    let a = api(
        srv,
        reqwest::Method::GET,
        "/api/v1/oauth-clients",
        admin,
        None,
    )
    .await;
    let all = a.json();
    let found = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == consumer_key)
        .unwrap_or_else(|| panic!("{consumer_key} not listed: {}", a.text));
    found["id"].as_str().unwrap().to_string()
}

/// Item 3. OAuth clients can be rotated, disabled, enabled and deleted (admin API and Setup;
/// the CLI in tests/cli.rs), and a client-credentials client stops when its run-as user is
/// deactivated.
async fn oauth_clients_rotate_disable_enable_and_delete(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let admin = soap_session(&srv, &acme.admin).await;
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let mut client = oauth_client(s, "Acme", true, None).await;
    let id = client_row_id(&srv, &admin, &client.0).await;
    let path = format!("/api/v1/oauth-clients/{id}");

    // Rotation: a new secret once; the old one refused; tokens already issued keep working.
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let a = post_api(&srv, &format!("{path}/rotate-secret"), &admin).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let new_secret = a.json()["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, client.1);
    let old = client.clone();
    client.1 = new_secret;
    let a = refresh(&srv, &old, &rt).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (400, Some("invalid_client"))
    );
    assert_eq!(refresh(&srv, &client, &rt).await.status, 200);
    assert_eq!(userinfo(&srv, &access).await, 200);

    // Disabled: access tokens end, every grant and the refresh tokens are refused; enabled
    // again, the refresh token works again.
    let a = post_api(&srv, &format!("{path}/disable"), &admin).await;
    assert_eq!(
        (a.status, a.json()["enabled"].as_bool()),
        (200, Some(false)),
        "{}",
        a.text
    );
    assert_eq!(userinfo(&srv, &access).await, 403);
    let a = refresh(&srv, &client, &rt).await;
    assert_eq!(
        a.json()["error_description"],
        "this client is disabled",
        "{}",
        a.text
    );
    // Introspected by another client of the org, the refresh token is not active.
    let other = oauth_client(s, "Acme", false, None).await;
    let a = srv
        .form(
            "/services/oauth2/introspect",
            &[
                ("client_id", &other.0),
                ("client_secret", &other.1),
                ("token", &rt),
            ],
        )
        .await;
    assert_eq!(a.json()["active"], false, "{}", a.text);
    let a = password_grant(&srv, &client.0, &client.1, &acme.user, PW).await;
    assert_eq!(a.json()["error"], "invalid_client", "{}", a.text);
    let a = post_api(&srv, &format!("{path}/enable"), &admin).await;
    assert_eq!(a.json()["enabled"], true);
    assert_eq!(refresh(&srv, &client, &rt).await.status, 200);

    // Deleted (in Setup): every access and refresh token issued to it stops at once.
    let (access, rt) = grant_with_refresh(&srv, &client, &acme.user).await;
    let a = submit(&admin_web, &format!("/setup/oauth/{id}/delete"), "x", "").await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert_eq!(userinfo(&srv, &access).await, 403);
    let a = refresh(&srv, &client, &rt).await;
    assert_eq!(a.json()["error"], "invalid_client_id", "{}", a.text);
    assert_eq!(
        api(&srv, reqwest::Method::GET, &path, &admin, None)
            .await
            .status,
        404
    );

    // Setup rotates (the new secret on the answer, once), disables and enables.
    let client = oauth_client(s, "Acme", false, None).await;
    let id = client_row_id(&srv, &admin, &client.0).await;
    let page = submit(
        &admin_web,
        &format!("/setup/oauth/{id}/rotate-secret"),
        "x",
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("has a new secret"), "{}", page.text);
    let a = password_grant(&srv, &client.0, &client.1, &acme.user, PW).await;
    assert_eq!(
        a.json()["error"],
        "invalid_client",
        "old secret: {}",
        a.text
    );
    let a = submit(&admin_web, &format!("/setup/oauth/{id}/disable"), "x", "").await;
    assert_eq!(a.status, 303, "{}", a.text);
    assert!(
        admin_web
            .get("/setup/oauth")
            .await
            .text
            .contains("Disabled")
    );
    let a = submit(&admin_web, &format!("/setup/oauth/{id}/enable"), "x", "").await;
    assert_eq!(a.status, 303, "{}", a.text);

    // client_credentials stops when its run-as user is deactivated, and its token with it.
    let cc = oauth_client(s, "Acme", false, Some(&acme.user)).await;
    let a = client_credentials(&srv, &cc).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let token = a.json()["access_token"].as_str().unwrap().to_string();
    s.deactivate(&cli(), &acme.user).await.unwrap();
    assert_eq!(userinfo(&srv, &token).await, 403);
    let a = client_credentials(&srv, &cc).await;
    assert_eq!(
        (a.status, a.json()["error_description"].as_str()),
        (400, Some("inactive user"))
    );

    let actions: Vec<String> = s
        .audit_trail(&cli(), "Acme", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    for expected in [
        "oauth_client.secret_rotated",
        "oauth_client.disabled",
        "oauth_client.enabled",
        "oauth_client.deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
    srv.finish().await;
}

/// A server whose address limit is 3 failures per 15 minutes, trusting 127.0.0.1 as a proxy so
/// a test can speak from any address.
async fn limited_server(b: Backend) -> TestServer {
    let limit = keyward::domain::throttle::AddressLimit {
        failures: 3,
        window: time::Duration::minutes(15),
        exempt: vec![],
    };
    let env = common::Env::new_with(b, move |s| s.with_address_limit(limit)).await;
    TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await
}

fn token_form(client_id: &str, secret: &str, user: &str, password: &str) -> String {
    common::server::form_body(&[
        ("grant_type", "password"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("username", user),
        ("password", password),
    ])
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Items 4 and 5. Token requests naming an unknown client id, or a client's wrong secret,
/// count against the source address and are refused once it is refused; they write no
/// login-history row on the user they named (the request never reached that user). The right
/// password without its token counts against the address too, never towards the lockout.
async fn unknown_clients_and_tokenless_passwords_count_against_the_address(b: Backend) {
    let srv = limited_server(b).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let user = "ada@acme.test";
    common::create_user(s, "Acme", user, Some(PW), None).await;
    let token = common::latest_token(&srv.mails().await, user);
    let client = oauth_client(s, "Acme", false, None).await;
    let good = format!("{PW}{token}");
    let path = "/services/oauth2/token";

    // Item 4: three unknown client ids naming a real user from one address...
    let guesser = "203.0.113.40";
    for i in 0..3 {
        let body = token_form(&format!("3MVG9guess{i}"), "x", user, &good);
        let a = srv.post_from(guesser, path, FORM, body).await;
        assert_eq!(a.json()["error"], "invalid_client_id", "{}", a.text);
    }
    // ...and it is refused, even with the real client and the right credentials.
    let a = srv
        .post_from(
            guesser,
            path,
            FORM,
            token_form(&client.0, &client.1, user, &good),
        )
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.json()["error_code"], "LOGIN_RATE_EXCEEDED");
    let body = token_form("3MVG9guess9", "x", user, &good);
    assert_eq!(srv.post_from(guesser, path, FORM, body).await.status, 429);
    // A wrong secret of a real client counts too; its row is in the client's org, on no user.
    let other = "203.0.113.41";
    for _ in 0..3 {
        let body = token_form(&client.0, "wrong-secret", user, &good);
        let a = srv.post_from(other, path, FORM, body).await;
        assert_eq!(a.json()["error"], "invalid_client", "{}", a.text);
    }
    let body = token_form(&client.0, &client.1, user, &good);
    assert_eq!(srv.post_from(other, path, FORM, body).await.status, 429);
    // A grant that proves no password cannot tell a refused address its guess was right.
    let cc = oauth_client(s, "Acme", false, Some(user)).await;
    let body = common::server::form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", &cc.0),
        ("client_secret", &cc.1),
    ]);
    let a = srv.post_from(other, path, FORM, body).await;
    assert_eq!(a.status, 429, "{}", a.text);
    // Introspection's wrong client secrets are guesses too; the refused address is told so.
    let spy = "203.0.113.42";
    let introspect = |secret: &str| {
        common::server::form_body(&[
            ("client_id", &cc.0),
            ("client_secret", secret),
            ("token", "x"),
        ])
    };
    for _ in 0..3 {
        let a = srv
            .post_from(spy, "/services/oauth2/introspect", FORM, introspect("nope"))
            .await;
        assert_eq!(a.status, 401, "{}", a.text);
    }
    let a = srv
        .post_from(spy, "/services/oauth2/introspect", FORM, introspect("nope"))
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    let mine = s
        .login_history(&cli(), None, Some(user), 100)
        .await
        .unwrap();
    assert!(mine.is_empty(), "rows on the named user: {mine:?}");
    let org_rows = s
        .login_history(&cli(), Some("Acme"), None, 100)
        .await
        .unwrap();
    assert_eq!(org_rows.len(), 3, "the wrong secrets, in the client's org");
    assert!(
        org_rows
            .iter()
            .all(|r| r.user_id.is_none() && r.source_ip == other)
    );
    let all = s.login_history(&cli(), None, None, 100).await.unwrap();
    assert_eq!(
        all.iter().filter(|r| r.source_ip == guesser).count(),
        3,
        "the unknown clients, in no org"
    );

    // Item 5: the right password without its token, three times, and the address is refused.
    let holder = "198.51.100.9";
    for _ in 0..3 {
        let a = srv
            .post_from(holder, SOAP, "text/xml", login_envelope(user, PW))
            .await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN")
        );
    }
    let a = srv
        .post_from(holder, SOAP, "text/xml", login_envelope(user, &good))
        .await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("LOGIN_RATE_EXCEEDED"),
        "{}",
        a.text
    );
    let shown = s.show_user(&cli(), user).await.unwrap();
    assert_eq!(
        shown.user.failed_logins, 0,
        "never towards the user's lockout"
    );
    assert!(shown.user.locked_until.is_none());
    // Another address logs in.
    let a = srv
        .post_from(
            "198.51.100.10",
            SOAP,
            "text/xml",
            login_envelope(user, &good),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    srv.finish().await;
}

/// An answer with `id` replaced, to compare the answers about two ids.
fn shape(a: &Answer, id: &str) -> (u16, String) {
    let text = a.text.replace(id, "<id>");
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.remove("request_id");
            }
            v.to_string()
        }
        Err(_) => text,
    };
    (a.status, text)
}

/// Item 8. Another org's ids answer exactly as ids that do not exist — in the admin API, Setup
/// and SOAP — and `run_as` naming another org's user says nothing about it.
async fn other_orgs_ids_answer_like_missing_ones(b: Backend) {
    use reqwest::Method as M;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let globex = org(s, "Globex").await;
    let admin = soap_session(&srv, &acme.admin).await;
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let nobody = keyward::domain::ids::SfId::generate(
        keyward::domain::ids::KeyPrefix::User,
        &mut rand::thread_rng(),
    );
    let theirs = [
        id18(&globex.user_id),
        globex.user_id.clone(),
        globex.user.clone(),
    ];
    let missing = [
        nobody.to_18(),
        nobody.as_15().to_string(),
        "nobody@globex.test".into(),
    ];
    for (their, none) in theirs.iter().zip(&missing) {
        for (method, path, body) in [
            (M::GET, "/api/v1/users/{}", None),
            (
                M::PATCH,
                "/api/v1/users/{}",
                Some(json!({"first_name": "X"})),
            ),
            (M::POST, "/api/v1/users/{}/reset-token", None),
            (M::GET, "/api/v1/users/{}/sessions", None),
            (M::GET, "/api/v1/users/{}/refresh-tokens", None),
            (M::GET, "/api/v1/login-history?user={}", None),
        ] {
            let a = api(
                &srv,
                method.clone(),
                &path.replace("{}", their),
                &admin,
                body.clone(),
            )
            .await;
            let n = api(
                &srv,
                method.clone(),
                &path.replace("{}", none),
                &admin,
                body.clone(),
            )
            .await;
            assert_eq!(a.status, 404, "{method} {path} {their}: {}", a.text);
            assert_eq!(shape(&a, their), shape(&n, none), "{method} {path}");
        }
        // Setup's user page.
        let a = admin_web.get(&format!("/setup/users/{their}")).await;
        let n = admin_web.get(&format!("/setup/users/{none}")).await;
        assert_eq!(a.status, 404);
        let strip = |t: &str, id: &str| {
            t.replace(id, "<id>")
                .split("Request id")
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(strip(&a.text, their), strip(&n.text, none));
        // OAuth client creation with run_as.
        let create = |run_as: &str| {
            api(
                &srv,
                M::POST,
                "/api/v1/oauth-clients",
                &admin,
                Some(json!({"name": "x", "run_as": run_as})),
            )
        };
        let a = create(their).await;
        let n = create(none).await;
        assert_eq!(a.status, 404, "{}", a.text);
        assert_eq!(shape(&a, their), shape(&n, none));
        if !their.contains('@') {
            assert!(!a.text.contains(&globex.user), "named by id: {}", a.text);
        }
    }
    // SOAP setPassword by Acme's admin on Globex's user: as on a user that does not exist.
    let a = srv
        .soap(
            SOAP,
            &set_password(&admin, &id18(&globex.user_id), "Hijack-Passw0rd1"),
        )
        .await;
    let n = srv
        .soap(
            SOAP,
            &set_password(&admin, &nobody.to_18(), "Hijack-Passw0rd1"),
        )
        .await;
    assert_eq!(a.xml("exceptionCode").as_deref(), Some("INVALID_ID_FIELD"));
    assert_eq!(a.xml("faultstring"), n.xml("faultstring"));
    // Another org's OAuth client.
    let theirs = oauth_client(s, "Globex", false, None).await;
    let a = api(
        &srv,
        M::GET,
        &format!("/api/v1/oauth-clients/{}", theirs.0),
        &admin,
        None,
    )
    .await;
    let n = api(
        &srv,
        M::GET,
        "/api/v1/oauth-clients/3MVG9nobody",
        &admin,
        None,
    )
    .await;
    assert_eq!(shape(&a, &theirs.0), shape(&n, "3MVG9nobody"));
    srv.finish().await;
}

/// Item 9. Every `PATCH` of the admin API is a merge patch (RFC 7396): it changes only the
/// fields sent; `null` clears what may be empty and is refused for what may not.
async fn patches_change_only_the_fields_sent(b: Backend) {
    use reqwest::Method as M;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let admin = soap_session(&srv, &acme.admin).await;
    let path = "/api/v1/profiles/System%20Administrator";
    let body = json!({"permissions": {"password_never_expires": true}});
    let a = api(&srv, M::PATCH, path, &admin, Some(body)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = &a.json()["permissions"];
    assert_eq!(
        (
            p["password_never_expires"].as_bool(),
            p["manage_users"].as_bool(),
            p["api_enabled"].as_bool()
        ),
        (Some(true), Some(true), Some(true)),
        "{p}"
    );
    // As the media type RFC 7396 names.
    let r = srv
        .http
        .patch(format!("{}{path}", srv.base))
        .bearer_auth(&admin)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"permissions": {"password_never_expires": false}}"#)
        .send()
        .await
        .unwrap();
    let a = common::server::answer(r).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["permissions"]["manage_users"], true);
    // An empty patch changes nothing and records nothing; the policy's answers the policy.
    let audit = s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len();
    let a = api(&srv, M::PATCH, path, &admin, Some(json!({}))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len(),
        audit
    );
    let a = api(&srv, M::PATCH, "/api/v1/policy", &admin, Some(json!({}))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["lockout_attempts"], 10);
    let a = api(
        &srv,
        M::PATCH,
        path,
        &admin,
        Some(json!({"permissions": {"api_only": null}})),
    )
    .await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (400, Some("invalid")),
        "{}",
        a.text
    );

    let user = format!("/api/v1/users/{}", id18(&acme.user_id));
    let a = api(
        &srv,
        M::PATCH,
        &user,
        &admin,
        Some(json!({"first_name": "Grace"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let u = a.json();
    assert_eq!(
        (u["first_name"].as_str(), u["last_name"].as_str()),
        (Some("Grace"), Some("Lovelace"))
    );
    assert_eq!(u["email"], acme.user.as_str());
    let a = api(
        &srv,
        M::PATCH,
        &user,
        &admin,
        Some(json!({"last_name": null})),
    )
    .await;
    assert_eq!(
        (
            a.json()["first_name"].as_str(),
            a.json()["last_name"].as_str()
        ),
        (Some("Grace"), Some(""))
    );
    let a = api(&srv, M::PATCH, &user, &admin, Some(json!({"email": null}))).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        s.show_user(&cli(), &acme.user).await.unwrap().user.email,
        acme.user
    );

    let a = api(
        &srv,
        M::PATCH,
        "/api/v1/policy",
        &admin,
        Some(json!({"lockout_attempts": 4})),
    )
    .await;
    let before = api(&srv, M::GET, "/api/v1/policy", &admin, None)
        .await
        .json();
    assert_eq!(a.json(), before);
    assert_eq!(before["lockout_attempts"], 4);
    assert_eq!(before["session_seconds"], 7200, "the rest as it was");
    let a = api(
        &srv,
        M::PATCH,
        "/api/v1/policy",
        &admin,
        Some(json!({"session_seconds": null})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    srv.finish().await;
}

/// Items 10 and 13. Ids holding control characters are 404 before anything runs (no token
/// mailed), and every error of the admin API — axum's own refusals of paths, queries and
/// methods, and unknown endpoints — is its JSON error shape.
async fn hostile_ids_and_extractor_errors_get_the_apis_json_errors(b: Backend) {
    use reqwest::Method as M;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let admin = soap_session(&srv, &acme.admin).await;
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let mails = srv.mails().await.len();
    let id = id18(&acme.user_id);
    for hostile in [
        format!("{id}%0A"),
        format!("%0D{id}"),
        format!("{id}%00"),
        format!("{}%09", acme.user),
    ] {
        let a = api(
            &srv,
            M::POST,
            &format!("/api/v1/users/{hostile}/reset-token"),
            &admin,
            None,
        )
        .await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (404, Some("not_found")),
            "{hostile}: {}",
            a.text
        );
        let a = submit(
            &admin_web,
            &format!("/setup/users/{hostile}/reset-token"),
            "x",
            "",
        )
        .await;
        assert_eq!(a.status, 404, "Setup {hostile}: {}", a.text);
    }
    assert_eq!(srv.mails().await.len(), mails, "no token was mailed");
    // Setup's other ids — a profile in the path, a session or refresh-token handle in a form —
    // name nothing either, and change nothing.
    let audit = s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len();
    let profile = keyward::service::id18(&s.list_profiles(&cli(), "Acme").await.unwrap()[0].id);
    for path in [
        format!("/setup/profiles/{profile}%0A"),
        format!("/setup/profiles/{profile}%0A/ranges"),
    ] {
        let a = submit(&admin_web, &path, "start", "10.0.0.0/8").await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
    }
    for (path, field) in [
        (format!("/setup/users/{id}/end-session"), "session"),
        (
            format!("/setup/users/{id}/revoke-refresh-token"),
            "refresh_token",
        ),
    ] {
        for handle in ["abc\u{0}def", "\n", &"f".repeat(64)] {
            let a = submit(&admin_web, &path, field, handle).await;
            assert!(a.status < 500, "{path} {handle:?}: {}", a.text);
        }
    }
    assert_eq!(
        s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len(),
        audit
    );
    // The same through the service: a control character names nothing.
    let e = s
        .reset_token(&cli(), &format!("{}\n", acme.user))
        .await
        .unwrap_err();
    assert!(
        matches!(e, keyward::service::ServiceError::NotFound(_)),
        "{e}"
    );

    for (method, path, status, error) in [
        (M::GET, "/api/v1/users?limit=many", 400, "invalid"),
        (
            M::GET,
            "/api/v1/login-history?from=yesterday",
            400,
            "invalid",
        ),
        (M::PUT, "/api/v1/users", 405, "method_not_allowed"),
        (M::DELETE, "/api/v1/policy", 405, "method_not_allowed"),
        (M::GET, "/api/v1/nothing-here", 404, "not_found"),
        (M::GET, "/api/v1", 404, "not_found"),
        (M::POST, "/api/v1/users/x/y/z", 404, "not_found"),
    ] {
        let a = api(&srv, method.clone(), path, &admin, None).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.text);
        assert!(
            a.header("content-type").starts_with("application/json"),
            "{method} {path}"
        );
        let j = a.json();
        assert_eq!(j["error"], error, "{method} {path}: {j}");
        assert!(!j["message"].as_str().unwrap().is_empty());
        assert_eq!(
            j["request_id"].as_str(),
            Some(a.header("x-request-id")),
            "{j}"
        );
    }
    let a = api(&srv, M::PUT, "/api/v1/users", &admin, None).await;
    assert!(a.header("allow").contains("GET"), "{:?}", a.headers);
    // A bad body is JSON too, and without a session as well.
    let r = srv
        .http
        .post(format!("{}/api/v1/users", srv.base))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(common::server::answer(r).await.json()["error"], "invalid");
    let a = srv.get("/api/v1/users?limit=many", None).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (401, Some("unauthorized"))
    );
    srv.finish().await;
}

/// Item 7. A request from a trusted proxy that does not say who the client is — no
/// `X-Forwarded-For`, an empty or unreadable one — is from an unknown address, inside no
/// trusted or login range: not from the proxy, which the org may trust.
async fn a_proxy_that_names_no_client_makes_an_unknown_client(b: Backend) {
    let env = common::Env::new(b).await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    let acme = org(s, "Acme").await; // trusts 127.0.0.0/8: the proxy's own address
    let envelope = login_envelope(&acme.user, PW);
    let post = |xff: Option<&'static [u8]>| {
        let mut r = srv
            .http
            .post(format!("{}{SOAP}", srv.base))
            .header("Content-Type", "text/xml")
            .body(envelope.clone());
        if let Some(v) = xff {
            r = r.header(
                "X-Forwarded-For",
                reqwest::header::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        async move { common::server::answer(r.send().await.unwrap()).await }
    };
    // Through the proxy, from inside the trusted range: the password alone is enough.
    assert_eq!(post(Some(b"127.0.0.9")).await.status, 200);
    for xff in [
        None,
        Some(&b""[..]),
        Some(&b"junk"[..]),
        Some(&b"127.0.0.9, \x80junk"[..]),
    ] {
        let a = post(xff).await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN"),
            "{xff:?}: {}",
            a.text
        );
        let row = &s
            .login_history(&cli(), None, Some(&acme.user), 1)
            .await
            .unwrap()[0];
        assert_eq!(row.source_ip, "::", "{xff:?}");
    }
    // A profile's login IP range holding the proxy's address does not let it in either (R-L1).
    s.add_login_range(
        &cli(),
        "Acme",
        "Standard User",
        "127.0.0.0/8",
        None,
        "proxy",
    )
    .await
    .unwrap();
    let token = common::latest_token(&srv.mails().await, &acme.user);
    let with_token = login_envelope(&acme.user, &format!("{PW}{token}"));
    let r = srv
        .http
        .post(format!("{}{SOAP}", srv.base))
        .header("Content-Type", "text/xml")
        .body(with_token)
        .send()
        .await
        .unwrap();
    let a = common::server::answer(r).await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("INVALID_LOGIN"),
        "{}",
        a.text
    );
    let row = &s
        .login_history(&cli(), None, Some(&acme.user), 1)
        .await
        .unwrap()[0];
    assert_eq!(row.status, "Restricted IP");
    srv.finish().await;
}

/// A listener that counts the connections it is offered (and answers none).
async fn counting_listener() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(sock);
        }
    });
    (addr, count)
}

/// Item 6. The delegated-authentication URL cannot reach the server's own network: internal
/// addresses and plain http are refused when the URL is set, and again at the call — on the
/// address the name resolves to then (DNS rebinding) — unless the operator allows them.
async fn delegated_auth_urls_cannot_reach_the_servers_network(b: Backend) {
    use keyward::service::ServiceError;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let (addr, contacted) = counting_listener().await;
    let port = addr.port();
    for url in [
        format!("http://sso.example.com:{port}/sso"),
        format!("https://127.0.0.1:{port}/sso"),
        format!("https://localhost:{port}/sso"),
        "https://10.1.2.3/sso".into(),
        "https://172.16.0.1/sso".into(),
        "https://192.168.0.10/sso".into(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://[::1]/sso".into(),
        "https://[fd00::5]/sso".into(),
        "https://[fe80::1]/sso".into(),
        "https://224.0.0.251/sso".into(),
        "https://[::ffff:127.0.0.1]/sso".into(),
        "https://0.0.0.0/sso".into(),
        "https://2130706433/sso".into(),
        "https://0x7f.1/sso".into(),
        "https://127.1/sso".into(),
        "https://[::7f00:1]/sso".into(),
        "https://[fec0::1]/sso".into(),
        "https://LOCALHOST./sso".into(),
    ] {
        let e = s
            .set_delegated_auth(&cli(), "Acme", Some(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ServiceError::Invalid(m) if m.contains("refused")),
            "{url}: {e}"
        );
    }
    // The admin API says why, and nothing is set.
    let admin = soap_session(&srv, &acme.admin).await;
    let a = api(
        &srv,
        reqwest::Method::PUT,
        "/api/v1/delegated-auth",
        &admin,
        Some(json!({"url": "https://169.254.169.254/latest/meta-data"})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.json()["message"].as_str().unwrap().contains("link-local"),
        "{}",
        a.text
    );
    assert!(
        s.get_org(&cli(), "Acme")
            .await
            .unwrap()
            .delegated_auth_url
            .is_none()
    );
    // A PUT without `url` is a mistake, not "turn it off".
    let a = api(
        &srv,
        reqwest::Method::PUT,
        "/api/v1/delegated-auth",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);

    // At the call: URLs set while the operator allowed them (or by an older keyward) reach
    // nothing once the rules refuse them — a literal address, and a name that resolves inside.
    let lenient = srv
        .env
        .second_node(|s| {
            s.with_delegated_auth(keyward::delegated::DelegatedSettings {
                allow_private_addresses: true,
                allow_http: true,
                ..Default::default()
            })
        })
        .await;
    lenient
        .create_profile(
            &cli(),
            "Acme",
            "SSO",
            keyward::domain::profile::Permissions {
                api_enabled: true,
                sso_enabled: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    common::create_user(&lenient, "Acme", "sso@acme.test", Some(PW), Some("SSO")).await;
    for url in [
        format!("http://127.0.0.1:{port}/sso"),
        format!("https://127.0.0.1:{port}/sso"),
        format!("https://localhost:{port}/sso"),
    ] {
        lenient
            .set_delegated_auth(&cli(), "Acme", Some(&url))
            .await
            .unwrap();
        let a = soap_login(&srv, "sso@acme.test", "corp-secret").await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("INVALID_LOGIN"),
            "{url}"
        );
        let row = &s
            .login_history(&cli(), None, Some("sso@acme.test"), 1)
            .await
            .unwrap()[0];
        assert_eq!(
            row.status, "Your company's authentication service is down",
            "{url}"
        );
    }
    assert_eq!(
        contacted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the endpoint was never contacted"
    );
    // Allowed by the operator, the same endpoint is called.
    lenient
        .set_delegated_auth(
            &cli(),
            "Acme",
            Some(&format!("http://localhost:{port}/sso")),
        )
        .await
        .unwrap();
    let req = keyward::service::login::LoginRequest::new(
        "sso@acme.test",
        keyward::domain::token::SuppliedSecret::split(&keyward::domain::secret::Password::new("x")),
        keyward::domain::login::Channel::SoapPartner,
        "203.0.113.1".parse().unwrap(),
    );
    lenient.login(req).await.unwrap();
    assert!(contacted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    lenient.db.close().await;
    srv.finish().await;
}

async fn get_user_info(srv: &TestServer, sid: &str) -> Answer {
    let op = soap_call(sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>");
    srv.soap(SOAP, &op).await
}

/// Item 11. Lowering the org's session timeout applies to the sessions already open, at their
/// next check; and every session has an absolute lifetime (default 24 hours), however much it
/// is used (ASVS 7.3.2) — SOAP sessions, OAuth access tokens and web sessions alike.
async fn session_timeouts_apply_to_open_sessions_and_lifetimes_are_absolute(b: Backend) {
    use keyward::service::orgs::PolicyChange;
    use time::Duration;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let clock = &srv.env.clock;
    let (client_id, secret) = oauth_client(s, "Acme", false, None).await;

    // Opened under a 2-hour timeout; the timeout lowered to 5 minutes; 6 idle minutes later
    // the session is over (it would have lived two hours).
    let sid = soap_session(&srv, &acme.user).await;
    assert_eq!(get_user_info(&srv, &sid).await.status, 200);
    let lower = PolicyChange {
        session_seconds: Some(300),
        ..PolicyChange::default()
    };
    s.set_policy(&cli(), "Acme", &lower).await.unwrap();
    clock.advance(Duration::minutes(6));
    assert!(
        s.sessions_of(&cli(), &acme.user).await.unwrap().is_empty(),
        "the sessions pages list what the checks accept"
    );
    let a = get_user_info(&srv, &sid).await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("INVALID_SESSION_ID")
    );
    let sid = soap_session(&srv, &acme.user).await;
    clock.advance(Duration::minutes(4));
    assert_eq!(
        get_user_info(&srv, &sid).await.status,
        200,
        "4 minutes idle: alive"
    );

    // The default lifetime, 24 hours: sessions used every 4 minutes end at the 24th hour.
    let sid = soap_session(&srv, &acme.user).await;
    let grant = password_grant(&srv, &client_id, &secret, &acme.user, PW).await;
    let access = grant.json()["access_token"].as_str().unwrap().to_string();
    let web = Browser::login(&srv, &acme.user).await;
    let mut minutes = 0;
    while minutes + 4 < 24 * 60 {
        clock.advance(Duration::minutes(4));
        minutes += 4;
        if minutes % 240 == 0 {
            assert_eq!(get_user_info(&srv, &sid).await.status, 200, "{minutes} min");
            assert_eq!(userinfo(&srv, &access).await, 200, "{minutes} min");
            assert_eq!(web.get("/settings").await.status, 200, "{minutes} min");
        } else {
            get_user_info(&srv, &sid).await;
            userinfo(&srv, &access).await;
            web.get("/settings").await;
        }
    }
    clock.advance(Duration::minutes(4));
    let a = get_user_info(&srv, &sid).await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("INVALID_SESSION_ID"),
        "24 h: over"
    );
    assert_eq!(userinfo(&srv, &access).await, 403);
    let page = web.get("/settings").await;
    assert_eq!(
        (page.status, page.header("location")),
        (303, "/"),
        "the web session too"
    );

    // A shorter lifetime, set while a session is open, ends it at its next check.
    let sid = soap_session(&srv, &acme.user).await;
    clock.advance(Duration::minutes(3));
    assert_eq!(get_user_info(&srv, &sid).await.status, 200);
    let hour = PolicyChange {
        session_max_seconds: Some(300),
        ..PolicyChange::default()
    };
    s.set_policy(&cli(), "Acme", &hour).await.unwrap();
    clock.advance(Duration::minutes(3));
    let a = get_user_info(&srv, &sid).await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("INVALID_SESSION_ID"),
        "{}",
        a.text
    );
    // Shown, and refused below the idle timeout.
    let admin = soap_session(&srv, &acme.admin).await;
    let p = api(&srv, reqwest::Method::GET, "/api/v1/policy", &admin, None)
        .await
        .json();
    assert_eq!(
        (
            p["session_seconds"].as_u64(),
            p["session_max_seconds"].as_u64()
        ),
        (Some(300), Some(300))
    );
    let a = api(
        &srv,
        reqwest::Method::PATCH,
        "/api/v1/policy",
        &admin,
        Some(json!({"session_seconds": 600})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("session-max-seconds")
    );
    srv.finish().await;
}

/// The decoy rows' failure counts, in key order.
async fn decoy_counts(s: &keyward::service::Services) -> Vec<i64> {
    use keyward::store::Conn;
    let sql = "SELECT failed_logins FROM login_decoys ORDER BY id";
    let mut c = s.db.conn().await.unwrap();
    match c.as_conn() {
        Conn::Sqlite(x) => sqlx::query_scalar(sql).fetch_all(&mut *x).await.unwrap(),
        Conn::Postgres(x) => sqlx::query_scalar(sql).fetch_all(&mut *x).await.unwrap(),
    }
}

/// Item 12. An unknown username makes the write a wrong password makes: it locks and counts a
/// failure on a decoy row of the users' shape, always the same row for the same name (R-L4;
/// the timing figures are in docs/security.md).
async fn an_unknown_username_writes_what_a_wrong_password_writes(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let before = decoy_counts(s).await;
    assert_eq!(before.len(), 64);
    for _ in 0..3 {
        let a = soap_login(&srv, "nobody@acme.test", PW).await;
        assert_eq!(a.xml("exceptionCode").as_deref(), Some("INVALID_LOGIN"));
    }
    let after = decoy_counts(s).await;
    let changed: Vec<i64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a - b)
        .filter(|d| *d != 0)
        .collect();
    assert_eq!(changed, [3], "one decoy row, counted three times");
    // Another name meets its own row (usually another); a known user's refusal meets none.
    soap_login(&srv, "someone-else@acme.test", PW).await;
    let sum = |v: &[i64]| v.iter().sum::<i64>();
    assert_eq!(sum(&decoy_counts(s).await), sum(&after) + 1);
    soap_login(&srv, &acme.user, "Wrong-Passw0rd1").await;
    assert_eq!(sum(&decoy_counts(s).await), sum(&after) + 1);
    assert_eq!(
        s.show_user(&cli(), &acme.user)
            .await
            .unwrap()
            .user
            .failed_logins,
        1
    );
    srv.finish().await;
}

/// Item 5, in the hash pool: right passwords sent without their token earn the address no
/// place at the front. An address that sent several waits, with one more, behind an address
/// never seen before — where, earning credit as proofs of a password, it went first.
async fn passwords_without_tokens_earn_no_place_in_the_hash_pool(b: Backend) {
    // One hashing thread, and hashes slow enough (~100 ms) that the order they run in is the
    // order the logins answer in.
    let env = common::Env::new_with(b, |mut s| {
        let slow = keyward::crypto::HashParams {
            memory_kib: 8192,
            iterations: 24,
            parallelism: 1,
        };
        s.hasher = std::sync::Arc::new(keyward::crypto::Hasher::new(slow, 1).unwrap());
        s
    })
    .await;
    let srv = std::sync::Arc::new(
        TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await,
    );
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    common::create_user(s, "Acme", "ada@acme.test", Some(PW), None).await;
    common::create_user(s, "Acme", "bob@acme.test", Some(PW), None).await;
    let mails = srv.mails().await;
    let bob = format!("{PW}{}", common::latest_token(&mails, "bob@acme.test"));
    let holder = "203.0.113.50";
    let send = |ip: &'static str, user: &'static str, secret: String| {
        let srv = srv.clone();
        tokio::spawn(async move {
            let a = srv
                .post_from(ip, SOAP, "text/xml", login_envelope(user, &secret))
                .await;
            (a, std::time::Instant::now())
        })
    };
    for _ in 0..6 {
        let (a, _) = send(holder, "ada@acme.test", PW.into()).await.unwrap();
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN")
        );
    }
    let held = s.hasher.hold_place().await.unwrap();
    let again = send(holder, "ada@acme.test", PW.into());
    let start = std::time::Instant::now();
    while s.hasher.queue_depth() < 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let fresh = send("198.51.100.77", "bob@acme.test", bob);
    while s.hasher.queue_depth() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(held);
    let (a, held_back) = again.await.unwrap();
    let (f, went_first) = fresh.await.unwrap();
    assert_eq!(f.status, 200, "{}", f.text);
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("LOGIN_MUST_USE_SECURITY_TOKEN")
    );
    assert!(
        went_first < held_back,
        "the address that sent passwords without tokens went ahead of a fresh one"
    );
    std::sync::Arc::into_inner(srv).unwrap().finish().await;
}

/// Item 1, the authenticator: an enrolment belongs to the session that started it with the
/// password. Another session of the user — a stolen cookie — neither sees its secret nor
/// confirms it (and so gets no recovery codes).
async fn an_authenticator_enrolment_belongs_to_the_session_that_proved_the_password(b: Backend) {
    use keyward::domain::verification as totp;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let owner = Browser::login(&srv, &acme.user).await;
    let thief = Browser::login(&srv, &acme.user).await;
    let a = submit(&owner, "/settings/mfa/start", "password", PW).await;
    assert_eq!(a.status, 303, "{}", a.text);
    let page = owner.get("/settings/mfa").await.text;
    let at = page
        .find("Or type this key: <code>")
        .expect("the owner sees the key")
        + 24;
    let key = page[at..at + page[at..].find('<').unwrap()].to_string();
    assert!(
        !thief.get("/settings/mfa").await.text.contains(&key),
        "the thief sees it"
    );
    let secret = totp::from_base32(&key).unwrap();
    let code = totp::totp_at(&secret, totp::step_of(s.now())).unwrap();
    let a = submit(&thief, "/settings/mfa/confirm", "code", &code).await;
    assert!(
        a.text.contains("enrolment in progress in this session"),
        "{}",
        a.text
    );
    assert!(!s.totp_status(&cli(), &acme.user).await.unwrap().enrolled);
    let a = submit(&owner, "/settings/mfa/confirm", "code", &code).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("recovery codes"), "{}", a.text);
    assert!(s.totp_status(&cli(), &acme.user).await.unwrap().enrolled);
    srv.finish().await;
}

/// Item 1, integration credentials: a client whose client-credentials tokens act as the admin
/// creating it is a lasting credential for the session's own account (it outlives the session
/// and its password), so creating it, or rotating its secret, takes the admin's password.
async fn a_session_alone_mints_no_client_acting_as_its_own_user(b: Backend) {
    use reqwest::Method as M;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let admin = soap_session(&srv, &acme.admin).await;
    let admin_web = Browser::login(&srv, &acme.admin).await;
    let new = |password: Option<&str>| {
        let mut body = json!({"name": "mine", "run_as": acme.admin});
        if let Some(p) = password {
            body["current_password"] = json!(p);
        }
        api(&srv, M::POST, "/api/v1/oauth-clients", &admin, Some(body))
    };
    for password in [None, Some(""), Some("Wrong-Passw0rd1")] {
        let a = new(password).await;
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (403, Some("refused")),
            "{}",
            a.text
        );
    }
    let csrf = admin_web.csrf().await;
    let page = admin_web
        .post(
            "/setup/oauth",
            &[("csrf", &csrf), ("name", "mine"), ("run_as", &acme.admin)],
        )
        .await;
    assert!(page.text.contains("current password"), "{}", page.text);
    assert!(
        s.list_oauth_clients(&cli(), "Acme")
            .await
            .unwrap()
            .is_empty(),
        "nothing created"
    );
    // Another user of the org is the admin's to delegate, as before.
    let a = api(
        &srv,
        M::POST,
        "/api/v1/oauth-clients",
        &admin,
        Some(json!({"name": "theirs", "run_as": acme.user})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    // With the password, it is created; its secret rotates only with the password again.
    let a = new(Some(PW)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.json()["id"].as_str().unwrap().to_string();
    let rotate = format!("/api/v1/oauth-clients/{id}/rotate-secret");
    let a = post_api(&srv, &rotate, &admin).await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = api(
        &srv,
        M::POST,
        &rotate,
        &admin,
        Some(json!({"current_password": PW})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = submit(
        &admin_web,
        &format!("/setup/oauth/{id}/rotate-secret"),
        "x",
        "",
    )
    .await;
    assert!(!a.text.contains("has a new secret"), "{}", a.text);
    let a = submit(
        &admin_web,
        &format!("/setup/oauth/{id}/rotate-secret"),
        "password",
        PW,
    )
    .await;
    assert!(a.text.contains("has a new secret"), "{}", a.text);
    srv.finish().await;
}
