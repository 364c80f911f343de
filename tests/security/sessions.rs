//! Session ends and lifetimes: ending a session ends its refresh token (item 2); timeouts
//! apply to open sessions and every session has an absolute lifetime (item 11).

use super::support::{
    SOAP, api, cli, grant_with_refresh, id18, refresh, soap_call, soap_session, submit, userinfo,
};
use crate::common::browser::{Browser, PW};
use crate::common::server::{Answer, TestServer, password_grant};
use crate::common::{Backend, oauth_client, org};
use crate::on_both;
use serde_json::{Value, json};

on_both!(
    ending_a_session_ends_its_refresh_token,
    session_timeouts_apply_to_open_sessions_and_lifetimes_are_absolute,
);

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
