//! The store and service suite: every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, Env, latest_token};
use keyward::crypto::{digest, token_digest};
use keyward::domain::login::{Channel, LoginOutcome, LoginStatus};
use keyward::domain::profile::Permissions;
use keyward::domain::secret::Password;
use keyward::domain::token::{SecurityToken, SuppliedSecret, looks_like_keyward_token};
use keyward::service::login::{LoginRequest, LoginResponse};
use keyward::service::orgs::PolicyChange;
use keyward::service::users::NewUser;
use keyward::service::{Actor, ServiceError, Services};
use keyward::store::users as user_rows;
use std::net::IpAddr;
use time::Duration;

const PW: &str = "Passw0rd!one";
const UNTRUSTED: &str = "203.0.113.9";

fn cli() -> Actor {
    Actor::Cli("test".into())
}

async fn org(s: &Services, name: &str) -> String {
    s.create_org(&cli(), name).await.unwrap().id
}

async fn user(s: &Services, org: &str, username: &str, pw: Option<&str>) -> String {
    user_with_profile(s, org, username, pw, None).await
}

async fn user_with_profile(
    s: &Services,
    org: &str,
    username: &str,
    pw: Option<&str>,
    profile: Option<&str>,
) -> String {
    common::create_user(s, org, username, pw, profile).await
}

async fn login(s: &Services, username: &str, secret: &str, ip: &str) -> LoginResponse {
    login_on(s, Channel::SoapPartner, username, secret, ip).await
}

async fn login_on(
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

fn success(r: &LoginResponse) -> bool {
    matches!(r.outcome, LoginOutcome::Success { .. }) && r.session.is_some()
}

async fn user_row(s: &Services, username: &str) -> user_rows::UserRow {
    let mut c = s.db.conn().await.unwrap();
    user_rows::find_by_username(&mut c.as_conn(), username)
        .await
        .unwrap()
        .unwrap()
}

on_both!(
    r_m3_new_org_has_default_profiles_and_policy,
    r_m1_org_names_and_usernames_are_unique,
    r_t7_first_password_issues_and_mails_the_first_token,
    r_t5_token_reset_invalidates_the_old_token_at_once,
    r_t4_a_token_digest_is_never_issued_twice,
    r_t6_admin_password_reset_issues_a_token_and_ends_sessions,
    r_t6_own_password_change_keeps_the_current_session,
    r_t8_deactivation_keeps_the_token,
    r_t9_reset_refused_for_login_range_and_sso_profiles,
    r_l2_r_l3_token_rules_and_trusted_ranges,
    r_l1_login_ranges_restrict_whatever_the_credentials,
    r_l4_every_failure_path_costs_one_hash,
    r_l5_lockout_at_the_limit_then_expiry_and_unlock,
    r_l5_parallel_failures_lock_at_exactly_the_limit,
    r_l6_expired_password_logs_in_flagged,
    r_l8_api_permissions,
    r_l9_every_attempt_is_in_login_history,
    r_m4_audit_trail_records_changes_without_secrets,
    r_e1_mail_waits_in_the_outbox_until_delivery,
    policy_changes_are_validated,
    r_l10_sessions_are_opaque_digested_and_timed,
    r_l5_logins_in_flight_meet_a_lock_that_engaged_meanwhile,
    concurrent_policy_changes_are_all_kept,
    r_t8_logins_in_flight_meet_a_deactivation_that_committed_meanwhile,
    password_hashes_are_upgraded_on_the_next_login,
    a_success_is_written_in_one_step_only_on_the_row_the_decision_saw,
    a_login_reads_its_address_row_and_its_user_in_one_statement,
);

async fn r_m3_new_org_has_default_profiles_and_policy(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let id = org(s, "Acme").await;
    let profiles = s.list_profiles(&cli(), &id).await.unwrap();
    let names: Vec<_> = profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "API Only Integration",
            "Standard User",
            "System Administrator"
        ]
    );
    let api_only = &profiles[0];
    assert!(api_only.api_only && api_only.password_never_expires);
    let o = s.get_org(&cli(), "acme").await.unwrap();
    let p = keyward::service::orgs::policy_of(&o);
    assert_eq!(p, keyward::domain::policy::OrgPolicy::default());
    assert!(
        s.list_trusted_ranges(&cli(), "Acme")
            .await
            .unwrap()
            .is_empty()
    );
    env.finish().await;
}

