//! R-M1: an admin cannot read or change another org by id (pages and API answer 404), and
//! Setup and the API are for admins only.

use super::support::{api, cli, soap_session};
use crate::common::browser::Browser;
use crate::common::server::TestServer;
use crate::common::{Backend, org};
use crate::on_both;
use serde_json::json;

on_both!(
    r_m1_an_admin_cannot_read_or_change_another_org_by_id,
    r_m1_setup_and_the_api_are_for_admins_only,
);

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
