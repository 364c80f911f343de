//! OAuth (docs/wire.md §2): the password, refresh-token and client-credentials grants, revocation,
//! introspection, UserInfo and the identity URL.

use super::support::{
    PW, TOKEN, USER, add_user, cli, fixture, history_statuses, id18, last_status, login,
    office_only_profile,
};
use crate::common::server::{Answer, password_grant};
use crate::common::{Backend, latest_token, oauth_client};
use crate::on_both;

on_both!(
    oauth_password_grant_success_and_errors,
    oauth_refresh_token_and_client_credentials,
    oauth_revoke_introspect_userinfo_and_identity,
);

fn hmac_b64(key: &str, msg: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn oauth_password_grant_success_and_errors(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", false, None).await;
    let a = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("content-type").starts_with("application/json"));
    assert_eq!(a.header("cache-control"), "no-store");
    let j = a.json();
    let access = j["access_token"].as_str().unwrap();
    assert!(access.starts_with(&format!("{}!", f.org_id)));
    assert_eq!(j["instance_url"], srv.base.as_str());
    let id_url = format!("{}/id/{}/{}", srv.base, id18(&f.org_id), id18(&f.user_id));
    assert_eq!(j["id"], id_url.as_str());
    assert_eq!(j["token_type"], "Bearer");
    let issued_at = j["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13, "milliseconds, as a string");
    assert_eq!(
        j["signature"],
        hmac_b64(&secret, &format!("{id_url}{issued_at}")).as_str()
    );
    assert!(
        j.get("refresh_token").is_none(),
        "this client issues no refresh tokens"
    );
    let row = &s
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
        .await
        .unwrap()[0];
    assert_eq!(
        (row.login_type.as_str(), row.status.as_str()),
        ("Remote Access 2.0", "Success")
    );
    assert_eq!(row.client, id);
    // The token in its own field.
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("username", USER),
                ("password", PW),
                ("security_token", &f.token),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // HTTP Basic client authentication.
    let r = srv
        .http
        .post(format!("{}{TOKEN}", srv.base))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "password"),
            ("username", USER),
            ("password", &format!("{PW}{}", f.token)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // multipart/form-data, as the Salesforce CLI posts some of its requests; a file is refused.
    let multipart = |fields: &[(&str, &str)], extra: &str| {
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"{extra}\r\n\r\n{v}\r\n"
            ));
        }
        body + "--XyZ--\r\n"
    };
    let password = format!("{PW}{}", f.token);
    let fields = [
        ("grant_type", "password"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("username", USER),
        ("password", password.as_str()),
    ];
    for (body, status) in [
        (multipart(&fields, ""), 200),
        (multipart(&fields, "; filename=\"a.txt\""), 400),
    ] {
        let r = srv
            .http
            .post(format!("{}{TOKEN}", srv.base))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        let j: serde_json::Value = r.json().await.unwrap();
        if status == 200 {
            assert!(j["access_token"].as_str().is_some(), "{j}");
        } else {
            assert_eq!(j["error"], "invalid_request", "{j}");
        }
    }
    // Errors, in Salesforce's words.
    let err = |a: &Answer| {
        (
            a.status,
            a.json()["error"].as_str().unwrap().to_string(),
            a.json()["error_description"].as_str().unwrap().to_string(),
        )
    };
    let a = password_grant(srv, &id, &secret, USER, PW).await;
    assert_eq!(
        err(&a),
        (400, "invalid_grant".into(), "authentication failure".into())
    );
    assert_eq!(a.json()["error_code"], "LOGIN_MUST_USE_SECURITY_TOKEN");
    let a = password_grant(srv, &id, &secret, USER, "wrong").await;
    assert_eq!(
        err(&a),
        (400, "invalid_grant".into(), "authentication failure".into())
    );
    assert!(a.json().get("error_code").is_none());
    // R-L4: an inactive user and an address outside the login ranges are not told apart, with
    // the right password or a wrong one.
    office_only_profile(s).await;
    add_user(s, "Acme", "ranged@acme.test", Some("Office Only")).await;
    add_user(s, "Acme", "gone@acme.test", None).await;
    s.deactivate(&cli(), "gone@acme.test").await.unwrap();
    let mails = srv.mails().await;
    for u in ["ranged@acme.test", "gone@acme.test"] {
        let t = latest_token(&mails, u);
        for pw in [format!("{PW}{t}"), format!("wrong{t}")] {
            let a = password_grant(srv, &id, &secret, u, &pw).await;
            let generic = (400, "invalid_grant".into(), "authentication failure".into());
            assert_eq!(err(&a), generic, "{u}");
            assert!(a.json().get("error_code").is_none());
        }
    }
    // No client at all: the unknown client it is, and an attempt in login history (R-L9) —
    // on no user: the request never reached the user it named.
    let user_rows = history_statuses(s, USER).await.len();
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(a.json()["error"], "invalid_client_id");
    assert_eq!(history_statuses(s, USER).await.len(), user_rows);
    let newest = s
        .login_history(&cli(), None, &crate::common::history_query(None, 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (newest.status.as_str(), newest.user_id),
        ("Failed: Invalid OAuth client credentials", None)
    );
    // A client logs in only users of its own org (R-M1): others are unknown to it.
    s.create_org(&cli(), "Other").await.unwrap();
    let (other_id, other_secret) = {
        let (row, sec) = s
            .create_oauth_client(&cli(), "Other", "other app", &Default::default())
            .await
            .unwrap();
        (row.client_id, sec.0)
    };
    let rows_before = history_statuses(s, USER).await.len();
    let cross = format!("{PW}{}", f.token);
    let a = password_grant(srv, &other_id, &other_secret, USER, &cross).await;
    assert_eq!(a.json()["error_description"], "authentication failure");
    let rows_after = history_statuses(s, USER).await.len();
    assert_eq!(
        rows_after, rows_before,
        "Ada is unknown to it: no row on her"
    );
    let a = password_grant(srv, "3MVG9nope", &secret, USER, PW).await;
    assert_eq!(
        err(&a),
        (
            400,
            "invalid_client_id".into(),
            "client identifier invalid".into()
        )
    );
    let a = password_grant(srv, &id, "wrong-secret", USER, PW).await;
    assert_eq!(
        err(&a),
        (
            400,
            "invalid_client".into(),
            "invalid client credentials".into()
        )
    );
    // In the client's org's history, on no user.
    let newest = s
        .login_history(&cli(), Some("Acme"), &crate::common::history_query(None, 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (newest.status.as_str(), newest.user_id),
        ("Failed: Invalid OAuth client credentials", None)
    );
    let a = srv
        .form(
            TOKEN,
            &[("grant_type", "authorization_code"), ("client_id", &id)],
        )
        .await;
    assert_eq!(
        err(&a),
        (
            400,
            "unsupported_grant_type".into(),
            "grant type not supported".into()
        )
    );
    let a = srv
        .post(TOKEN, "application/json", "{\"grant_type\":\"password\"}")
        .await;
    assert_eq!(err(&a).1, "unsupported_grant_type");
    let a = srv
        .post(
            TOKEN,
            "application/x-www-form-urlencoded",
            "grant_type=password&grant_type=client_credentials",
        )
        .await;
    assert_eq!(err(&a).1, "invalid_request");
    assert!(err(&a).2.contains("grant_type"));
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(err(&a).1, "invalid_request");
    f.srv.finish().await;
}

async fn oauth_refresh_token_and_client_credentials(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", true, None).await;
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    let first_access = j["access_token"].as_str().unwrap().to_string();
    let refresh = |rt: String, id: String, secret: String| async move {
        srv.form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await
    };
    let a = refresh(rt.clone(), id.clone(), secret.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let second_access = a.json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_access, first_access);
    assert!(
        a.json().get("refresh_token").is_none(),
        "no new refresh token on refresh"
    );
    let identity = format!("/id/{}/{}?format=json", f.org_id, f.user_id);
    assert_eq!(srv.get(&identity, Some(&second_access)).await.status, 200);
    // Another client cannot use it.
    let (other_id, other_secret) = oauth_client(s, "Acme", true, None).await;
    let a = refresh(rt.clone(), other_id, other_secret).await;
    assert_eq!(
        a.json()["error_description"],
        "expired access/refresh token"
    );
    // Revoking the refresh token ends it and the access tokens it issued.
    let a = srv.form("/services/oauth2/revoke", &[("token", &rt)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(srv.get(&identity, Some(&second_access)).await.status, 403);
    assert_eq!(srv.get(&identity, Some(&first_access)).await.status, 403);
    let a = refresh(rt, id.clone(), secret.clone()).await;
    assert_eq!(a.json()["error"], "invalid_grant");
    // Deactivation revokes refresh tokens too (R-T8).
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    s.deactivate(&cli(), USER).await.unwrap();
    s.reactivate(&cli(), USER).await.unwrap();
    assert_eq!(
        refresh(rt, id.clone(), secret.clone()).await.json()["error"],
        "invalid_grant"
    );

    // client_credentials: only with a run-as user.
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(
        a.json()["error_description"],
        "no client credentials user enabled"
    );
    add_user(
        s,
        "Acme",
        "integration@acme.test",
        Some("API Only Integration"),
    )
    .await;
    let (cc_id, cc_secret) = oauth_client(s, "Acme", false, Some("integration@acme.test")).await;
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", &cc_secret),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let j = a.json();
    assert!(
        j["id"].as_str().unwrap().ends_with(&id18(
            &s.show_user(&cli(), "integration@acme.test")
                .await
                .unwrap()
                .user
                .id
        ))
    );
    let row = &s
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some("integration@acme.test"), 1),
        )
        .await
        .unwrap()[0];
    assert_eq!(
        (
            row.login_type.as_str(),
            row.status.as_str(),
            row.client.as_str()
        ),
        ("Remote Access 2.0", "Success", cc_id.as_str())
    );
    s.deactivate(&cli(), "integration@acme.test").await.unwrap();
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", &cc_secret),
            ],
        )
        .await;
    assert_eq!(a.json()["error_description"], "inactive user");
    assert_eq!(
        last_status(s, "integration@acme.test").await,
        "User is inactive"
    );
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", "nope"),
            ],
        )
        .await;
    assert_eq!(a.json()["error"], "invalid_client");
    f.srv.finish().await;
}