async fn r_m1_org_names_and_usernames_are_unique(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let a = org(s, "Acme").await;
    let other = org(s, "Globex").await;
    assert!(matches!(
        s.create_org(&cli(), "ACME").await,
        Err(ServiceError::Conflict(_))
    ));
    user(s, &a, "ada@example.com", None).await;
    // Usernames are unique across all orgs, whatever the case.
    let err = s
        .create_user(
            &cli(),
            &NewUser {
                org: &other,
                username: "Ada@Example.com",
                email: "x@example.com",
                first_name: "",
                last_name: "",
                profile: None,
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already taken"), "{err}");
    assert!(s.list_users(&cli(), &other).await.unwrap().is_empty());
    // An admin of one org sees nothing of another.
    let ada = user_row(s, "ada@example.com").await;
    let outsider = Actor::User {
        org_id: other.clone(),
        user_id: "005000000000001".into(),
        username: "mallory@globex.com".into(),
        admin: true,
    };
    assert!(matches!(
        s.show_user(&outsider, &ada.id).await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        s.reset_token(&outsider, "ada@example.com").await,
        Err(ServiceError::NotFound(_))
    ));
    env.finish().await;
}

async fn r_t7_first_password_issues_and_mails_the_first_token(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "nopw@example.com", None).await;
    assert!(user_row(s, "nopw@example.com").await.token_digest.is_none());
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let mails = env.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Your new security token");
    let token = latest_token(&mails, "ada@example.com");
    assert!(looks_like_keyward_token(&token));
    // R-T3: only the digest is stored.
    let row = user_row(s, "ada@example.com").await;
    assert_eq!(
        row.token_digest.as_deref(),
        Some(token_digest(&SecurityToken::parse(&token).unwrap()).as_str())
    );
    // The delivered mail's secret is gone from the outbox; `mail show` never had it.
    let listed = s.list_mail(None, 10).await.unwrap();
    assert_eq!(listed[0].status, "sent");
    let shown = s.show_mail(&listed[0].id).await.unwrap();
    assert!(!shown.body.contains(&token));
    assert!(
        shown
            .body
            .contains("Security token (case-sensitive): [redacted]")
    );
    let dump = env.db.dump();
    assert!(!contains(&dump, token.as_bytes()), "token in the database");
    assert!(!contains(&dump, PW.as_bytes()), "password in the database");
    env.finish().await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn r_t5_token_reset_invalidates_the_old_token_at_once(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let old = latest_token(&env.mails(), "ada@example.com");
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{old}"), UNTRUSTED).await
    ));

    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    env.deliver().await;
    let mails = env.mails();
    assert_eq!(mails.len(), 2);
    let new = latest_token(&mails, "ada@example.com");
    assert_ne!(old, new);
    let r = login(s, "ada@example.com", &format!("{PW}{old}"), UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{new}"), UNTRUSTED).await
    ));
    let row = user_row(s, "ada@example.com").await;
    {
        let mut c = s.db.conn().await.unwrap();
        assert_eq!(
            user_rows::token_count(&mut c.as_conn(), &o, &row.id)
                .await
                .unwrap(),
            2
        );
    }
    // R-T5 self-service: the user resets their own token; the mail and the audit trail say so.
    let me = Actor::User {
        org_id: o.clone(),
        user_id: row.id.clone(),
        username: "ada@example.com".into(),
        admin: false,
    };
    s.reset_token(&me, "ada@example.com").await.unwrap();
    env.deliver().await;
    let mails = env.mails();
    let last = mails.last().unwrap();
    assert!(
        last.text.contains("you reset your security token"),
        "{}",
        last.text
    );
    let third = latest_token(&mails, "ada@example.com");
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{third}"), UNTRUSTED).await
    ));
    let trail = s.audit_trail(&cli(), &o, 1).await.unwrap();
    assert_eq!(trail[0].actor, "ada@example.com");
    assert!(
        trail[0].display.starts_with("Reset own security token"),
        "{}",
        trail[0].display
    );
    env.finish().await;
}

