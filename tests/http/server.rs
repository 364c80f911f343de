//! The server around the interfaces: metrics, health, request ids and security headers, and
//! the header timeout for slow clients.

use super::support::{PW, USER, fixture_with, login};
use crate::common::Backend;
use crate::common::server::TestServer;
use crate::on_both;
use serde_json::Value;

on_both!(
    metrics_health_request_ids_and_security_headers,
    slow_clients_are_cut_off_after_the_header_timeout,
);

const METRICS_TOKEN: &str = "metrics-token-0123456789";

async fn metrics_health_request_ids_and_security_headers(b: Backend) {
    let f = fixture_with(b, |c| {
        c.server.metrics_token = keyward::config::ConfigSecret(METRICS_TOKEN.into())
    })
    .await;
    let srv = &f.srv;
    login(srv, USER, &format!("{PW}{}", f.token)).await;
    login(srv, USER, PW).await;
    // The statuses would tell which usernames exist: only with the token (R-L4).
    assert_eq!(srv.get("/metrics", None).await.status, 401);
    assert_eq!(
        srv.get("/metrics", Some("wrong-token-0123456789"))
            .await
            .status,
        401
    );
    let a = srv.get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(a.status, 200);
    assert!(
        a.text
            .contains("keyward_logins_total{login_type=\"SOAP Partner\",status=\"Success\"} 1"),
        "{}",
        a.text
    );
    assert!(a.text.contains("keyward_logins_total{login_type=\"SOAP Partner\",status=\"Failed: API security token required\"} 1"));
    assert!(a.text.contains("keyward_hash_queue_depth 0"));
    assert!(a.text.contains("keyward_outbox_backlog "));
    let a = srv.get("/healthz", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "ok");
    // A request id on every answer; a sane one from the client is kept.
    assert_eq!(a.header("x-request-id").len(), 20);
    let r = srv
        .http
        .get(format!("{}/healthz/", srv.base))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = srv
        .http
        .get(format!("{}/healthz", srv.base))
        .header("X-Request-Id", "bad id\"<>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id\"<>");
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
        "cache-control",
    ] {
        assert!(!a.header(h).is_empty(), "{h}");
    }
    assert_eq!(srv.get("/nothing/here", None).await.status, 404);
    // Without a configured token there is no /metrics at all.
    let env = f.srv.stop().await;
    let srv = TestServer::on(env, |_| {}).await;
    let a = srv.get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(a.status, 404);
    assert!(a.text.contains("server.metrics_token"));
    let v: Value = srv.get("/healthz", None).await.json();
    assert_eq!(
        v["database"],
        match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    srv.finish().await;
}

async fn slow_clients_are_cut_off_after_the_header_timeout(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start_with(b, |c| c.server.header_timeout_seconds = 1).await;
    let host = srv.base.trim_start_matches("http://").to_string();
    // Half a request head, then nothing: the server closes the connection, it does not wait.
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(b"POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection is closed the same way.
    let mut idle = tokio::net::TcpStream::connect(&host).await.unwrap();
    for conn in [&mut slow, &mut idle] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            conn.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "the server kept a stalled connection open");
    }
    // The server still answers others.
    assert_eq!(srv.get("/healthz", None).await.status, 200);
    srv.finish().await;
}