async fn oauth_revoke_introspect_userinfo_and_identity(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", true, None).await;
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let access = j["access_token"].as_str().unwrap().to_string();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    // Identity URL, both ways of passing the token, both id lengths.
    let path = format!("/id/{}/{}", id18(&f.org_id), id18(&f.user_id));
    let a = srv.get(&format!("{path}?format=json"), Some(&access)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let idj = a.json();
    assert_eq!(idj["user_id"], id18(&f.user_id).as_str());
    assert_eq!(idj["organization_id"], id18(&f.org_id).as_str());
    assert_eq!(idj["username"], USER);
    assert_eq!(idj["display_name"], "Ada Lovelace");
    assert_eq!(idj["id"], format!("{}{path}", srv.base).as_str());
    assert_eq!(
        idj["urls"]["partner"],
        format!("{}/services/Soap/u/{{version}}/{}", srv.base, f.org_id).as_str()
    );
    let q = format!(
        "/id/{}/{}?format=json&version=59.0&oauth_token={}",
        f.org_id, f.user_id, access
    );
    let a = srv.get(&q, None).await;
    assert_eq!(a.status, 200);
    assert!(
        a.json()["urls"]["rest"]
            .as_str()
            .unwrap()
            .ends_with("/services/data/v59.0/")
    );
    assert_eq!(
        srv.get(&format!("{path}?format=xml"), Some(&access))
            .await
            .status,
        406
    );
    // Someone else's identity: refused.
    let bob = add_user(s, "Acme", "bob@acme.test", None).await;
    let a = srv
        .get(&format!("/id/{}/{bob}", f.org_id), Some(&access))
        .await;
    assert_eq!((a.status, a.text.as_str()), (403, "Bad_Id"));
    let a = srv.get(&path, Some("00D000000000001!junk")).await;
    assert_eq!((a.status, a.text.as_str()), (403, "Bad_OAuth_Token"));
    // UserInfo.
    let a = srv.get("/services/oauth2/userinfo", Some(&access)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["preferred_username"], USER);
    // Introspection: client-authenticated (RFC 7662).
    let introspect = |token: &str, id: &str, secret: &str| {
        let (token, id, secret) = (token.to_string(), id.to_string(), secret.to_string());
        async move {
            srv.form(
                "/services/oauth2/introspect",
                &[
                    ("token", &token),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    };
    let a = introspect(&access, &id, &secret).await;
    assert_eq!(a.status, 200);
    let ij = a.json();
    assert_eq!(ij["active"], true);
    assert_eq!(ij["username"], USER);
    assert_eq!(ij["client_id"], id.as_str());
    assert_eq!(ij["token_type"], "access_token");
    assert!(ij["exp"].as_i64().unwrap() > ij["iat"].as_i64().unwrap());
    let a = introspect(&rt, &id, &secret).await;
    assert_eq!(a.json()["token_type"], "refresh_token");
    assert_eq!(introspect(&access, &id, "wrong").await.status, 401);
    assert_eq!(
        introspect("junk", &id, &secret).await.json(),
        serde_json::json!({"active": false})
    );
    // A client of another org sees nothing (R-M1).
    s.create_org(&cli(), "Other").await.unwrap();
    let (other_id, other_secret) = {
        let (row, sec) = s
            .create_oauth_client(
                &cli(),
                "Other",
                "spy",
                &keyward::service::oauth::ClientOptions::default(),
            )
            .await
            .unwrap();
        (row.client_id, sec.0)
    };
    assert_eq!(
        introspect(&access, &other_id, &other_secret).await.json()["active"],
        false
    );
    // Revoke the access token: everything refuses it; a second revoke is an error.
    assert_eq!(
        srv.form("/services/oauth2/revoke", &[("token", &access)])
            .await
            .status,
        200
    );
    assert_eq!(
        introspect(&access, &id, &secret).await.json()["active"],
        false
    );
    assert_eq!(srv.get(&path, Some(&access)).await.status, 403);
    assert_eq!(
        srv.get("/services/oauth2/userinfo", Some(&access))
            .await
            .status,
        403
    );
    let a = srv
        .form("/services/oauth2/revoke", &[("token", &access)])
        .await;
    assert_eq!(
        (a.status, a.json()["error"].as_str().unwrap()),
        (400, "invalid_token")
    );
    // A SOAP session is an access token too, and the revoke endpoint ends it.
    let sid = login(srv, USER, &format!("{PW}{}", f.token))
        .await
        .xml("sessionId")
        .unwrap();
    assert_eq!(srv.get(&path, Some(&sid)).await.status, 200);
    assert_eq!(
        srv.get(&format!("/services/oauth2/revoke?token={sid}"), None)
            .await
            .status,
        200
    );
    assert_eq!(srv.get(&path, Some(&sid)).await.status, 403);
    f.srv.finish().await;
}
