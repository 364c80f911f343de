//! Item 6: the delegated-authentication URL cannot reach the server's own network, when set
//! or at the call.

use super::support::{api, cli, soap_login, soap_session};
use crate::common;
use crate::common::browser::PW;
use crate::common::server::TestServer;
use crate::common::{Backend, org};
use crate::on_both;
use serde_json::json;

on_both!(delegated_auth_urls_cannot_reach_the_servers_network);

/// A listener that counts the connections it is offered (and answers none).
async fn counting_listener() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(sock);
        }
    });
    (addr, count)
}

/// Item 6. The delegated-authentication URL cannot reach the server's own network: internal
/// addresses and plain http are refused when the URL is set, and again at the call — on the
/// address the name resolves to then (DNS rebinding) — unless the operator allows them.
async fn delegated_auth_urls_cannot_reach_the_servers_network(b: Backend) {
    use keyward::service::ServiceError;
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let (addr, contacted) = counting_listener().await;
    let port = addr.port();
    for url in [
        format!("http://sso.example.com:{port}/sso"),
        format!("https://127.0.0.1:{port}/sso"),
        format!("https://localhost:{port}/sso"),
        "https://10.1.2.3/sso".into(),
        "https://172.16.0.1/sso".into(),
        "https://192.168.0.10/sso".into(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://[::1]/sso".into(),
        "https://[fd00::5]/sso".into(),
        "https://[fe80::1]/sso".into(),
        "https://224.0.0.251/sso".into(),
        "https://[::ffff:127.0.0.1]/sso".into(),
        "https://0.0.0.0/sso".into(),
        "https://2130706433/sso".into(),
        "https://0x7f.1/sso".into(),
        "https://127.1/sso".into(),
        "https://[::7f00:1]/sso".into(),
        "https://[fec0::1]/sso".into(),
        "https://LOCALHOST./sso".into(),
    ] {
        let e = s
            .set_delegated_auth(&cli(), "Acme", Some(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ServiceError::Invalid(m) if m.contains("refused")),
            "{url}: {e}"
        );
    }
    // The admin API says why, and nothing is set.
    let admin = soap_session(&srv, &acme.admin).await;
    let a = api(
        &srv,
        reqwest::Method::PUT,
        "/api/v1/delegated-auth",
        &admin,
        Some(json!({"url": "https://169.254.169.254/latest/meta-data"})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.json()["message"].as_str().unwrap().contains("link-local"),
        "{}",
        a.text
    );
    assert!(
        s.get_org(&cli(), "Acme")
            .await
            .unwrap()
            .delegated_auth_url
            .is_none()
    );
    // A PUT without `url` is a mistake, not "turn it off".
    let a = api(
        &srv,
        reqwest::Method::PUT,
        "/api/v1/delegated-auth",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);

    // At the call: URLs set while the operator allowed them (or by an older keyward) reach
    // nothing once the rules refuse them — a literal address, and a name that resolves inside.
    let lenient = srv
        .env
        .second_node(|s| {
            s.with_delegated_auth(keyward::delegated::DelegatedSettings {
                allow_private_addresses: true,
                allow_http: true,
                ..Default::default()
            })
        })
        .await;
    lenient
        .create_profile(
            &cli(),
            "Acme",
            "SSO",
            keyward::domain::profile::Permissions {
                api_enabled: true,
                sso_enabled: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    common::create_user(&lenient, "Acme", "sso@acme.test", Some(PW), Some("SSO")).await;
    for url in [
        format!("http://127.0.0.1:{port}/sso"),
        format!("https://127.0.0.1:{port}/sso"),
        format!("https://localhost:{port}/sso"),
    ] {
        lenient
            .set_delegated_auth(&cli(), "Acme", Some(&url))
            .await
            .unwrap();
        let a = soap_login(&srv, "sso@acme.test", "corp-secret").await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("INVALID_LOGIN"),
            "{url}"
        );
        let row = &s
            .login_history(
                &cli(),
                None,
                &crate::common::history_query(Some("sso@acme.test"), 1),
            )
            .await
            .unwrap()[0];
        assert_eq!(
            row.status, "Your company's authentication service is down",
            "{url}"
        );
    }
    assert_eq!(
        contacted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the endpoint was never contacted"
    );
    // Allowed by the operator, the same endpoint is called.
    lenient
        .set_delegated_auth(
            &cli(),
            "Acme",
            Some(&format!("http://localhost:{port}/sso")),
        )
        .await
        .unwrap();
    let req = keyward::service::login::LoginRequest::new(
        "sso@acme.test",
        keyward::domain::token::SuppliedSecret::split(&keyward::domain::secret::Password::new("x")),
        keyward::domain::login::Channel::SoapPartner,
        "203.0.113.1".parse().unwrap(),
    );
    lenient.login(req).await.unwrap();
    assert!(contacted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    lenient.close().await;
    srv.finish().await;
}
