//! The admin API's integration-token endpoints over HTTP: create (the token only in the user's
//! mail), list, read, rotate and revoke as logins see them, the usage inventories after real
//! SOAP and OAuth logins, other orgs' and non-admins' refusals, bad bodies that change nothing,
//! and the endpoints in the OpenAPI document.

use super::support::{SOAP, TOKEN, cli, id18};
use crate::common::browser::PW;
use crate::common::server::{Answer, TestServer, answer, form_body, login_envelope};
use crate::common::{Backend, Org, latest_token, oauth_client, org};
use crate::on_both;
use reqwest::Method as M;
use serde_json::{Value, json};

on_both!(
    api_creates_lists_rotates_and_revokes_integration_tokens,
    api_shows_where_tokens_were_used,
    other_orgs_and_non_admins_reach_no_integration_token,
    api_refuses_bad_integration_input_and_changes_nothing,
    the_openapi_document_lists_the_integration_endpoints,
);

async fn the_openapi_document_lists_the_integration_endpoints(b: Backend) {
    let srv = TestServer::start(b).await;
    let doc = srv.get("/api/v1/openapi.json", None).await.json();
    let paths = &doc["paths"];
    for (path, methods) in [
        (
            "/api/v1/users/{id}/integration-tokens",
            &["get", "post"][..],
        ),
        ("/api/v1/users/{id}/token-usage", &["get"]),
        ("/api/v1/integration-tokens/{id}", &["get", "delete"]),
        ("/api/v1/integration-tokens/{id}/rotate", &["post"]),
        ("/api/v1/integration-tokens/{id}/usage", &["get"]),
    ] {
        for m in methods {
            assert!(
                paths[path][m].is_object(),
                "{m} {path} is not in the document"
            );
        }
    }
    let created = &paths["/api/v1/users/{id}/integration-tokens"]["post"];
    assert!(
        created["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/IntegrationTokenInfo"),
        "{created}"
    );
    assert!(paths["/api/v1/integration-tokens/{id}"]["delete"]["responses"]["204"].is_object());
    let schemas = &doc["components"]["schemas"];
    let info: Vec<&str> = schemas["IntegrationTokenInfo"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "id",
        "name",
        "status",
        "created",
        "expires",
        "last_used",
        "last_address",
    ] {
        assert!(info.contains(&field), "{info:?}");
    }
    assert!(
        !info.iter().any(|f| f.contains("digest") || *f == "token"),
        "{info:?}"
    );
    assert!(schemas["CredentialUse"]["properties"]["uses"].is_object());
    let new = &schemas["NewIntegrationToken"];
    assert_eq!(new["additionalProperties"], false, "{new}");
    assert_eq!(new["required"], json!(["name"]), "{new}");
    srv.finish().await;
}

async fn api(srv: &TestServer, method: M, path: &str, sid: &str, body: Option<Value>) -> Answer {
    let mut r = srv
        .http
        .request(method, format!("{}{path}", srv.base))
        .bearer_auth(sid);
    if let Some(b) = body {
        r = r.json(&b);
    }
    answer(r.send().await.unwrap()).await
}

/// A SOAP login's session id (the org trusts 127.0.0.1: the password alone).
async fn session(srv: &TestServer, username: &str) -> String {
    session_of(srv.soap(SOAP, &login_envelope(username, PW)).await)
}

fn session_of(a: Answer) -> String {
    a.xml("sessionId")
        .unwrap_or_else(|| panic!("login failed: {}", a.text))
}

/// A SOAP login as if from `ip`, through the proxy the server trusts at 127.0.0.1.
async fn soap_from(srv: &TestServer, ip: &str, username: &str, secret: &str) -> Answer {
    srv.post_from(ip, SOAP, "text/xml", login_envelope(username, secret))
        .await
}

/// The newest integration token mailed to `to`, with its mail's subject.
async fn mailed(srv: &TestServer, to: &str) -> (String, String) {
    srv.mails()
        .await
        .iter()
        .rev()
        .filter(|m| m.to == to)
        .find_map(|m| m.integration_token().map(|t| (m.subject.clone(), t)))
        .unwrap_or_else(|| panic!("no integration token mailed to {to}"))
}

