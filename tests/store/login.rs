//! Login decisions (R-L1–R-L4, R-L6, R-L8–R-L10): token rules and ranges, equal hash work,
//! expiry, API permission, login history, sessions, and hash upgrades.

use super::support::{
    PW, UNTRUSTED, cli, contains, login, login_on, org, success, user, user_row, user_with_profile,
};
use crate::common::{Backend, Env, latest_token};
use crate::on_both;
use keyward::crypto::digest;
use keyward::domain::login::{Channel, LoginOutcome, LoginStatus};
use keyward::domain::profile::Permissions;
use keyward::service::Services;
use keyward::service::orgs::PolicyChange;
use time::Duration;

on_both!(
    r_l2_r_l3_token_rules_and_trusted_ranges,
    r_l1_login_ranges_restrict_whatever_the_credentials,
    r_l4_every_failure_path_costs_one_hash,
    r_l6_expired_password_logs_in_flagged,
    r_l8_api_permissions,
    r_l9_every_attempt_is_in_login_history,
    r_l10_sessions_are_opaque_digested_and_timed,
    password_hashes_are_upgraded_on_the_next_login,
);

async fn r_l2_r_l3_token_rules_and_trusted_ranges(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    // R-L3: from an untrusted address the token is required.
    let r = login(s, "ada@example.com", PW, "127.0.0.1").await;
    assert_eq!(
        (r.outcome, r.status),
        (
            LoginOutcome::MustUseSecurityToken,
            LoginStatus::SecurityTokenRequired
        )
    );
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{t}"), "127.0.0.1").await
    ));
    // The token is case-sensitive and must follow the password with no space.
    let r = login(
        s,
        "ada@example.com",
        &format!("{PW}{}", t.to_lowercase()),
        "127.0.0.1",
    )
    .await;
    assert!(!success(&r));
    let r = login(s, "ada@example.com", &format!("{PW} {t}"), "127.0.0.1").await;
    assert_eq!(r.status, LoginStatus::InvalidPassword);
    // R-L2: once 127.0.0.1 is trusted the password alone is enough; with the token too.
    let range = s
        .add_trusted_range(&cli(), "Acme", "127.0.0.1", Some("127.0.0.1"), "loopback")
        .await
        .unwrap();
    assert!(success(&login(s, "ada@example.com", PW, "127.0.0.1").await));
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{t}"), "127.0.0.1").await
    ));
    assert!(!success(
        &login(s, "ada@example.com", PW, "127.0.0.2").await
    ));
    s.remove_trusted_range(&cli(), "Acme", &range.id)
        .await
        .unwrap();
    assert!(!success(
        &login(s, "ada@example.com", PW, "127.0.0.1").await
    ));
    // CIDR and IPv6 ranges.
    s.add_trusted_range(&cli(), "Acme", "2001:db8::/48", None, "")
        .await
        .unwrap();
    assert!(success(
        &login(s, "ada@example.com", PW, "2001:db8::7").await
    ));
    env.finish().await;
}

async fn r_l1_login_ranges_restrict_whatever_the_credentials(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    s.add_login_range(
        &cli(),
        &o,
        "Standard User",
        "10.0.0.0",
        Some("10.0.0.255"),
        "",
    )
    .await
    .unwrap();
    let r = login(s, "ada@example.com", &format!("{PW}{t}"), "127.0.0.1").await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::InvalidLogin, LoginStatus::RestrictedIp)
    );
    assert!(success(&login(s, "ada@example.com", PW, "10.0.0.9").await));
    env.finish().await;
}

async fn r_l4_every_failure_path_costs_one_hash(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    user(s, &o, "gone@example.com", Some(PW)).await;
    user(s, &o, "locked@example.com", Some(PW)).await;
    s.deactivate(&cli(), "gone@example.com").await.unwrap();
    s.set_policy(
        &cli(),
        &o,
        &PolicyChange {
            lockout_attempts: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        login(s, "locked@example.com", "wrong1234", UNTRUSTED).await;
    }
    let cases = [
        ("nobody@example.com", PW, LoginStatus::InvalidLogin),
        ("not even a username", PW, LoginStatus::InvalidLogin),
        ("ada@example.com", "wrong1234", LoginStatus::InvalidPassword),
        ("gone@example.com", PW, LoginStatus::UserInactive),
        ("locked@example.com", PW, LoginStatus::PasswordLockout),
    ];
    for (u, pw, status) in cases {
        let before = s.hasher.invocations();
        let r = login(s, u, pw, UNTRUSTED).await;
        assert_eq!(r.outcome, LoginOutcome::InvalidLogin, "{u}");
        assert_eq!(r.status, status, "{u}");
        assert_eq!(s.hasher.invocations() - before, 1, "hash work for {u}");
    }
    env.finish().await;
}

async fn r_l6_expired_password_logs_in_flagged(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    user_with_profile(
        s,
        &o,
        "bot@example.com",
        Some(PW),
        Some("API Only Integration"),
    )
    .await;
    env.deliver().await;
    let mails = env.mails();
    let t = latest_token(&mails, "ada@example.com");
    let tb = latest_token(&mails, "bot@example.com");
    env.clock.advance(Duration::days(90));
    let r = login(s, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await;
    assert_eq!(
        r.outcome,
        LoginOutcome::Success {
            password_expired: true
        }
    );
    assert!(r.session.as_ref().unwrap().password_expired);
    // "Password never expires" profiles are exempt.
    let r = login(s, "bot@example.com", &format!("{PW}{tb}"), UNTRUSTED).await;
    assert_eq!(
        r.outcome,
        LoginOutcome::Success {
            password_expired: false
        }
    );
    env.finish().await;
}

async fn r_l8_api_permissions(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    s.create_profile(&cli(), &o, "UI only", Permissions::default())
        .await
        .unwrap();
    user_with_profile(s, &o, "ui@example.com", Some(PW), Some("UI only")).await;
    user_with_profile(
        s,
        &o,
        "bot@example.com",
        Some(PW),
        Some("API Only Integration"),
    )
    .await;
    s.add_trusted_range(&cli(), &o, "127.0.0.0/8", None, "")
        .await
        .unwrap();
    let r = login(s, "ui@example.com", PW, "127.0.0.1").await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::ApiDisabled, LoginStatus::ApiDisabled)
    );
    let r = login_on(s, Channel::Ui, "bot@example.com", PW, "127.0.0.1").await;
    assert_eq!(r.outcome, LoginOutcome::ApiOnlyUser);
    assert!(success(&login(s, "bot@example.com", PW, "127.0.0.1").await));
    assert!(success(
        &login_on(s, Channel::Ui, "ui@example.com", PW, "127.0.0.1").await
    ));
    env.finish().await;
}

