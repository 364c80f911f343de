//! What the security tests share: SOAP and admin-API calls with a session, OAuth grants and
//! refreshes, forms from a logged-in browser, and answers compared across ids.

use crate::common;
use crate::common::browser::{Browser, PW};
use crate::common::server::{Answer, TestServer, login_envelope, password_grant, session_envelope};
use keyward::service::Actor;
use serde_json::Value;

pub const SOAP: &str = "/services/Soap/u/59.0";

pub fn cli() -> Actor {
    Actor::Cli("test".into())
}

pub fn id18(id15: &str) -> String {
    keyward::service::id18(id15)
}

pub async fn soap_login(srv: &TestServer, username: &str, password: &str) -> Answer {
    srv.soap(SOAP, &login_envelope(username, password)).await
}

pub async fn soap_session(srv: &TestServer, username: &str) -> String {
    let a = soap_login(srv, username, PW).await;
    a.xml("sessionId")
        .unwrap_or_else(|| panic!("login failed: {}", a.text))
}

pub fn soap_call(sid: &str, operation: &str) -> String {
    session_envelope(sid, operation)
}

pub fn set_password(sid: &str, user_id: &str, password: &str) -> String {
    soap_call(
        sid,
        &format!(
            "<setPassword xmlns=\"urn:partner.soap.sforce.com\"><userId>{user_id}</userId>\
             <password>{password}</password></setPassword>"
        ),
    )
}

/// An admin API call with a bearer session.
pub async fn api(
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
pub async fn userinfo(srv: &TestServer, token: &str) -> u16 {
    srv.get("/services/oauth2/userinfo", Some(token))
        .await
        .status
}

/// An admin API `POST` with no body.
pub async fn post_api(srv: &TestServer, path: &str, admin: &str) -> Answer {
    api(srv, reqwest::Method::POST, path, admin, None).await
}

/// A password grant for `username` with a client that issues refresh tokens: (access token,
/// refresh token).
pub async fn grant_with_refresh(
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

pub async fn refresh(srv: &TestServer, client: &(String, String), rt: &str) -> Answer {
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

/// A form posted from a logged-in browser with its CSRF token.
pub async fn submit(b: &Browser, path: &str, field: &str, value: &str) -> Answer {
    let csrf = b.csrf().await;
    b.post(path, &[("csrf", &csrf), (field, value)]).await
}

pub async fn client_credentials(srv: &TestServer, client: &(String, String)) -> Answer {
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

/// An answer with `id` replaced, to compare the answers about two ids.
pub fn shape(a: &Answer, id: &str) -> (u16, String) {
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
