//! The admin API's seams: merge patches change only the fields sent (item 9); hostile ids and
//! axum's own refusals get the API's JSON errors (items 10, 13).

use super::support::{api, cli, id18, soap_session, submit};
use crate::common;
use crate::common::browser::Browser;
use crate::common::server::TestServer;
use crate::common::{Backend, org};
use crate::on_both;
use serde_json::json;

on_both!(
    patches_change_only_the_fields_sent,
    hostile_ids_and_extractor_errors_get_the_apis_json_errors,
);

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
    // A JSON array is no merge patch: serde would read it by position, past the check for
    // unknown fields.
    let array = json!(["Eve", "Array", "eve@acme.test", "Standard User", null]);
    let a = api(&srv, M::PATCH, &user, &admin, Some(array)).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (400, Some("invalid")),
        "{}",
        a.text
    );
    let a = api(&srv, M::GET, &user, &admin, None).await;
    assert_eq!(a.json()["first_name"], "Grace", "nothing changed");
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