async fn r_l9_every_attempt_is_in_login_history(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    login_on(
        s,
        Channel::OAuth,
        "ada@example.com",
        &format!("{PW}{t}"),
        UNTRUSTED,
    )
    .await;
    login_on(s, Channel::SoapEnterprise, "ada@example.com", PW, UNTRUSTED).await;
    login(s, "ada@example.com", "wrong1234", UNTRUSTED).await;
    login(s, "nobody@example.com", "x", UNTRUSTED).await;
    let h = s
        .login_history(&cli(), None, &crate::common::history_query(None, 10))
        .await
        .unwrap();
    let rows: Vec<_> = h
        .iter()
        .map(|r| {
            (
                r.login_type.as_str(),
                r.status.as_str(),
                r.username.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("SOAP Partner", "Invalid login", None),
            ("SOAP Partner", "Invalid password", Some("ada@example.com")),
            (
                "SOAP Enterprise",
                "Failed: API security token required",
                Some("ada@example.com")
            ),
            ("Remote Access 2.0", "Success", Some("ada@example.com")),
        ]
    );
    assert!(
        h.iter()
            .all(|r| r.source_ip == UNTRUSTED && r.client == "test" && r.api_version == "59.0")
    );
    // Filters: by user, and an org's history excludes unknown usernames.
    let ada = s
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some("ada@example.com"), 10),
        )
        .await
        .unwrap();
    assert_eq!(ada.len(), 3);
    let acme = s
        .login_history(
            &cli(),
            Some("Acme"),
            &crate::common::history_query(None, 10),
        )
        .await
        .unwrap();
    assert_eq!(acme.len(), 3);
    let one = s
        .login_history(&cli(), None, &crate::common::history_query(None, 1))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    env.finish().await;
}

async fn r_l10_sessions_are_opaque_digested_and_timed(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    s.set_policy(
        &cli(),
        &o,
        &PolicyChange {
            session_seconds: Some(3600),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    let r = login(s, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await;
    let session = r.session.unwrap();
    let id = session.id.expose().to_string();
    // <15-character org id>!<at least 128 random bits in base62>
    let (prefix, random) = id.split_once('!').unwrap();
    assert_eq!(prefix, o);
    assert!(
        random.len() >= 22 && random.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(format!("{:?}", session.id), "***");
    assert_eq!(session.seconds_valid, 3600);
    let other = login(s, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await;
    assert_ne!(other.session.unwrap().id.expose(), id);
    assert_eq!(
        s.show_user(&cli(), "ada@example.com")
            .await
            .unwrap()
            .active_sessions,
        2
    );
    env.clock.advance(Duration::seconds(3600));
    assert_eq!(
        s.show_user(&cli(), "ada@example.com")
            .await
            .unwrap()
            .active_sessions,
        0
    );
    // Only the digest is stored.
    let dump = env.db.dump();
    assert!(
        !contains(&dump, id.as_bytes()),
        "session id stored in clear"
    );
    assert!(
        contains(&dump, digest(&id).as_bytes()),
        "session digest not stored"
    );
    env.finish().await;
}

async fn password_hashes_are_upgraded_on_the_next_login(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    assert!(
        user_row(s, "ada@example.com")
            .await
            .password_hash
            .unwrap()
            .contains("m=256,")
    );
    // The same database under a configuration with a higher cost (docs/rules.md, Non-functional).
    let stronger = {
        let store = env.db.open().await;
        let hasher = keyward::crypto::Hasher::new(
            keyward::crypto::HashParams {
                memory_kib: 512,
                iterations: 2,
                parallelism: 1,
            },
            2,
        )
        .unwrap();
        Services::new(
            store,
            std::sync::Arc::new(hasher),
            env.clock.clone(),
            s.outbox.clone(),
        )
    };
    // A failed login changes nothing; a successful one re-hashes with the new parameters.
    login(&stronger, "ada@example.com", "wrong1234", UNTRUSTED).await;
    assert!(
        user_row(s, "ada@example.com")
            .await
            .password_hash
            .unwrap()
            .contains("m=256,")
    );
    assert!(success(
        &login(&stronger, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await
    ));
    let upgraded = user_row(s, "ada@example.com").await.password_hash.unwrap();
    assert!(upgraded.contains("m=512,t=2,p=1"), "{upgraded}");
    // ... and the password still works, under either configuration.
    assert!(success(
        &login(&stronger, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await
    ));
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{t}"), UNTRUSTED).await
    ));
    stronger.close().await;
    env.finish().await;
}