async fn r_t4_a_token_digest_is_never_issued_twice(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    let id = user(s, &o, "ada@example.com", Some(PW)).await;
    let current = user_row(s, "ada@example.com").await.token_digest.unwrap();
    let mut tx = s.db.begin().await.unwrap();
    // Re-issuing a digest that was ever issued is refused and changes nothing; the
    // transaction stays usable (PostgreSQL aborts a transaction on a failed insert).
    assert!(
        !user_rows::set_token(&mut tx.as_conn(), &o, &id, &current, "test", 1)
            .await
            .unwrap()
    );
    assert!(
        user_rows::set_token(&mut tx.as_conn(), &o, &id, &digest("fresh"), "test", 1)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        user_row(s, "ada@example.com").await.token_digest.unwrap(),
        digest("fresh")
    );
    env.finish().await;
}

async fn r_t6_admin_password_reset_issues_a_token_and_ends_sessions(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t1 = latest_token(&env.mails(), "ada@example.com");
    let r = login(s, "ada@example.com", &format!("{PW}{t1}"), UNTRUSTED).await;
    assert!(success(&r));
    assert_eq!(
        s.show_user(&cli(), "ada@example.com")
            .await
            .unwrap()
            .active_sessions,
        1
    );

    s.set_password(&cli(), "ada@example.com", &Password::new("N3wPassword"))
        .await
        .unwrap();
    env.deliver().await;
    let mails = env.mails();
    let subjects: Vec<_> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.contains(&"Your password was changed"),
        "{subjects:?}"
    );
    let t2 = latest_token(&mails, "ada@example.com");
    assert_ne!(t1, t2);
    // R-L10: an admin reset ends every session.
    assert_eq!(
        s.show_user(&cli(), "ada@example.com")
            .await
            .unwrap()
            .active_sessions,
        0
    );
    assert!(!success(
        &login(s, "ada@example.com", &format!("{PW}{t2}"), UNTRUSTED).await
    ));
    assert!(success(
        &login(s, "ada@example.com", &format!("N3wPassword{t2}"), UNTRUSTED).await
    ));
    // History: the last 3 passwords cannot come back.
    let err = s
        .set_password(&cli(), "ada@example.com", &Password::new(PW))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("used recently"), "{err}");
    // Policy: a weak password is refused with the reason, and nothing changes.
    let before = env.mails().len();
    let err = s
        .set_password(&cli(), "ada@example.com", &Password::new("short"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
    env.deliver().await;
    assert_eq!(env.mails().len(), before);
    env.finish().await;
}

async fn r_t6_own_password_change_keeps_the_current_session(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    let id = user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t1 = latest_token(&env.mails(), "ada@example.com");
    let a = login(s, "ada@example.com", &format!("{PW}{t1}"), UNTRUSTED).await;
    let _b = login(s, "ada@example.com", &format!("{PW}{t1}"), UNTRUSTED).await;
    let me = Actor::User {
        org_id: o.clone(),
        user_id: id.clone(),
        username: "ada@example.com".into(),
        admin: false,
    };
    let keep = a.session.as_ref().unwrap().id.digest();
    let wrong = s
        .change_own_password(
            &me,
            &Password::new("nope"),
            &Password::new("Another1pw"),
            Some(&keep),
        )
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("current password is wrong"));
    s.change_own_password(
        &me,
        &Password::new(PW),
        &Password::new("Another1pw"),
        Some(&keep),
    )
    .await
    .unwrap();
    assert_eq!(s.show_user(&cli(), &id).await.unwrap().active_sessions, 1);
    env.deliver().await;
    let t2 = latest_token(&env.mails(), "ada@example.com");
    assert_ne!(t1, t2);
    assert!(success(
        &login(s, "ada@example.com", &format!("Another1pw{t2}"), UNTRUSTED).await
    ));
    env.finish().await;
}

