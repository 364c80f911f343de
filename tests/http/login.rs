//! The login rules through HTTP: lockout under parallel attempts (R-L5), equal hash work (R-L4),
//! API-disabled profiles (R-L8), the client IP (R-L11) and delegated authentication (R-L7).

use super::support::{
    Fixture, PW, SOAP, USER, add_user, cli, fixture, fixture_in, history_statuses, last_status,
    login, office_only_profile, policy,
};
use crate::common;
use crate::common::server::{TestServer, login_envelope};
use crate::common::{Backend, latest_token};
use crate::on_both;
use keyward::domain::profile::Permissions;
use keyward::service::orgs::PolicyChange;

on_both!(
    r_l5_fifty_parallel_wrong_passwords_lock_at_exactly_the_limit,
    r_l4_every_refused_path_costs_one_hash,
    r_l8_api_disabled_profile,
    r_l11_forwarded_for_only_from_trusted_proxies,
    r_l7_delegated_authentication,
);

/// The fixture over services built by the test.
async fn fixture_on(env: common::Env) -> Fixture {
    fixture_in(TestServer::on(env, |_| {}).await).await
}

async fn r_l5_fifty_parallel_wrong_passwords_lock_at_exactly_the_limit(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    policy(
        s,
        "Acme",
        PolicyChange {
            lockout_attempts: Some(5),
            ..PolicyChange::default()
        },
    )
    .await;
    let attempts = (0..50).map(|i| {
        let envelope = login_envelope(USER, &format!("wrong-{i}{}", f.token));
        let (http, url) = (srv.http.clone(), format!("{}{SOAP}", srv.base));
        tokio::spawn(async move {
            http.post(url)
                .header("Content-Type", "text/xml")
                .body(envelope)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    });
    for a in attempts.collect::<Vec<_>>() {
        let text = a.await.unwrap();
        assert!(
            text.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
            "{text}"
        );
    }
    let statuses = history_statuses(s, USER).await;
    assert_eq!(statuses.len(), 50);
    let counted = statuses.iter().filter(|s| *s == "Invalid password").count();
    let locked = statuses.iter().filter(|s| *s == "Password lockout").count();
    assert_eq!((counted, locked), (5, 45), "the lock engaged at exactly 5");
    // Locked: the right credentials are refused, and one lockout mail went out.
    let a = login(srv, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    assert_eq!(last_status(s, USER).await, "Password lockout");
    let lock_mails = srv
        .mails()
        .await
        .into_iter()
        .filter(|m| m.to == USER && m.subject.to_lowercase().contains("locked"))
        .count();
    assert_eq!(lock_mails, 1);
    f.srv.finish().await;
}

async fn r_l4_every_refused_path_costs_one_hash(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    office_only_profile(s).await;
    add_user(s, "Acme", "ranged@acme.test", Some("Office Only")).await;
    add_user(s, "Acme", "inactive@acme.test", None).await;
    s.deactivate(&cli(), "inactive@acme.test").await.unwrap();
    add_user(s, "Acme", "locked@acme.test", None).await;
    policy(
        s,
        "Acme",
        PolicyChange {
            lockout_attempts: Some(3),
            ..PolicyChange::default()
        },
    )
    .await;
    for _ in 0..3 {
        login(srv, "locked@acme.test", "wrong").await;
    }
    assert_eq!(last_status(s, "locked@acme.test").await, "Invalid password");
    let secret = format!("{PW}{}", f.token);
    let paths = [
        (
            "unknown user",
            "nobody@acme.test",
            secret.clone(),
            "Invalid login",
        ),
        (
            "malformed username",
            "not a username",
            secret.clone(),
            "Invalid login",
        ),
        (
            "wrong password",
            USER,
            format!("wrong{}", f.token),
            "Invalid password",
        ),
        (
            "no token",
            USER,
            PW.to_string(),
            "Failed: API security token required",
        ),
        (
            "locked",
            "locked@acme.test",
            secret.clone(),
            "Password lockout",
        ),
        (
            "inactive",
            "inactive@acme.test",
            secret.clone(),
            "User is inactive",
        ),
        (
            "restricted IP",
            "ranged@acme.test",
            secret.clone(),
            "Restricted IP",
        ),
        ("success", USER, secret.clone(), "Success"),
    ];
    for (what, user, secret, status) in paths {
        let before = s.hasher.invocations();
        login(srv, user, &secret).await;
        assert_eq!(
            s.hasher.invocations() - before,
            1,
            "{what}: exactly one hash"
        );
        if status != "Invalid login" {
            assert_eq!(last_status(s, user).await, status, "{what}");
        }
    }
    f.srv.finish().await;
}

async fn r_l8_api_disabled_profile(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    s.create_profile(&cli(), "Acme", "UI Only", Permissions::default())
        .await
        .unwrap();
    add_user(s, "Acme", "ui@acme.test", Some("UI Only")).await;
    let t = latest_token(&srv.mails().await, "ui@acme.test");
    let a = login(srv, "ui@acme.test", &format!("{PW}{t}")).await;
    assert_eq!(
        a.xml("faultstring").unwrap(),
        "API_CURRENTLY_DISABLED: API is disabled for this User"
    );
    assert_eq!(
        last_status(s, "ui@acme.test").await,
        "Failed: API access disabled"
    );
    // Checked only after the credentials: a wrong password still gets the generic answer.
    let a = login(srv, "ui@acme.test", "wrong").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    f.srv.finish().await;
}

async fn r_l11_forwarded_for_only_from_trusted_proxies(b: Backend) {
    // Without trusted proxies, X-Forwarded-For is ignored: 127.0.0.1 is the client.
    let f = fixture(b).await;
    let s = f.srv.services();
    s.add_trusted_range(&cli(), "Acme", "10.9.0.0/16", None, "office")
        .await
        .unwrap();
    let spoof = |srv: &TestServer, xff: &str| {
        let r = srv
            .http
            .post(format!("{}{SOAP}", srv.base))
            .header("Content-Type", "text/xml")
            .header("X-Forwarded-For", xff.to_string())
            .body(login_envelope(USER, PW));
        async move { common::server::answer(r.send().await.unwrap()).await }
    };
    let a = spoof(&f.srv, "10.9.1.1").await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN",
        "spoofed header ignored"
    );
    let row = &s
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
        .await
        .unwrap()[0];
    assert_eq!(row.source_ip, "127.0.0.1");
    let env = f.srv.stop().await;
    // 127.0.0.1 is now a trusted proxy: the right-most untrusted entry is the client.
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    let a = spoof(&srv, "203.0.113.5, 10.9.1.1").await;
    assert_eq!(
        a.status, 200,
        "the office address behind the proxy is trusted: {}",
        a.text
    );
    assert_eq!(
        s.login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
            .await
            .unwrap()[0]
            .source_ip,
        "10.9.1.1"
    );
    let a = spoof(&srv, "10.9.1.1, 203.0.113.5").await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    assert_eq!(
        s.login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
            .await
            .unwrap()[0]
            .source_ip,
        "203.0.113.5"
    );
    // A byte that is not UTF-8 in the client's part of the header does not hide the address
    // the proxy appended to it.
    let r = srv
        .http
        .post(format!("{}{SOAP}", srv.base))
        .header("Content-Type", "text/xml")
        .header(
            "X-Forwarded-For",
            reqwest::header::HeaderValue::from_bytes(b"\x80junk, 198.51.100.9").unwrap(),
        )
        .body(login_envelope(USER, PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let row = &s
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
        .await
        .unwrap()[0];
    assert_eq!(row.source_ip, "198.51.100.9");
    srv.finish().await;
}

/// A delegated-authentication endpoint (Salesforce's protocol) that accepts one password and
/// records what it was asked.
async fn sso_endpoint(
    accept: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sso", listener.local_addr().unwrap());
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                let ok = body.contains(&format!("<password>{accept}</password>"));
                log.lock().unwrap().push(body);
                let answer = format!(
                    "<?xml version=\"1.0\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><AuthenticateResult xmlns=\"urn:authentication.soap.sforce.com\"><Authenticated>{ok}</Authenticated></AuthenticateResult></soapenv:Body></soapenv:Envelope>"
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

async fn r_l7_delegated_authentication(b: Backend) {
    // The test's endpoint is plain http on loopback: allowed here, as an operator would.
    let env = common::Env::new_with(b, |s| {
        s.with_delegated_auth(keyward::delegated::DelegatedSettings {
            allow_private_addresses: true,
            allow_http: true,
            ..Default::default()
        })
    })
    .await;
    let f = fixture_on(env).await;
    let srv = &f.srv;
    let s = srv.services();
    s.create_profile(
        &cli(),
        "Acme",
        "SSO",
        Permissions {
            api_enabled: true,
            sso_enabled: true,
            ..Permissions::default()
        },
    )
    .await
    .unwrap();
    add_user(s, "Acme", "sso@acme.test", Some("SSO")).await;
    // No endpoint configured yet: the service counts as down.
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(
        last_status(s, "sso@acme.test").await,
        "Your company's authentication service is down"
    );
    let (url, seen) = sso_endpoint("corp-secret").await;
    s.set_delegated_auth(&cli(), "Acme", Some(&url))
        .await
        .unwrap();
    // Accepted: no token needed from an untrusted address (R-L7), and no local hash.
    let before = s.hasher.invocations();
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.hasher.invocations(), before);
    let asked = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        asked.contains("<Authenticate xmlns=\"urn:authentication.soap.sforce.com\">"),
        "{asked}"
    );
    assert!(asked.contains("<username>sso@acme.test</username>"));
    assert!(asked.contains("<sourceIp>127.0.0.1</sourceIp>"));
    // Rejected: the generic answer, counted as a wrong password.
    let a = login(srv, "sso@acme.test", "not-it").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(last_status(s, "sso@acme.test").await, "Invalid password");
    // Unreachable: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    s.set_delegated_auth(&cli(), "Acme", Some(&format!("http://{closed}/sso")))
        .await
        .unwrap();
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(
        last_status(s, "sso@acme.test").await,
        "Your company's authentication service is down"
    );
    f.srv.finish().await;
}
