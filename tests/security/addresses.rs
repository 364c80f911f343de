//! Source addresses: unknown clients and tokenless passwords count against the address (items
//! 4, 5), a proxy naming no client gives an unknown one (item 7), the hash pool's order.

use super::support::{SOAP, cli};
use crate::common;
use crate::common::browser::PW;
use crate::common::server::{TestServer, login_envelope};
use crate::common::{Backend, oauth_client, org};
use crate::on_both;

on_both!(
    unknown_clients_and_tokenless_passwords_count_against_the_address,
    a_proxy_that_names_no_client_makes_an_unknown_client,
    passwords_without_tokens_earn_no_place_in_the_hash_pool,
);

/// A server whose address limit is 3 failures per 15 minutes, trusting 127.0.0.1 as a proxy so
/// a test can speak from any address.
async fn limited_server(b: Backend) -> TestServer {
    let limit = keyward::domain::throttle::AddressLimit {
        failures: 3,
        window: time::Duration::minutes(15),
        exempt: vec![],
    };
    let env = common::Env::new_with(b, move |s| s.with_address_limit(limit)).await;
    TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await
}

fn token_form(client_id: &str, secret: &str, user: &str, password: &str) -> String {
    common::server::form_body(&[
        ("grant_type", "password"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("username", user),
        ("password", password),
    ])
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Items 4 and 5. Token requests naming an unknown client id, or a client's wrong secret,
/// count against the source address and are refused once it is refused; they write no
/// login-history row on the user they named (the request never reached that user). The right
/// password without its token counts against the address too, never towards the lockout.
async fn unknown_clients_and_tokenless_passwords_count_against_the_address(b: Backend) {
    let srv = limited_server(b).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let user = "ada@acme.test";
    common::create_user(s, "Acme", user, Some(PW), None).await;
    let token = common::latest_token(&srv.mails().await, user);
    let client = oauth_client(s, "Acme", false, None).await;
    let good = format!("{PW}{token}");
    let path = "/services/oauth2/token";

    // Item 4: three unknown client ids naming a real user from one address...
    let guesser = "203.0.113.40";
    for i in 0..3 {
        let body = token_form(&format!("3MVG9guess{i}"), "x", user, &good);
        let a = srv.post_from(guesser, path, FORM, body).await;
        assert_eq!(a.json()["error"], "invalid_client_id", "{}", a.text);
    }
    // ...and it is refused, even with the real client and the right credentials.
    let a = srv
        .post_from(
            guesser,
            path,
            FORM,
            token_form(&client.0, &client.1, user, &good),
        )
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.json()["error_code"], "LOGIN_RATE_EXCEEDED");
    let body = token_form("3MVG9guess9", "x", user, &good);
    assert_eq!(srv.post_from(guesser, path, FORM, body).await.status, 429);
    // A wrong secret of a real client counts too; its row is in the client's org, on no user.
    let other = "203.0.113.41";
    for _ in 0..3 {
        let body = token_form(&client.0, "wrong-secret", user, &good);
        let a = srv.post_from(other, path, FORM, body).await;
        assert_eq!(a.json()["error"], "invalid_client", "{}", a.text);
    }
    let body = token_form(&client.0, &client.1, user, &good);
    assert_eq!(srv.post_from(other, path, FORM, body).await.status, 429);
    // A grant that proves no password cannot tell a refused address its guess was right.
    let cc = oauth_client(s, "Acme", false, Some(user)).await;
    let body = common::server::form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", &cc.0),
        ("client_secret", &cc.1),
    ]);
    let a = srv.post_from(other, path, FORM, body).await;
    assert_eq!(a.status, 429, "{}", a.text);
    // Introspection's wrong client secrets are guesses too; the refused address is told so.
    let spy = "203.0.113.42";
    let introspect = |secret: &str| {
        common::server::form_body(&[
            ("client_id", &cc.0),
            ("client_secret", secret),
            ("token", "x"),
        ])
    };
    for _ in 0..3 {
        let a = srv
            .post_from(spy, "/services/oauth2/introspect", FORM, introspect("nope"))
            .await;
        assert_eq!(a.status, 401, "{}", a.text);
    }
    let a = srv
        .post_from(spy, "/services/oauth2/introspect", FORM, introspect("nope"))
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    let mine = s
        .login_history(&cli(), None, &crate::common::history_query(Some(user), 100))
        .await
        .unwrap();
    assert!(mine.is_empty(), "rows on the named user: {mine:?}");
    let org_rows = s
        .login_history(
            &cli(),
            Some("Acme"),
            &crate::common::history_query(None, 100),
        )
        .await
        .unwrap();
    assert_eq!(org_rows.len(), 3, "the wrong secrets, in the client's org");
    assert!(
        org_rows
            .iter()
            .all(|r| r.user_id.is_none() && r.source_ip == other)
    );
    let all = s
        .login_history(&cli(), None, &crate::common::history_query(None, 100))
        .await
        .unwrap();
    assert_eq!(
        all.iter().filter(|r| r.source_ip == guesser).count(),
        3,
        "the unknown clients, in no org"
    );

    // Item 5: the right password without its token, three times, and the address is refused.
    let holder = "198.51.100.9";
    for _ in 0..3 {
        let a = srv
            .post_from(holder, SOAP, "text/xml", login_envelope(user, PW))
            .await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN")
        );
    }
    let a = srv
        .post_from(holder, SOAP, "text/xml", login_envelope(user, &good))
        .await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("LOGIN_RATE_EXCEEDED"),
        "{}",
        a.text
    );
    let shown = s.show_user(&cli(), user).await.unwrap();
    assert_eq!(
        shown.user.failed_logins, 0,
        "never towards the user's lockout"
    );
    assert!(shown.user.locked_until.is_none());
    // Another address logs in.
    let a = srv
        .post_from(
            "198.51.100.10",
            SOAP,
            "text/xml",
            login_envelope(user, &good),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    srv.finish().await;
}

