//! What the HTTP tests share: the fixture (an org with one user and their mailed token), the
//! SOAP and OAuth paths, raw requests, and small helpers over the services.

use crate::common;
use crate::common::server::{Answer, TestServer, login_envelope};
use crate::common::{Backend, latest_token};
use keyward::domain::profile::Permissions;
use keyward::service::orgs::PolicyChange;
use keyward::service::{Actor, Services};

pub const PW: &str = "Passw0rd!one";
pub const SOAP: &str = "/services/Soap/u/59.0";
pub const TOKEN: &str = "/services/oauth2/token";
pub const INVALID_LOGIN: &str =
    "INVALID_LOGIN: Invalid username, password, security token; or user locked out.";

pub fn cli() -> Actor {
    Actor::Cli("test".into())
}

/// An org with one user whose first token has been mailed.
pub struct Fixture {
    pub srv: TestServer,
    pub org_id: String,
    pub user_id: String,
    pub token: String,
}

pub const USER: &str = "ada@acme.test";

pub async fn fixture(b: Backend) -> Fixture {
    fixture_with(b, |_| {}).await
}

pub async fn fixture_with(b: Backend, tweak: impl FnOnce(&mut keyward::config::Config)) -> Fixture {
    fixture_in(TestServer::start_with(b, tweak).await).await
}

pub async fn fixture_in(srv: TestServer) -> Fixture {
    let s = srv.services();
    let org_id = s.create_org(&cli(), "Acme").await.unwrap().id;
    let user_id = add_user(s, "Acme", USER, None).await;
    let token = latest_token(&srv.mails().await, USER);
    Fixture {
        srv,
        org_id,
        user_id,
        token,
    }
}

pub async fn add_user(s: &Services, org: &str, username: &str, profile: Option<&str>) -> String {
    common::create_user(s, org, username, Some(PW), profile).await
}

/// A profile whose login IP range (10.0.0.0/24) excludes the test's 127.0.0.1 (R-L1).
pub async fn office_only_profile(s: &Services) {
    let api = Permissions {
        api_enabled: true,
        ..Permissions::default()
    };
    s.create_profile(&cli(), "Acme", "Office Only", api)
        .await
        .unwrap();
    s.add_login_range(&cli(), "Acme", "Office Only", "10.0.0.0/24", None, "office")
        .await
        .unwrap();
}

pub async fn policy(s: &Services, org: &str, change: PolicyChange) {
    s.set_policy(&cli(), org, &change).await.unwrap();
}

pub async fn login(srv: &TestServer, username: &str, secret: &str) -> Answer {
    srv.soap(SOAP, &login_envelope(username, secret)).await
}

pub async fn history_statuses(s: &Services, username: &str) -> Vec<String> {
    s.login_history(
        &cli(),
        None,
        &crate::common::history_query(Some(username), 1000),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.status)
    .collect()
}

pub async fn last_status(s: &Services, username: &str) -> String {
    history_statuses(s, username).await.remove(0)
}

pub fn id18(id15: &str) -> String {
    keyward::service::id18(id15)
}

/// Sends raw bytes and reads until the server closes.
pub async fn raw_request(host: &str, head: &[u8], body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(head).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Row counts of the tables a request could write.
pub async fn counts(s: &Services) -> Vec<i64> {
    let mut c = keyward::test_support::db(s).conn().await.unwrap();
    let mut out = Vec::new();
    for t in [
        "login_history",
        "sessions",
        "audit_trail",
        "outbox",
        "users",
        "refresh_tokens",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {t}");
        let n: i64 = match &mut c {
            keyward::test_support::store::Pooled::Sqlite(c) => {
                sqlx::query_scalar(&sql).fetch_one(&mut **c).await.unwrap()
            }
            keyward::test_support::store::Pooled::Postgres(c) => {
                sqlx::query_scalar(&sql).fetch_one(&mut **c).await.unwrap()
            }
        };
        out.push(n);
    }
    out
}
