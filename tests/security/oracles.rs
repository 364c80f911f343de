//! No oracles: another org's ids answer like missing ones (item 8), and an unknown username
//! writes what a wrong password writes (item 12).

use super::support::{SOAP, api, cli, id18, set_password, shape, soap_login, soap_session};
use crate::common::browser::{Browser, PW};
use crate::common::server::TestServer;
use crate::common::{Backend, oauth_client, org};
use crate::on_both;
use serde_json::json;

on_both!(
    other_orgs_ids_answer_like_missing_ones,
    an_unknown_username_writes_what_a_wrong_password_writes,
);

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

/// The decoy rows' failure counts, in key order.
async fn decoy_counts(s: &keyward::service::Services) -> Vec<i64> {
    use keyward::test_support::store::Conn;
    let sql = "SELECT failed_logins FROM login_decoys ORDER BY id";
    let mut c = keyward::test_support::db(s).conn().await.unwrap();
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