/// Item 7. A request from a trusted proxy that does not say who the client is — no
/// `X-Forwarded-For`, an empty or unreadable one — is from an unknown address, inside no
/// trusted or login range: not from the proxy, which the org may trust.
async fn a_proxy_that_names_no_client_makes_an_unknown_client(b: Backend) {
    let env = common::Env::new(b).await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    let acme = org(s, "Acme").await; // trusts 127.0.0.0/8: the proxy's own address
    let envelope = login_envelope(&acme.user, PW);
    let post = |xff: Option<&'static [u8]>| {
        let mut r = srv
            .http
            .post(format!("{}{SOAP}", srv.base))
            .header("Content-Type", "text/xml")
            .body(envelope.clone());
        if let Some(v) = xff {
            r = r.header(
                "X-Forwarded-For",
                reqwest::header::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        async move { common::server::answer(r.send().await.unwrap()).await }
    };
    // Through the proxy, from inside the trusted range: the password alone is enough.
    assert_eq!(post(Some(b"127.0.0.9")).await.status, 200);
    for xff in [
        None,
        Some(&b""[..]),
        Some(&b"junk"[..]),
        Some(&b"127.0.0.9, \x80junk"[..]),
    ] {
        let a = post(xff).await;
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN"),
            "{xff:?}: {}",
            a.text
        );
        let row = &s
            .login_history(
                &cli(),
                None,
                &crate::common::history_query(Some(&acme.user), 1),
            )
            .await
            .unwrap()[0];
        assert_eq!(row.source_ip, "::", "{xff:?}");
    }
    // A profile's login IP range holding the proxy's address does not let it in either (R-L1).
    s.add_login_range(
        &cli(),
        "Acme",
        "Standard User",
        "127.0.0.0/8",
        None,
        "proxy",
    )
    .await
    .unwrap();
    let token = common::latest_token(&srv.mails().await, &acme.user);
    let with_token = login_envelope(&acme.user, &format!("{PW}{token}"));
    let r = srv
        .http
        .post(format!("{}{SOAP}", srv.base))
        .header("Content-Type", "text/xml")
        .body(with_token)
        .send()
        .await
        .unwrap();
    let a = common::server::answer(r).await;
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("INVALID_LOGIN"),
        "{}",
        a.text
    );
    let row = &s
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some(&acme.user), 1),
        )
        .await
        .unwrap()[0];
    assert_eq!(row.status, "Restricted IP");
    srv.finish().await;
}

/// Item 5, in the hash pool: right passwords sent without their token earn the address no
/// place at the front. An address that sent several waits, with one more, behind an address
/// never seen before — where, earning credit as proofs of a password, it went first.
async fn passwords_without_tokens_earn_no_place_in_the_hash_pool(b: Backend) {
    // One hashing thread, and hashes slow enough (~100 ms) that the order they run in is the
    // order the logins answer in.
    let env = common::Env::new_with(b, |mut s| {
        let slow = keyward::crypto::HashParams {
            memory_kib: 8192,
            iterations: 24,
            parallelism: 1,
        };
        s.hasher = std::sync::Arc::new(keyward::crypto::Hasher::new(slow, 1).unwrap());
        s
    })
    .await;
    let srv = std::sync::Arc::new(
        TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await,
    );
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    common::create_user(s, "Acme", "ada@acme.test", Some(PW), None).await;
    common::create_user(s, "Acme", "bob@acme.test", Some(PW), None).await;
    let mails = srv.mails().await;
    let bob = format!("{PW}{}", common::latest_token(&mails, "bob@acme.test"));
    let holder = "203.0.113.50";
    let send = |ip: &'static str, user: &'static str, secret: String| {
        let srv = srv.clone();
        tokio::spawn(async move {
            let a = srv
                .post_from(ip, SOAP, "text/xml", login_envelope(user, &secret))
                .await;
            (a, std::time::Instant::now())
        })
    };
    for _ in 0..6 {
        let (a, _) = send(holder, "ada@acme.test", PW.into()).await.unwrap();
        assert_eq!(
            a.xml("exceptionCode").as_deref(),
            Some("LOGIN_MUST_USE_SECURITY_TOKEN")
        );
    }
    let held = s.hasher.hold_place().await.unwrap();
    let again = send(holder, "ada@acme.test", PW.into());
    let start = std::time::Instant::now();
    while s.hasher.queue_depth() < 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let fresh = send("198.51.100.77", "bob@acme.test", bob);
    while s.hasher.queue_depth() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(held);
    let (a, held_back) = again.await.unwrap();
    let (f, went_first) = fresh.await.unwrap();
    assert_eq!(f.status, 200, "{}", f.text);
    assert_eq!(
        a.xml("exceptionCode").as_deref(),
        Some("LOGIN_MUST_USE_SECURITY_TOKEN")
    );
    assert!(
        went_first < held_back,
        "the address that sent passwords without tokens went ahead of a fresh one"
    );
    std::sync::Arc::into_inner(srv).unwrap().finish().await;
}
