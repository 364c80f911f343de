//! Issue 5: the per-address failed-login limit on every interface and node, and the hash
//! pool's bounded waiting room under a flood.

use super::support::{PW, SOAP, TOKEN, USER, add_user, cli, history_statuses};
use crate::common;
use crate::common::server::{Answer, TestServer, login_envelope};
use crate::common::{Backend, latest_token, oauth_client};
use crate::on_both;
use keyward::domain::secret::Password;
use keyward::service::Actor;
use time::Duration;

on_both!(
    address_limit_refuses_a_guessing_address_before_any_hash_on_every_node,
    a_flood_from_some_addresses_does_not_refuse_or_starve_another,
);

/// A request from `ip`, as the trusted proxy 127.0.0.1 forwards it.
async fn from_ip(
    srv: &TestServer,
    ip: &str,
    path: &str,
    content_type: &str,
    body: String,
) -> Answer {
    srv.post_from(ip, path, content_type, body).await
}

async fn soap_from(srv: &TestServer, ip: &str, user: &str, secret: &str) -> Answer {
    from_ip(srv, ip, SOAP, "text/xml", login_envelope(user, secret)).await
}

async fn grant_from(
    srv: &TestServer,
    ip: &str,
    client: &(String, String),
    user: &str,
    pw: &str,
) -> Answer {
    let body = common::server::form_body(&[
        ("grant_type", "password"),
        ("client_id", &client.0),
        ("client_secret", &client.1),
        ("username", user),
        ("password", pw),
    ]);
    from_ip(srv, ip, TOKEN, "application/x-www-form-urlencoded", body).await
}

