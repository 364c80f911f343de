//! Item 3: OAuth clients are rotated, disabled, enabled and deleted through the admin API and
//! Setup, and a client-credentials client stops with its run-as user.

use super::support::{
    api, cli, client_credentials, grant_with_refresh, post_api, refresh, soap_session, submit,
    userinfo,
};
use crate::common::browser::{Browser, PW};
use crate::common::server::{TestServer, password_grant};
use crate::common::{Backend, oauth_client, org};
use crate::on_both;

on_both!(oauth_clients_rotate_disable_enable_and_delete);

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
/// the CLI in tests/cli/lifecycle.rs), and a client-credentials client stops when its run-as
/// user is deactivated.
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
