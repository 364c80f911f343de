//! What the store tests share: orgs, users and logins through the services, and the user's
//! row.

use crate::common;
use keyward::domain::login::{Channel, LoginOutcome};
use keyward::domain::secret::Password;
use keyward::domain::token::SuppliedSecret;
use keyward::service::login::{LoginRequest, LoginResponse};
use keyward::service::{Actor, Services};
use keyward::test_support::store::users as user_rows;
use std::net::IpAddr;

pub const PW: &str = "Passw0rd!one";
pub const UNTRUSTED: &str = "203.0.113.9";

pub fn cli() -> Actor {
    Actor::Cli("test".into())
}

pub async fn org(s: &Services, name: &str) -> String {
    s.create_org(&cli(), name).await.unwrap().id
}

pub async fn user(s: &Services, org: &str, username: &str, pw: Option<&str>) -> String {
    user_with_profile(s, org, username, pw, None).await
}

pub async fn user_with_profile(
    s: &Services,
    org: &str,
    username: &str,
    pw: Option<&str>,
    profile: Option<&str>,
) -> String {
    common::create_user(s, org, username, pw, profile).await
}

pub async fn login(s: &Services, username: &str, secret: &str, ip: &str) -> LoginResponse {
    login_on(s, Channel::SoapPartner, username, secret, ip).await
}

pub async fn login_on(
    s: &Services,
    channel: Channel,
    username: &str,
    secret: &str,
    ip: &str,
) -> LoginResponse {
    let mut req = LoginRequest::new(
        username,
        SuppliedSecret::split(&Password::new(secret)),
        channel,
        ip.parse::<IpAddr>().unwrap(),
    );
    req.client = "test".into();
    req.api_version = "59.0".into();
    req.login_url = "http://127.0.0.1/services/Soap/u/59.0".into();
    s.login(req).await.unwrap()
}

pub fn success(r: &LoginResponse) -> bool {
    matches!(r.outcome, LoginOutcome::Success { .. }) && r.session.is_some()
}

pub async fn user_row(s: &Services, username: &str) -> user_rows::UserRow {
    let mut c = keyward::test_support::db(s).conn().await.unwrap();
    user_rows::find_by_username(&mut c.as_conn(), username)
        .await
        .unwrap()
        .unwrap()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The session and login-history rows of a password+token success of `seen` at `now`, as the
/// one-step writes (`store::logins`) take them; `n` makes their ids distinct.
pub fn success_rows(
    seen: &user_rows::UserRow,
    n: u32,
    now: i64,
) -> (
    keyward::test_support::store::sessions::SessionRow,
    keyward::test_support::store::login_history::LoginHistoryRow,
) {
    use keyward::test_support::store::{login_history::LoginHistoryRow, sessions::SessionRow};
    let session = SessionRow {
        digest: keyward::crypto::digest(&format!("session {n}")),
        org_id: seen.org_id.clone(),
        user_id: seen.id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 60_000,
        login_type: "SOAP Partner".into(),
        source_ip: UNTRUSTED.into(),
        password_expired: false,
        oauth_client_id: None,
        refresh_digest: None,
        integration_token_id: None,
    };
    let history = LoginHistoryRow {
        id: format!("0Ya{n:012}"),
        org_id: Some(seen.org_id.clone()),
        user_id: Some(seen.id.clone()),
        login_at: now,
        source_ip: UNTRUSTED.into(),
        login_type: "SOAP Partner".into(),
        status: "Success".into(),
        client: "test".into(),
        api_version: "59.0".into(),
        login_url: "http://127.0.0.1/".into(),
        credential: "Password + security token".into(),
    };
    (session, history)
}
