//! Issue 14, item 1: a session alone never changes the credentials it came from — the password,
//! the email, the authenticator enrolment, or a client acting as its own user.

use super::support::{
    SOAP, api, cli, id18, post_api, set_password, soap_call, soap_login, soap_session, submit,
    userinfo,
};
use crate::common::browser::{Browser, PW};
use crate::common::server::{TestServer, password_grant};
use crate::common::{Backend, oauth_client, org};
use crate::on_both;
use serde_json::json;

on_both!(
    a_session_alone_never_changes_the_credentials_it_came_from,
    an_authenticator_enrolment_belongs_to_the_session_that_proved_the_password,
    a_session_alone_mints_no_client_acting_as_its_own_user,
);

fn change_own(sid: &str, old: &str, new: &str) -> String {
    soap_call(
        sid,
        &format!(
            "<changeOwnPassword xmlns=\"urn:partner.soap.sforce.com\"><oldPassword>{old}\
             </oldPassword><newPassword>{new}</newPassword></changeOwnPassword>"
        ),
    )
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