async fn r_t8_deactivation_keeps_the_token(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    let secret = format!("{PW}{t}");
    assert!(success(
        &login(s, "ada@example.com", &secret, UNTRUSTED).await
    ));
    let digest_before = user_row(s, "ada@example.com").await.token_digest;

    assert!(s.deactivate(&cli(), "ada@example.com").await.unwrap());
    assert!(!s.deactivate(&cli(), "ada@example.com").await.unwrap());
    let view = s.show_user(&cli(), "ada@example.com").await.unwrap();
    assert_eq!(view.active_sessions, 0);
    let r = login(s, "ada@example.com", &secret, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::InvalidLogin, LoginStatus::UserInactive)
    );

    assert!(s.reactivate(&cli(), "ada@example.com").await.unwrap());
    assert_eq!(
        user_row(s, "ada@example.com").await.token_digest,
        digest_before
    );
    assert!(success(
        &login(s, "ada@example.com", &secret, UNTRUSTED).await
    ));
    env.finish().await;
}

async fn r_t9_reset_refused_for_login_range_and_sso_profiles(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    s.create_profile(
        &cli(),
        &o,
        "Office",
        Permissions {
            api_enabled: true,
            ..Permissions::default()
        },
    )
    .await
    .unwrap();
    s.create_profile(
        &cli(),
        &o,
        "SSO",
        Permissions {
            api_enabled: true,
            sso_enabled: true,
            ..Permissions::default()
        },
    )
    .await
    .unwrap();
    s.add_login_range(&cli(), &o, "Office", "192.168.0.0/16", None, "HQ")
        .await
        .unwrap();
    user_with_profile(s, &o, "office@example.com", Some(PW), Some("Office")).await;
    user_with_profile(s, &o, "sso@example.com", Some(PW), Some("SSO")).await;
    user(s, &o, "nopw@example.com", None).await;
    env.deliver().await;
    let mails_before = env.mails().len();
    for (u, why) in [
        ("office@example.com", "login IP ranges"),
        ("sso@example.com", "single sign-on"),
        ("nopw@example.com", "no password yet"),
    ] {
        let err = s.reset_token(&cli(), u).await.unwrap_err();
        assert!(matches!(err, ServiceError::Refused(_)), "{u}");
        assert!(err.to_string().contains(why), "{u}: {err}");
    }
    env.deliver().await;
    assert_eq!(env.mails().len(), mails_before, "a refused reset sent mail");
    env.finish().await;
}

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

async fn r_l5_lockout_at_the_limit_then_expiry_and_unlock(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    let good = format!("{PW}{t}");
    // A success resets the counter.
    for _ in 0..9 {
        login(s, "ada@example.com", "wrong1234", UNTRUSTED).await;
    }
    assert!(success(
        &login(s, "ada@example.com", &good, UNTRUSTED).await
    ));
    for _ in 0..9 {
        login(s, "ada@example.com", "wrong1234", UNTRUSTED).await;
    }
    assert!(!s.show_user(&cli(), "ada@example.com").await.unwrap().locked);
    let r = login(s, "ada@example.com", "wrong1234", UNTRUSTED).await;
    assert_eq!(r.status, LoginStatus::InvalidPassword);
    assert!(s.show_user(&cli(), "ada@example.com").await.unwrap().locked);
    // Locked: even the right credentials fail, generically.
    let r = login(s, "ada@example.com", &good, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::InvalidLogin, LoginStatus::PasswordLockout)
    );
    env.deliver().await;
    assert!(
        env.mails()
            .iter()
            .any(|m| m.subject == "Your account is locked")
    );
    // The lock ends after lockout_minutes (15).
    env.clock.advance(Duration::minutes(14));
    assert!(!success(
        &login(s, "ada@example.com", &good, UNTRUSTED).await
    ));
    env.clock.advance(Duration::minutes(1));
    assert!(success(
        &login(s, "ada@example.com", &good, UNTRUSTED).await
    ));
    // lockout_minutes = 0: locked until an admin unlocks.
    s.set_policy(
        &cli(),
        &o,
        &PolicyChange {
            lockout_minutes: Some(0),
            lockout_attempts: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        login(s, "ada@example.com", "wrong1234", UNTRUSTED).await;
    }
    env.clock.advance(Duration::days(365));
    assert!(!success(
        &login(s, "ada@example.com", &good, UNTRUSTED).await
    ));
    assert!(s.unlock(&cli(), "ada@example.com").await.unwrap());
    assert!(!s.unlock(&cli(), "ada@example.com").await.unwrap());
    assert!(success(
        &login(s, "ada@example.com", &good, UNTRUSTED).await
    ));
    // A correct password without the token never counts towards a lockout.
    for _ in 0..5 {
        let r = login(s, "ada@example.com", PW, UNTRUSTED).await;
        assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    }
    assert_eq!(user_row(s, "ada@example.com").await.failed_logins, 0);
    env.finish().await;
}