/// Issue 5: a per-address limit on failed logins, shared by every node through the database.
/// Failures that proved no password count (wrong password, unknown user), and since issue 14 a
/// right password without its token (never towards the user's lockout). From the limit on, the
/// address is refused before anything is looked up — no hash, no login-history row, no lockout
/// count — on SOAP, OAuth and every node, while other addresses log in; it ends with its window or
/// the operator's `clear`.
async fn address_limit_refuses_a_guessing_address_before_any_hash_on_every_node(b: Backend) {
    use keyward::domain::throttle::AddressLimit;
    let limit = AddressLimit {
        failures: 3,
        window: Duration::minutes(15),
        exempt: vec![keyward::domain::ip::IpRange::parse("192.0.2.0/24", None).unwrap()],
    };
    let env = common::Env::new_with(b, {
        let limit = limit.clone();
        move |s| s.with_address_limit(limit)
    })
    .await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    add_user(s, "Acme", USER, None).await;
    let token = latest_token(&srv.mails().await, USER);
    let good = format!("{PW}{token}");
    let client = oauth_client(s, "Acme", false, None).await;
    let guesser = "203.0.113.66";

    // Three failures: the right password without the token (it counts against the address,
    // not towards the user's lockout), a wrong password (SOAP), an unknown user (OAuth).
    let a = soap_from(&srv, guesser, USER, PW).await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    let a = soap_from(&srv, guesser, USER, "wrong-password").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    let a = grant_from(&srv, guesser, &client, "nobody@acme.test", "guess").await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        s.metrics.addresses_limited(),
        1,
        "the third failure engaged the limit"
    );

    // Now even the right credentials are refused, before any hash.
    let hashes = s.hasher.invocations();
    let history = history_statuses(s, USER).await.len();
    let a = soap_from(&srv, guesser, USER, &good).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.xml("exceptionCode").unwrap(), "LOGIN_RATE_EXCEEDED");
    assert_eq!(a.xml("faultcode").unwrap(), "sf:LOGIN_RATE_EXCEEDED");
    assert_eq!(
        a.header("retry-after"),
        "900",
        "the window started with the first guess"
    );
    let a = grant_from(&srv, guesser, &client, USER, &good).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(a.json()["error_code"], "LOGIN_RATE_EXCEEDED");
    assert_eq!(a.header("retry-after"), "900");
    // jsforce and simple-salesforce read the SOAP fault's exceptionCode and message.
    assert_eq!(
        s.hasher.invocations(),
        hashes,
        "no hash work for a refused address"
    );
    assert_eq!(
        history_statuses(s, USER).await.len(),
        history,
        "no login-history rows"
    );
    let user = s.show_user(&cli(), USER).await.unwrap();
    assert_eq!(
        user.user.failed_logins, 1,
        "only the wrong password counts towards the user's lockout"
    );

    // Other addresses are not affected, nor an exempt one (an office NAT).
    for ip in ["198.51.100.7", "192.0.2.10"] {
        let a = soap_from(&srv, ip, USER, &good).await;
        assert_eq!(a.status, 200, "{ip}: {}", a.text);
    }
    // IPv6 addresses count per /64: another address of a refused /64 is refused too.
    for _ in 0..3 {
        soap_from(&srv, "2001:db8:5:6::1", USER, "wrong-password").await;
    }
    let a = soap_from(&srv, "2001:db8:5:6:aaaa::2", USER, &good).await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "LOGIN_RATE_EXCEEDED");
    let a = soap_from(&srv, "2001:db8:5:7::1", USER, &good).await;
    assert_eq!(a.status, 200, "another /64: {}", a.text);

    // A burst sent all at once cannot pass the check before its failures are counted: of 30
    // parallel guesses, exactly the limit are hashed and counted, the rest refused.
    let burst = "203.0.113.77";
    let hashes = s.hasher.invocations();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let services = srv.env.services.clone();
            tokio::spawn(async move {
                let req = keyward::service::login::LoginRequest::new(
                    format!("guess{i}@acme.test"),
                    keyward::domain::token::SuppliedSecret::split(&Password::new("guess")),
                    keyward::domain::login::Channel::SoapPartner,
                    burst.parse().unwrap(),
                );
                services.login_detached(req).await.unwrap().outcome
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        if t.await.unwrap() == keyward::domain::login::LoginOutcome::AddressLimited {
            refused += 1;
        }
    }
    // The check may over-count when an attempt ends while another reads the count, never
    // under-count: at most the limit are hashed, and each hashed one is counted.
    let hashed = s.hasher.invocations() - hashes;
    assert!((1..=3).contains(&hashed), "{hashed} of the burst hashed");
    assert_eq!(refused, 30 - hashed);
    let counted = s.limited_addresses(&cli(), 1).await.unwrap();
    let counted = counted.iter().find(|a| a.address == burst).unwrap();
    assert_eq!(counted.failures, hashed as i64);
    // One at a time the count is exact: the address gets the rest of its limit, no more.
    for i in 0.. {
        let a = soap_from(&srv, burst, &format!("late{i}@acme.test"), "guess").await;
        if a.xml("exceptionCode").as_deref() == Some("LOGIN_RATE_EXCEEDED") {
            break;
        }
        assert!(i < 3, "more than the limit hashed");
    }
    assert_eq!(s.hasher.invocations() - hashes, 3);
    assert_eq!(s.address_in_flight(burst.parse().unwrap()), 0);

    // A second node over the same database refuses the address too.
    let node_b = srv
        .env
        .second_node(|s| s.with_address_limit(limit.clone()))
        .await;
    let req = |ip: &str| {
        keyward::service::login::LoginRequest::new(
            USER,
            keyward::domain::token::SuppliedSecret::split(&Password::new(good.clone())),
            keyward::domain::login::Channel::SoapPartner,
            ip.parse().unwrap(),
        )
    };
    let limited = keyward::domain::login::LoginOutcome::AddressLimited;
    assert_eq!(node_b.login(req(guesser)).await.unwrap().outcome, limited);

    // The operator sees it (an admin of an org does not: the limit is the deployment's) …
    let listed = s.limited_addresses(&cli(), 0).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|a| a.address.as_str()).collect();
    // Most failures first, then by address.
    assert_eq!(names, ["2001:db8:5:6::/64", guesser, burst]);
    assert_eq!(listed[1].failures, 3);
    assert!(listed[1].refused_until.is_some());
    let admin = Actor::User {
        org_id: user.user.org_id.clone(),
        user_id: user.user.id.clone(),
        username: USER.into(),
        admin: true,
    };
    assert!(s.limited_addresses(&admin, 0).await.is_err());
    assert!(s.clear_address(&admin, guesser).await.is_err());
    // … and clears it: the address logs in at once.
    assert!(s.clear_address(&cli(), "not-an-address").await.is_err());
    assert_eq!(s.clear_address(&cli(), guesser).await.unwrap(), guesser);
    let a = soap_from(&srv, guesser, USER, &good).await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Otherwise the window ends by itself.
    srv.env.clock.advance(Duration::minutes(14));
    let r = node_b.login(req("2001:db8:5:6::9")).await.unwrap();
    assert_eq!(r.outcome, limited);
    srv.env.clock.advance(Duration::minutes(1));
    let a = soap_from(&srv, "2001:db8:5:6::1", USER, &good).await;
    assert_eq!(a.status, 200, "the window ended: {}", a.text);
    // Housekeeping removes the ended windows; the cleared address had no row left.
    assert_eq!(s.purge_address_failures().await.unwrap(), 2);
    assert!(s.limited_addresses(&cli(), 1).await.unwrap().is_empty());
    node_b.close().await;
    srv.finish().await;
}