fn instant(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not an instant: {v}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn lifetime(t: &Value) -> time::Duration {
    instant(&t["expires"]) - instant(&t["created"])
}

async fn soap_login_works(srv: &TestServer, username: &str, secret: &str) -> bool {
    srv.soap(SOAP, &login_envelope(username, secret))
        .await
        .xml("sessionId")
        .is_some()
}

async fn create(srv: &TestServer, sid: &str, user: &str, body: Value) -> Value {
    let path = format!("/api/v1/users/{user}/integration-tokens");
    let r = api(srv, M::POST, &path, sid, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn api_creates_lists_rotates_and_revokes_integration_tokens(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let sid = session(&srv, &acme.admin).await;
    let user18 = id18(&acme.user_id);

    // 201 with the record; the token is in the user's mail and nowhere in the answer.
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/users/{user18}/integration-tokens"),
        &sid,
        Some(json!({"name": "Data Loader"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("content-type").starts_with("application/json"));
    let loader = r.json();
    let id = loader["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("0Ik") && id.len() == 18, "{loader}");
    assert_eq!(
        (
            &loader["name"],
            &loader["status"],
            &loader["last_used"],
            &loader["last_address"],
            &loader["replaces"],
            &loader["user_id"],
            &loader["username"],
        ),
        (
            &json!("Data Loader"),
            &json!("active"),
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!(user18),
            &json!(acme.user),
        )
    );
    assert_eq!(lifetime(&loader), time::Duration::days(90));
    let (subject, t1) = mailed(&srv, &acme.user).await;
    assert_eq!(subject, "Your new integration token: Data Loader");
    assert!(!r.text.contains(&t1) && !r.text.contains("kwi_"));
    // By username, with a shorter life (a minute later: the list is newest first).
    srv.env.clock.advance(time::Duration::minutes(1));
    let backup = create(
        &srv,
        &sid,
        &acme.user,
        json!({"name": "Backup", "expires_days": 7}),
    )
    .await;
    assert_eq!(lifetime(&backup), time::Duration::days(7));

    // The list, newest first; one token by its 18- or 15-character id.
    let list = |who: String| {
        let srv = &srv;
        let sid = &sid;
        async move {
            let path = format!("/api/v1/users/{who}/integration-tokens");
            let r = api(srv, M::GET, &path, sid, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert!(!r.text.contains("kwi_"));
            r.json()
        }
    };
    let listed = list(acme.user.clone()).await;
    assert_eq!(listed, json!([backup, loader]));
    assert_eq!(list(acme.user_id.clone()).await, listed);
    for which in [id.clone(), id[..15].to_string(), id.to_lowercase()] {
        let r = api(
            &srv,
            M::GET,
            &format!("/api/v1/integration-tokens/{which}"),
            &sid,
            None,
        )
        .await;
        assert_eq!((r.status, r.json()), (200, loader.clone()), "{which}");
    }

    // A login with it: the record shows its last use.
    assert!(soap_login_works(&srv, &acme.user, &t1).await);
    let read = api(
        &srv,
        M::GET,
        &format!("/api/v1/integration-tokens/{id}"),
        &sid,
        None,
    )
    .await
    .json();
    assert_eq!(read["last_address"], "127.0.0.1");
    assert!(instant(&read["last_used"]) >= instant(&read["created"]));

    // Rotation: 201 with the successor, of the same name, mailed; the old one in grace.
    srv.env.clock.advance(time::Duration::minutes(1));
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/integration-tokens/{id}/rotate"),
        &sid,
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let successor = r.json();
    let next = successor["id"].as_str().unwrap().to_string();
    assert_ne!(next, id);
    assert_eq!(successor["replaces"], id.as_str());
    assert_eq!(successor["name"], "Data Loader");
    assert_eq!(successor["status"], "active");
    let (subject, t2) = mailed(&srv, &acme.user).await;
    assert_eq!(subject, "Your new integration token: Data Loader");
    assert_ne!(t2, t1);
    assert!(!r.text.contains(&t2));
    let old = api(
        &srv,
        M::GET,
        &format!("/api/v1/integration-tokens/{id}"),
        &sid,
        None,
    )
    .await
    .json();
    assert_eq!(old["status"], "in grace");
    assert!(soap_login_works(&srv, &acme.user, &t1).await);
    assert!(soap_login_works(&srv, &acme.user, &t2).await);
    // Rotating it again is a conflict (not in the state rotation needs); rotate its successor.
    let r = api(
        &srv,
        M::POST,
        &format!("/api/v1/integration-tokens/{id}/rotate"),
        &sid,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (409, Some("conflict"))
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("rotated already")
    );

    // Revocation: 204 and no body, as every DELETE of the API; the record says so, the
    // token no longer logs in, the session it made ends, and a second DELETE is a conflict.
    let made = session_of(srv.soap(SOAP, &login_envelope(&acme.user, &t2)).await);
    let path = format!("/api/v1/integration-tokens/{next}");
    let r = api(&srv, M::DELETE, &path, &sid, None).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert!(srv.services().check_session(&made).await.unwrap().is_none());
    assert_eq!(
        api(&srv, M::GET, &path, &sid, None).await.json()["status"],
        "revoked"
    );
    assert!(!soap_login_works(&srv, &acme.user, &t2).await);
    let r = api(&srv, M::DELETE, &path, &sid, None).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        r.json()["message"],
        format!("integration token {next} is revoked already")
    );
    // The predecessor in its grace window too.
    let r = api(
        &srv,
        M::DELETE,
        &format!("/api/v1/integration-tokens/{id}"),
        &sid,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(!soap_login_works(&srv, &acme.user, &t1).await);
    let statuses: Vec<Value> = list(acme.user.clone())
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("revoked"), json!("active"), json!("revoked")]
    );

    // The audit trail names the admin for each change; the email log never holds a token.
    let audit = api(&srv, M::GET, "/api/v1/audit-trail?limit=100", &sid, None).await;
    for want in [
        "Created integration token \\\"Data Loader\\\"",
        "Rotated integration token \\\"Data Loader\\\"",
        "Revoked integration token \\\"Data Loader\\\"",
    ] {
        assert!(audit.text.contains(want), "{want}: {}", audit.text);
    }
    let mail = api(&srv, M::GET, "/api/v1/mail?limit=100", &sid, None).await;
    assert!(mail.text.contains("Your new integration token"));
    assert!(!mail.text.contains(&t1) && !mail.text.contains(&t2));
    srv.finish().await;
}

async fn api_shows_where_tokens_were_used(b: Backend) {
    let srv =
        TestServer::start_with(b, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let sid = session_of(soap_from(&srv, "127.0.0.1", &acme.admin, PW).await);
    let security_token = latest_token(&srv.mails().await, &acme.user);
    let t = create(&srv, &sid, &acme.user, json!({"name": "ETL"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let (_, token) = mailed(&srv, &acme.user).await;
    let usage_path = format!("/api/v1/integration-tokens/{id}/usage");
    let token_usage_path = format!("/api/v1/users/{}/token-usage", acme.user);
    for path in [&usage_path, &token_usage_path] {
        let r = api(&srv, M::GET, path, &sid, None).await;
        assert_eq!((r.status, r.text.as_str()), (200, "[]"), "{path}");
    }

    // Two SOAP logins from a forwarded address and one OAuth password grant with the token;
    // one SOAP login with the password and the security token from outside the trusted range.
    for _ in 0..2 {
        session_of(soap_from(&srv, "203.0.113.5", &acme.user, &token).await);
    }
    let (client_id, client_secret) = oauth_client(s, "Acme", false, None).await;
    let grant = form_body(&[
        ("grant_type", "password"),
        ("client_id", &client_id),
        ("client_secret", &client_secret),
        ("username", &acme.user),
        ("password", &token),
    ]);
    let r = srv
        .post_from(
            "192.0.2.44",
            TOKEN,
            "application/x-www-form-urlencoded",
            grant,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pw_token = format!("{PW}{security_token}");
    session_of(soap_from(&srv, "198.51.100.7", &acme.user, &pw_token).await);

    let uses = api(&srv, M::GET, &usage_path, &sid, None).await.json();
    let mut by_address: Vec<(String, i64)> = uses
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert!(instant(&u["first_seen"]) <= instant(&u["last_seen"]), "{u}");
            (
                u["source_ip"].as_str().unwrap().to_string(),
                u["uses"].as_i64().unwrap(),
            )
        })
        .collect();
    by_address.sort();
    assert_eq!(
        by_address,
        [
            ("192.0.2.44".to_string(), 1),
            ("203.0.113.5".to_string(), 2)
        ],
        "{uses}"
    );
    let oauth = uses
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["source_ip"] == "192.0.2.44")
        .unwrap();
    assert_eq!(oauth["client"], client_id.as_str(), "{uses}");
    // The security token's inventory has only the login that used it, by user id too.
    for path in [
        token_usage_path.clone(),
        format!("/api/v1/users/{}/token-usage", id18(&acme.user_id)),
    ] {
        let rows = api(&srv, M::GET, &path, &sid, None).await.json();
        assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
        assert_eq!(
            (&rows[0]["source_ip"], &rows[0]["uses"]),
            (&json!("198.51.100.7"), &json!(1))
        );
    }
    // Its list entry names the last use.
    let listed = api(
        &srv,
        M::GET,
        &format!("/api/v1/users/{}/integration-tokens", acme.user),
        &sid,
        None,
    )
    .await
    .json();
    assert!(listed[0]["last_used"].is_string(), "{listed}");
    assert!(
        ["192.0.2.44", "203.0.113.5"].contains(&listed[0]["last_address"].as_str().unwrap()),
        "{listed}"
    );
    srv.finish().await;
}

/// The answer of every integration-token endpoint for `sid`, about Acme's user and token.
async fn every_endpoint(srv: &TestServer, sid: &str, acme: &Org, token: &str) -> Vec<Answer> {
    let user = id18(&acme.user_id);
    let mut out = Vec::new();
    for (method, path, body) in [
        (
            M::GET,
            format!("/api/v1/users/{user}/integration-tokens"),
            None,
        ),
        (
            M::POST,
            format!("/api/v1/users/{user}/integration-tokens"),
            Some(json!({"name": "Sneaky"})),
        ),
        (
            M::GET,
            format!("/api/v1/users/{}/token-usage", acme.user),
            None,
        ),
        (M::GET, format!("/api/v1/integration-tokens/{token}"), None),
        (
            M::GET,
            format!("/api/v1/integration-tokens/{token}/usage"),
            None,
        ),
        (
            M::POST,
            format!("/api/v1/integration-tokens/{token}/rotate"),
            None,
        ),
        (
            M::DELETE,
            format!("/api/v1/integration-tokens/{token}"),
            None,
        ),
    ] {
        out.push(api(srv, method, &path, sid, body).await);
    }
    out
}

async fn other_orgs_and_non_admins_reach_no_integration_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let globex = org(s, "Globex").await;
    let acme_sid = session(&srv, &acme.admin).await;
    let t = create(&srv, &acme_sid, &acme.user, json!({"name": "ETL"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let mails = srv.mails().await.len();

    // Another org's admin: 404, with the very message of a token or user that does not exist.
    let globex_sid = session(&srv, &globex.admin).await;
    let answers = every_endpoint(&srv, &globex_sid, &acme, &id).await;
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (404, Some("not_found")),
            "#{i}: {}",
            r.text
        );
    }
    let unknown = "0Ik000000000001AAA";
    let r = api(
        &srv,
        M::GET,
        &format!("/api/v1/integration-tokens/{unknown}"),
        &globex_sid,
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        answers[3].json()["message"],
        format!("no integration token {id}")
    );
    assert_eq!(
        r.json()["message"],
        format!("no integration token {unknown}")
    );
    assert_eq!(
        answers[0].json()["message"],
        format!("no user with id {}", id18(&acme.user_id))
    );
    // And the other way round: Globex's user is no one to Acme's admin.
    let r = api(
        &srv,
        M::GET,
        &format!("/api/v1/users/{}/integration-tokens", globex.user),
        &acme_sid,
        None,
    )
    .await;
    assert_eq!(r.status, 404);

    // A user who is not an admin: 403 not_admin, even for their own tokens.
    let user_sid = session(&srv, &acme.user).await;
    for (i, r) in every_endpoint(&srv, &user_sid, &acme, &id)
        .await
        .iter()
        .enumerate()
    {
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (403, Some("not_admin")),
            "#{i}: {}",
            r.text
        );
    }
    // No session: 401.
    let r = answer(
        srv.http
            .get(format!("{}/api/v1/integration-tokens/{id}", srv.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);

    // Nothing changed: the token is as it was, the only one, and no mail went out.
    let listed = api(
        &srv,
        M::GET,
        &format!("/api/v1/users/{}/integration-tokens", acme.user),
        &acme_sid,
        None,
    )
    .await
    .json();
    assert_eq!(listed, json!([t]));
    assert_eq!(srv.mails().await.len(), mails);
    srv.finish().await;
}

async fn api_refuses_bad_integration_input_and_changes_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let sid = session(&srv, &acme.admin).await;
    let t = create(&srv, &sid, &acme.user, json!({"name": "ETL"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let before = (
        srv.mails().await.len(),
        s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len(),
    );
    let create_path = format!("/api/v1/users/{}/integration-tokens", acme.user);
    let user18 = id18(&acme.user_id);

    // Bodies: unknown fields, missing or empty names, days out of range, wrong types.
    for (body, status, expect) in [
        (
            json!({"name": "X", "expires": 3}),
            400,
            "unknown field `expires`",
        ),
        (
            json!({"name": "X", "token": "kwi_x"}),
            400,
            "unknown field `token`",
        ),
        (json!({}), 400, "missing field `name`"),
        (json!({"name": ""}), 400, "integration token name"),
        (json!({"name": "  "}), 400, "integration token name"),
        (json!({"name": "a\nb"}), 400, "integration token name"),
        (
            json!({"name": "x".repeat(81)}),
            400,
            "integration token name",
        ),
        (
            json!({"name": "X", "expires_days": 0}),
            400,
            "an integration token expires after 1 to 90 days in this org (got 0)",
        ),
        (
            json!({"name": "X", "expires_days": 91}),
            400,
            "an integration token expires after 1 to 90 days in this org (got 91)",
        ),
        (
            json!({"name": "X", "expires_days": -1}),
            400,
            "invalid JSON body",
        ),
        (
            json!({"name": "X", "expires_days": "7"}),
            400,
            "invalid JSON body",
        ),
        (json!(["X"]), 400, "expected an object"),
        (
            json!({"name": "etl"}),
            409,
            "already has an integration token named \"etl\"",
        ),
    ] {
        let r = api(&srv, M::POST, &create_path, &sid, Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(expect), "{body}: {message}");
    }
    let r = answer(
        srv.http
            .post(format!("{}{create_path}", srv.base))
            .bearer_auth(&sid)
            .body(r#"{"name": "X"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text);

    // Ids: none of these names a token or a user.
    let user_as_token = format!("/api/v1/integration-tokens/{user18}");
    for (method, path, status) in [
        (
            M::GET,
            "/api/v1/integration-tokens/0Ik000000000001".to_string(),
            404,
        ),
        (
            M::DELETE,
            "/api/v1/integration-tokens/0Ik000000000001".into(),
            404,
        ),
        (
            M::POST,
            "/api/v1/integration-tokens/0Ik000000000001/rotate".into(),
            404,
        ),
        (
            M::GET,
            "/api/v1/integration-tokens/0Ik000000000001/usage".into(),
            404,
        ),
        (M::GET, user_as_token.clone(), 404),
        (M::DELETE, user_as_token.clone(), 404),
        (M::POST, format!("{user_as_token}/rotate"), 404),
        (M::GET, "/api/v1/integration-tokens/nonsense".into(), 404),
        (M::GET, "/api/v1/integration-tokens/0Ik%0A".into(), 404),
        (
            M::GET,
            "/api/v1/users/ghost@acme.test/integration-tokens".into(),
            404,
        ),
        (
            M::GET,
            "/api/v1/users/ghost@acme.test/token-usage".into(),
            404,
        ),
        (
            M::GET,
            format!("/api/v1/users/{id}/integration-tokens"),
            400,
        ),
        (M::PUT, format!("/api/v1/integration-tokens/{id}"), 405),
        (
            M::GET,
            format!("/api/v1/integration-tokens/{id}/rotate"),
            405,
        ),
    ] {
        let r = api(&srv, method.clone(), &path, &sid, None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert!(
            r.json()["message"].is_string(),
            "{method} {path}: {}",
            r.text
        );
    }
    let r = api(
        &srv,
        M::POST,
        "/api/v1/users/ghost@acme.test/integration-tokens",
        &sid,
        Some(json!({"name": "X"})),
    )
    .await;
    assert_eq!(r.json()["message"], "no user ghost@acme.test");

    // Nothing was created, mailed or recorded.
    let listed = api(&srv, M::GET, &create_path, &sid, None).await.json();
    assert_eq!(listed, json!([t]));
    let after = (
        srv.mails().await.len(),
        s.audit_trail(&cli(), "Acme", 1000).await.unwrap().len(),
    );
    assert_eq!(after, before);
    srv.finish().await;
}
