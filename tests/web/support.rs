//! What the web tests share: the password, SOAP sessions and admin API calls.

use crate::common::server::{Answer, TestServer, answer, login_envelope};
use keyward::service::Actor;
use serde_json::Value;

pub const PW: &str = "Passw0rd!one";

pub fn cli() -> Actor {
    Actor::Cli("test".into())
}

/// A SOAP login's session id (password alone: 127.0.0.1 is trusted in these orgs).
pub async fn soap_session(srv: &TestServer, username: &str) -> String {
    let a = srv
        .soap("/services/Soap/u/59.0", &login_envelope(username, PW))
        .await;
    a.xml("sessionId")
        .unwrap_or_else(|| panic!("login failed: {}", a.text))
}

pub async fn api(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    sid: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut r = srv.http.request(method, format!("{}{path}", srv.base));
    if let Some(s) = sid {
        r = r.bearer_auth(s);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    answer(r.send().await.unwrap()).await
}