/// Issue 5: the hash pool's waiting room is bounded, and a full room turns away the address
/// asking the most of it. The test holds the pool's one place, so the room (four) fills
/// deterministically: a flood of 120 unknown-user logins from three addresses gets 116
/// immediate 503s and four waiters; a login from a fourth address then takes a flood waiter's
/// place instead of being refused, and logs in once the pool is free.
async fn a_flood_from_some_addresses_does_not_refuse_or_starve_another(b: Backend) {
    let env = common::Env::new_with(b, |mut s| {
        s.hasher = std::sync::Arc::new(
            keyward::crypto::Hasher::new(common::cheap_hash(), 1)
                .unwrap()
                .with_max_queue(4),
        );
        s
    })
    .await;
    let srv = std::sync::Arc::new(
        TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await,
    );
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    add_user(s, "Acme", USER, None).await;
    let good = format!("{PW}{}", latest_token(&srv.mails().await, USER));

    let held = s.hasher.hold_place().await.unwrap();
    let flood: Vec<_> = (0..120)
        .map(|i| {
            let srv = srv.clone();
            tokio::spawn(async move {
                let ip = format!("203.0.113.{}", 1 + i % 3);
                let a = soap_from(&srv, &ip, &format!("nobody{i}@acme.test"), "guess").await;
                (a.status, a.xml("faultcode").unwrap_or_default())
            })
        })
        .collect();
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    until("the flood fills the room", || {
        s.hasher.queue_depth() == 4 && s.hasher.refusals() == 116
    })
    .await;
    let good_login = {
        let srv = srv.clone();
        tokio::spawn(async move { soap_from(&srv, "198.51.100.20", USER, &good).await })
    };
    until("the good login takes a flood waiter's place", || {
        s.hasher.refusals() == 117
    })
    .await;
    assert_eq!(s.hasher.queue_depth(), 4);
    drop(held);
    let a = good_login.await.unwrap();
    assert_eq!(a.status, 200, "the good address was refused: {}", a.text);
    let (mut busy, mut refused) = (0, 0);
    for t in flood {
        match t.await.unwrap() {
            (500, code) if code == "sf:INVALID_LOGIN" => refused += 1,
            (503, code) if code == "sf:SERVER_UNAVAILABLE" => busy += 1,
            other => panic!("unexpected answer to the flood: {other:?}"),
        }
    }
    assert_eq!((busy, refused), (117, 3));
    assert_eq!(s.hasher.queue_depth(), 0);
    std::sync::Arc::into_inner(srv).unwrap().finish().await;
}