async fn r_l5_parallel_failures_lock_at_exactly_the_limit(b: Backend) {
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    user(&s, &o, "ada@example.com", Some(PW)).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            login(&s, "ada@example.com", "wrong1234", UNTRUSTED)
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let counted = statuses
        .iter()
        .filter(|st| **st == LoginStatus::InvalidPassword)
        .count();
    let refused = statuses
        .iter()
        .filter(|st| **st == LoginStatus::PasswordLockout)
        .count();
    // Exactly lockout_attempts (10) failures counted; every later one met the lock.
    assert_eq!((counted, refused), (10, 40), "{statuses:?}");
    assert!(s.show_user(&cli(), "ada@example.com").await.unwrap().locked);
    env.deliver().await;
    let locks = env
        .mails()
        .iter()
        .filter(|m| m.subject == "Your account is locked")
        .count();
    assert_eq!(locks, 1);
    let history = s
        .login_history(&cli(), Some("Acme"), None, 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 50);
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
    let h = s.login_history(&cli(), None, None, 10).await.unwrap();
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
        .login_history(&cli(), None, Some("ada@example.com"), 10)
        .await
        .unwrap();
    assert_eq!(ada.len(), 3);
    let acme = s
        .login_history(&cli(), Some("Acme"), None, 10)
        .await
        .unwrap();
    assert_eq!(acme.len(), 3);
    let one = s.login_history(&cli(), None, None, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    env.finish().await;
}

async fn r_m4_audit_trail_records_changes_without_secrets(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    s.set_password(&cli(), "ada@example.com", &Password::new("S3condPassword"))
        .await
        .unwrap();
    s.deactivate(&cli(), "ada@example.com").await.unwrap();
    s.reactivate(&cli(), "ada@example.com").await.unwrap();
    s.add_trusted_range(&cli(), &o, "10.0.0.0/8", None, "office")
        .await
        .unwrap();
    s.set_policy(
        &cli(),
        &o,
        &PolicyChange {
            lockout_attempts: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let trail = s.audit_trail(&cli(), &o, 100).await.unwrap();
    let actions: Vec<_> = trail.iter().rev().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "org.created",
            "user.created",
            "password.set",
            "token.reset",
            "password.reset",
            "user.deactivated",
            "user.reactivated",
            "trusted_ip_range.added",
            "policy.changed",
        ]
    );
    assert!(trail.iter().all(|a| a.actor == "cli:test"));
    assert!(
        trail[0]
            .display
            .contains("maximum invalid login attempts 10 → 5"),
        "{}",
        trail[0].display
    );
    env.deliver().await;
    for m in env.mails() {
        if let Some(t) = m.token() {
            assert!(trail.iter().all(|a| !a.display.contains(&t)));
        }
    }
    assert!(
        trail
            .iter()
            .all(|a| !a.display.contains(PW) && !a.display.contains("S3condPassword"))
    );
    env.finish().await;
}

async fn r_e1_mail_waits_in_the_outbox_until_delivery(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    // Queued, not yet delivered: listed, with its token kept out of every view.
    let queued = s.list_mail(Some("ADA@example.com"), 10).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|m| m.status == "queued" && m.secret.is_none())
    );
    assert!(env.mails().is_empty());
    env.deliver().await;
    let mails = env.mails();
    assert_eq!(mails.len(), 2);
    // Files sort oldest first: the last one carries the current token.
    let current = user_row(s, "ada@example.com").await.token_digest.unwrap();
    let last = mails[1].token().unwrap();
    assert_eq!(token_digest(&SecurityToken::parse(&last).unwrap()), current);
    let sent = s.list_mail(None, 10).await.unwrap();
    assert!(
        sent.iter()
            .all(|m| m.status == "sent" && m.sent_at.is_some())
    );
    env.finish().await;
}

async fn policy_changes_are_validated(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    let err = s
        .set_policy(
            &cli(),
            &o,
            &PolicyChange {
                session_seconds: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("session-seconds"), "{err}");
    let err = s
        .set_policy(&cli(), &o, &PolicyChange::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to change"));
    let p = keyward::service::orgs::policy_of(&s.get_org(&cli(), &o).await.unwrap());
    assert_eq!(p.session_seconds, 7200);
    assert_eq!(s.audit_trail(&cli(), &o, 10).await.unwrap().len(), 1);
    env.finish().await;
}

#[test]
fn migrations_have_the_same_versions_on_both_backends() {
    let versions = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let sqlite = versions("migrations/sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, versions("migrations/postgres"));
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
    stronger.db.close().await;
    env.finish().await;
}

async fn r_l5_logins_in_flight_meet_a_lock_that_engaged_meanwhile(b: Backend) {
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    user(&s, &o, "ada@example.com", Some(PW)).await;
    // 200 attempts at once; a few carry the right password (without the token), which
    // answers LOGIN_MUST_USE_SECURITY_TOKEN — a password oracle, unless the user is locked.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        let secret = if i % 40 == 39 {
            PW.to_string()
        } else {
            format!("wrong{i}xx")
        };
        tasks.push(tokio::spawn(async move {
            login(&s, "ada@example.com", &secret, UNTRUSTED)
                .await
                .status
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // History is written in the order the decisions were taken, under the user's lock.
    let mut history = s
        .login_history(&cli(), Some("Acme"), None, 1000)
        .await
        .unwrap();
    history.reverse();
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    let tenth = statuses
        .iter()
        .enumerate()
        .filter(|(_, st)| **st == "Invalid password")
        .map(|(i, _)| i)
        .nth(9)
        .expect("ten counted failures");
    assert_eq!(
        statuses
            .iter()
            .filter(|st| **st == "Invalid password")
            .count(),
        10
    );
    assert!(
        statuses[tenth + 1..]
            .iter()
            .all(|st| *st == "Password lockout"),
        "after the lock engaged: {:?}",
        &statuses[tenth + 1..]
    );
    env.finish().await;
}

async fn r_t8_logins_in_flight_meet_a_deactivation_that_committed_meanwhile(b: Backend) {
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    user(&s, &o, "ada@example.com", Some(PW)).await;
    env.deliver().await;
    let t = latest_token(&env.mails(), "ada@example.com");
    for _ in 0..20 {
        let s2 = s.clone();
        let secret = format!("{PW}{t}");
        let attempt =
            tokio::spawn(async move { login(&s2, "ada@example.com", &secret, UNTRUSTED).await });
        tokio::task::yield_now().await;
        s.deactivate(&cli(), "ada@example.com").await.unwrap();
        let r = attempt.await.unwrap();
        let view = s.show_user(&cli(), "ada@example.com").await.unwrap();
        // Either the login came first (and its session was ended by the deactivation), or it
        // met the deactivation: never an inactive user with a live session.
        assert_eq!(view.active_sessions, 0, "outcome {:?}", r.outcome);
        s.reactivate(&cli(), "ada@example.com").await.unwrap();
    }
    env.finish().await;
}

async fn concurrent_policy_changes_are_all_kept(b: Backend) {
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    let changes = [
        PolicyChange {
            lockout_attempts: Some(5),
            ..Default::default()
        },
        PolicyChange {
            lockout_minutes: Some(30),
            ..Default::default()
        },
        PolicyChange {
            password_expiry_days: Some(180),
            ..Default::default()
        },
        PolicyChange {
            session_seconds: Some(900),
            ..Default::default()
        },
        PolicyChange {
            min_password_length: Some(12),
            ..Default::default()
        },
        PolicyChange {
            password_history: Some(5),
            ..Default::default()
        },
    ];
    let tasks: Vec<_> = changes
        .into_iter()
        .map(|c| {
            let s = s.clone();
            let o = o.clone();
            tokio::spawn(async move { s.set_policy(&cli(), &o, &c).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let p = keyward::service::orgs::policy_of(&s.get_org(&cli(), &o).await.unwrap());
    assert_eq!(
        (
            p.lockout_attempts,
            p.lockout_minutes,
            p.password_expiry_days,
            p.session_seconds,
            p.min_password_length,
            p.password_history
        ),
        (5, 30, 180, 900, 12, 5)
    );
    assert_eq!(s.audit_trail(&cli(), &o, 100).await.unwrap().len(), 7);
    env.finish().await;
}

/// `users::find_for_login`: the source address's failed-login row and the user with its org,
/// profile and both kinds of range, in one statement — whether or not either exists.
async fn a_login_reads_its_address_row_and_its_user_in_one_statement(b: Backend) {
    use keyward::store::address_failures;
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    let other = org(&s, "Other").await;
    let api = Permissions {
        api_enabled: true,
        ..Permissions::default()
    };
    s.create_profile(&cli(), &o, "Office", api).await.unwrap();
    s.add_login_range(&cli(), &o, "Office", "192.168.0.0/16", None, "HQ")
        .await
        .unwrap();
    s.add_trusted_range(&cli(), "Acme", "10.0.0.1", Some("10.0.0.9"), "lab")
        .await
        .unwrap();
    s.add_trusted_range(&cli(), "Other", "10.9.0.0", Some("10.9.0.9"), "not Acme's")
        .await
        .unwrap();
    user_with_profile(&s, &o, "office@example.com", Some(PW), Some("Office")).await;
    user(&s, &other, "plain@example.com", Some(PW)).await;
    let mut c = s.db.conn().await.unwrap();
    for _ in 0..3 {
        address_failures::record_failure(&mut c.as_conn(), "203.0.113.9", 5_000, 0)
            .await
            .unwrap();
    }
    // Given back now: `finish` waits for every connection to come back to the pool.
    drop(c);
    let find = |user: &'static str, address: Option<&'static str>| {
        let db = s.db.clone();
        async move {
            let mut c = db.conn().await.unwrap();
            user_rows::find_for_login(&mut c.as_conn(), user, address)
                .await
                .unwrap()
        }
    };
    let l = find("office@example.com", Some("203.0.113.9")).await;
    assert_eq!(l.address_window, Some((5_000, 3)));
    let found = l.user.expect("the user");
    assert_eq!(found.user.username, "office@example.com");
    assert_eq!(found.org.name, "Acme");
    assert_eq!(found.profile.name, "Office");
    let mut ranges: Vec<_> = found
        .ranges
        .iter()
        .map(|r| (r.start_ip.as_str(), r.profile_id.is_some()))
        .collect();
    ranges.sort();
    assert_eq!(ranges, [("10.0.0.1", false), ("192.168.0.0", true)]);
    // No range of its own, another org's not read; an address with no row.
    let l = find("plain@example.com", Some("198.51.100.7")).await;
    assert_eq!(l.address_window, None);
    let found = l.user.expect("the user");
    assert_eq!(found.org.name, "Other");
    assert_eq!(
        found
            .ranges
            .iter()
            .map(|r| r.start_ip.as_str())
            .collect::<Vec<_>>(),
        ["10.9.0.0"]
    );
    // No user: the address's row all the same; an exempt address (no key) reads none.
    let l = find("nobody@example.com", Some("203.0.113.9")).await;
    assert_eq!(
        (l.address_window, l.user.is_none()),
        (Some((5_000, 3)), true)
    );
    let l = find("office@example.com", None).await;
    assert_eq!((l.address_window, l.user.is_some()), (None, true));
    env.finish().await;
}

/// `store::logins`: a success's writes (counter reset, session, history row) happen in one
/// step only while the user's row is as the decision read it; after any change that matters,
/// nothing is written and the caller decides again under the lock (R-L5, R-T5, R-T8).
async fn a_success_is_written_in_one_step_only_on_the_row_the_decision_saw(b: Backend) {
    use keyward::store::login_history::LoginHistoryRow;
    use keyward::store::logins::record_success_if_unchanged;
    use keyward::store::sessions::{SessionRow, get_live_with_user};
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    user(&s, &o, "ada@example.com", Some(PW)).await;
    let now = keyward::clock::ms(s.now());
    let attempt = |n: u32, seen: &user_rows::UserRow| {
        let session = SessionRow {
            digest: digest(&format!("session {n}")),
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
        };
        let history = LoginHistoryRow {
            id: format!("0Ya00000000000{n}"),
            org_id: Some(seen.org_id.clone()),
            user_id: Some(seen.id.clone()),
            login_at: now,
            source_ip: UNTRUSTED.into(),
            login_type: "SOAP Partner".into(),
            status: "Success".into(),
            client: "test".into(),
            api_version: "59.0".into(),
            login_url: "http://127.0.0.1/".into(),
        };
        (session, history)
    };
    let written = |digest: String| {
        let s = s.clone();
        async move {
            let mut c = s.db.conn().await.unwrap();
            let live = get_live_with_user(&mut c.as_conn(), &digest, now)
                .await
                .unwrap();
            let history = s
                .login_history(&cli(), Some("Acme"), None, 100)
                .await
                .unwrap();
            (live.is_some(), history.len())
        }
    };
    // A failure counted meanwhile (a parallel attempt), a token reset, a deactivation, a
    // password reset: each changes what the decision read, and the one-step write refuses.
    let changes: Vec<(&str, user_rows::UserRow)> = {
        let mut v = Vec::new();
        let seen = user_row(&s, "ada@example.com").await;
        login(&s, "ada@example.com", "wrong-password", UNTRUSTED).await;
        v.push(("a failure counted", seen));
        let seen = user_row(&s, "ada@example.com").await;
        s.reset_token(&cli(), "ada@example.com").await.unwrap();
        v.push(("a token reset", seen));
        let seen = user_row(&s, "ada@example.com").await;
        s.deactivate(&cli(), "ada@example.com").await.unwrap();
        s.reactivate(&cli(), "ada@example.com").await.unwrap();
        v.push(("a deactivation and reactivation", seen));
        let seen = user_row(&s, "ada@example.com").await;
        s.set_password(
            &cli(),
            "ada@example.com",
            &Password::new("Another-Passw0rd"),
        )
        .await
        .unwrap();
        v.push(("a password reset", seen));
        v
    };
    // A failure on the row as it is now, so that a refused write would have a counter to reset.
    login(&s, "ada@example.com", "wrong-again", UNTRUSTED).await;
    let (_, history_before) = written(String::new()).await;
    let row_before = user_row(&s, "ada@example.com").await;
    assert!(row_before.failed_logins >= 1);
    for (n, (what, seen)) in changes.iter().enumerate() {
        let (session, history) = attempt(n as u32, seen);
        let ok = record_success_if_unchanged(&s.db, seen, now, &session, &history)
            .await
            .unwrap();
        assert!(!ok, "after {what}");
        assert_eq!(
            written(session.digest.clone()).await,
            (false, history_before),
            "after {what}: nothing written"
        );
    }
    let row = user_row(&s, "ada@example.com").await;
    assert_eq!(
        (row.failed_logins, row.last_login_at),
        (row_before.failed_logins, row_before.last_login_at),
        "the refused writes reset no counter"
    );
    // A write that fails part-way (the session's digest already taken) leaves nothing behind,
    // not even the counter reset it made first, and the next call finds a usable connection.
    let seen = user_row(&s, "ada@example.com").await;
    let (mut taken, _) = attempt(7, &seen);
    taken.digest = digest("taken");
    keyward::store::sessions::insert(&mut s.db.conn().await.unwrap().as_conn(), &taken)
        .await
        .unwrap();
    let (mut session, history) = attempt(8, &seen);
    session.digest = taken.digest.clone();
    for _ in 0..3 {
        // Each time the same refusal: no call meets a transaction left open by the one before.
        let refused = record_success_if_unchanged(&s.db, &seen, now, &session, &history).await;
        assert!(
            matches!(refused, Err(keyward::store::StoreError::Conflict(_))),
            "{refused:?}"
        );
    }
    let row = user_row(&s, "ada@example.com").await;
    assert_eq!(row.failed_logins, row_before.failed_logins, "rolled back");
    assert_eq!(written(digest("none")).await.1, history_before);
    // On the row as it is now, all three writes happen together.
    let seen = user_row(&s, "ada@example.com").await;
    let (session, history) = attempt(9, &seen);
    assert!(
        record_success_if_unchanged(&s.db, &seen, now, &session, &history)
            .await
            .unwrap()
    );
    assert_eq!(
        written(session.digest.clone()).await,
        (true, history_before + 1)
    );
    let after = user_row(&s, "ada@example.com").await;
    assert_eq!((after.failed_logins, after.last_login_at), (0, Some(now)));
    env.finish().await;
}
