//! Integration tokens through the services: the mail, the login by digest, independence from
//! the password and the security token, rotation and its grace window, expiry and its
//! reminders, the usage inventory, and the security token's own grace window.

use super::support::{PW, UNTRUSTED, cli, contains, login, login_on, org, success, user};
use crate::common::{Backend, Env, Mail, history_query, latest_token};
use crate::on_both;
use keyward::domain::login::{Channel, LoginOutcome, LoginStatus};
use keyward::domain::policy::PasswordRejected;
use keyward::domain::profile::Permissions;
use keyward::domain::secret::Password;
use keyward::service::orgs::PolicyChange;
use keyward::service::{Actor, ServiceError, Services};
use time::Duration;

on_both!(
    a_created_token_is_mailed_never_stored_and_listed_without_its_value,
    an_integration_token_logs_in_on_soap_and_oauth_without_a_hash,
    password_and_token_changes_leave_integration_tokens_working,
    deactivation_voids_them_and_reactivation_restores_the_live_ones,
    a_wrong_token_counts_against_the_address_never_the_lockout,
    a_rotated_token_works_for_the_grace_window_then_stops,
    an_expired_token_is_refused_with_its_own_status,
    reminders_go_once_each_even_with_two_nodes,
    login_ranges_api_access_and_the_web_ui_still_apply,
    limits_names_and_other_orgs,
    the_previous_security_token_works_for_the_token_grace_window,
);

/// Creates a token for `username` and returns (its id, its value from the delivered mail).
pub(super) async fn create(
    env: &Env,
    username: &str,
    name: &str,
    days: Option<u32>,
) -> (String, String) {
    let info = env
        .services
        .create_integration_token(&cli(), username, name, days)
        .await
        .unwrap();
    (info.id, newest_token(env).await)
}

pub(super) async fn newest_token(env: &Env) -> String {
    env.deliver().await;
    env.mails()
        .iter()
        .rev()
        .find_map(Mail::integration_token)
        .expect("an integration-token mail")
}

pub(super) async fn status_of(s: &Services, username: &str) -> (String, String) {
    let h = s
        .login_history(&cli(), Some("Acme"), &history_query(Some(username), 1))
        .await
        .unwrap();
    (h[0].status.clone(), h[0].credential.clone())
}

pub(super) async fn acme(env: &Env) -> String {
    let o = org(&env.services, "Acme").await;
    user(&env.services, &o, "ada@example.com", Some(PW)).await;
    o
}

async fn a_created_token_is_mailed_never_stored_and_listed_without_its_value(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (id, token) = create(&env, "ada@example.com", "Data Loader nightly", None).await;
    assert!(id.starts_with("0Ik") && id.len() == 18, "{id}");
    assert!(keyward::domain::integration::looks_like_integration_token(
        &token
    ));
    let mail = env.mails().pop().unwrap();
    assert_eq!(
        mail.subject,
        "Your new integration token: Data Loader nightly"
    );
    assert_eq!(mail.to, "ada@example.com");
    // The outbox keeps the mail without the token; the database only its digest.
    let listed = s.list_mail(None, 1).await.unwrap();
    let shown = s.show_mail(&listed[0].id).await.unwrap();
    assert!(
        shown
            .body
            .contains("Integration token (case-sensitive): [redacted]")
    );
    assert!(!contains(&env.db.dump(), token.as_bytes()), "token stored");
    let list = s
        .list_integration_tokens(&cli(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].status.as_str()),
        ("Data Loader nightly", "active")
    );
    assert_eq!(list[0].last_used, None);
    let json = serde_json::to_string(&list).unwrap();
    assert!(!json.contains(&token[4..]), "the value is never listed");
    // 90 days, the org's default maximum.
    let created = time::OffsetDateTime::parse(
        &list[0].created,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        &list[0].expires,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, Duration::days(90));
    env.finish().await;
}

async fn an_integration_token_logs_in_on_soap_and_oauth_without_a_hash(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (id, token) = create(&env, "ada@example.com", "Tableau", None).await;
    let hashes = s.hasher.invocations();
    for channel in [
        Channel::SoapPartner,
        Channel::OAuth,
        Channel::SoapEnterprise,
    ] {
        let r = login_on(s, channel, "ada@example.com", &token, UNTRUSTED).await;
        assert!(success(&r), "{channel:?}: {:?}", r.status);
    }
    assert_eq!(s.hasher.invocations(), hashes, "no password hash ran");
    assert_eq!(
        status_of(s, "ada@example.com").await,
        ("Success".into(), "Integration token: Tableau".into())
    );
    // The usage inventory: one (client, address) pair, three uses; the list shows the last.
    let usage = s.integration_token_usage(&cli(), &id).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (
            usage[0].client.as_str(),
            usage[0].source_ip.as_str(),
            usage[0].uses
        ),
        ("test", UNTRUSTED, 3)
    );
    let list = s
        .list_integration_tokens(&cli(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(list[0].last_address.as_deref(), Some(UNTRUSTED));
    assert!(list[0].last_used.is_some());
    // The security token's inventory is its own: a password+token login lands there.
    let sec = latest_token(&env.mails(), "ada@example.com");
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{sec}"), "198.51.100.4").await
    ));
    assert_eq!(
        status_of(s, "ada@example.com").await.1,
        "Password + security token"
    );
    let sec_usage = s
        .security_token_usage(&cli(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(sec_usage.len(), 1);
    assert_eq!(sec_usage[0].source_ip, "198.51.100.4");
    assert_eq!(
        s.integration_token_usage(&cli(), &id).await.unwrap()[0].uses,
        3
    );
    env.finish().await;
}

async fn password_and_token_changes_leave_integration_tokens_working(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (_, token) = create(&env, "ada@example.com", "ETL", None).await;
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    assert!(success(
        &login(s, "ada@example.com", &token, UNTRUSTED).await
    ));
    s.set_password(&cli(), "ada@example.com", &Password::new("N3w-passw0rd!"))
        .await
        .unwrap();
    assert!(success(
        &login(s, "ada@example.com", &token, UNTRUSTED).await
    ));
    env.finish().await;
}

async fn deactivation_voids_them_and_reactivation_restores_the_live_ones(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (_, kept) = create(&env, "ada@example.com", "kept", None).await;
    let (revoked_id, revoked) = create(&env, "ada@example.com", "revoked", None).await;
    s.deactivate(&cli(), "ada@example.com").await.unwrap();
    let r = login(s, "ada@example.com", &kept, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::InvalidLogin, LoginStatus::UserInactive)
    );
    s.revoke_integration_token(&cli(), &revoked_id)
        .await
        .unwrap();
    s.reactivate(&cli(), "ada@example.com").await.unwrap();
    assert!(success(
        &login(s, "ada@example.com", &kept, UNTRUSTED).await
    ));
    let r = login(s, "ada@example.com", &revoked, UNTRUSTED).await;
    assert_eq!(r.status, LoginStatus::IntegrationTokenInvalid);
    env.finish().await;
}

async fn a_wrong_token_counts_against_the_address_never_the_lockout(b: Backend) {
    let limit = keyward::domain::throttle::AddressLimit {
        failures: 5,
        window: Duration::minutes(15),
        exempt: vec![],
    };
    let env = Env::new_with(b, move |s| s.with_address_limit(limit)).await;
    let s = &env.services;
    acme(&env).await;
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            lockout_attempts: Some(3),
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
    let (_, token) = create(&env, "ada@example.com", "ETL", None).await;
    // Well-formed tokens that are nobody's: each a failure of the address, none of the user.
    let mut rng = rand::thread_rng();
    for _ in 0..3 {
        let wrong = keyward::domain::integration::IntegrationToken::generate(&mut rng);
        let r = login(s, "ada@example.com", wrong.expose(), UNTRUSTED).await;
        assert_eq!(
            (r.outcome, r.status),
            (
                LoginOutcome::InvalidLogin,
                LoginStatus::IntegrationTokenInvalid
            )
        );
    }
    // A mistyped token (its check characters wrong) is a wrong token too, not a password.
    let typo = format!(
        "{}{}",
        &token[..39],
        if token.ends_with('x') { 'y' } else { 'x' }
    );
    let r = login(s, "ada@example.com", &typo, UNTRUSTED).await;
    assert_eq!(r.status, LoginStatus::IntegrationTokenInvalid);
    let row = super::support::user_row(s, "ada@example.com").await;
    assert_eq!(
        (row.failed_logins, row.locked_until),
        (0, None),
        "no lockout"
    );
    // The right token still logs in from another address; the fifth failure closes this one.
    assert!(success(
        &login(s, "ada@example.com", &token, "198.51.100.7").await
    ));
    let wrong = keyward::domain::integration::IntegrationToken::generate(&mut rng);
    login(s, "ada@example.com", wrong.expose(), UNTRUSTED).await;
    let r = login(s, "ada@example.com", &token, UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::AddressLimited);
    // A locked user (wrong passwords) keeps its integrations: the lockout guards the password.
    for _ in 0..3 {
        login(s, "ada@example.com", "wrong-password", "198.51.100.8").await;
    }
    assert!(
        super::support::user_row(s, "ada@example.com")
            .await
            .locked_until
            .is_some()
    );
    assert!(success(
        &login(s, "ada@example.com", &token, "198.51.100.7").await
    ));
    env.finish().await;
}

async fn a_rotated_token_works_for_the_grace_window_then_stops(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (id, old) = create(&env, "ada@example.com", "Data Loader", None).await;
    env.clock.advance(Duration::minutes(1));
    let successor = s.rotate_integration_token(&cli(), &id).await.unwrap();
    let new = newest_token(&env).await;
    assert_ne!(old, new);
    assert_eq!(successor.replaces.as_deref(), Some(id.as_str()));
    let mail = env.mails().pop().unwrap();
    assert_eq!(mail.subject, "Your new integration token: Data Loader");
    assert!(mail.text.contains("keeps working until"), "{}", mail.text);
    assert!(success(&login(s, "ada@example.com", &old, UNTRUSTED).await));
    assert_eq!(
        status_of(s, "ada@example.com").await.1,
        "Integration token: Data Loader (predecessor in grace)"
    );
    assert!(success(&login(s, "ada@example.com", &new, UNTRUSTED).await));
    assert_eq!(
        status_of(s, "ada@example.com").await.1,
        "Integration token: Data Loader"
    );
    // A token in its grace window is not rotated twice.
    assert!(matches!(
        s.rotate_integration_token(&cli(), &id).await,
        Err(ServiceError::Conflict(_))
    ));
    let statuses: Vec<String> = s
        .list_integration_tokens(&cli(), "ada@example.com")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(statuses, ["active", "in grace"]);
    env.clock.advance(Duration::hours(24));
    let r = login(s, "ada@example.com", &old, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (
            LoginOutcome::InvalidLogin,
            LoginStatus::IntegrationTokenInvalid
        )
    );
    assert!(success(&login(s, "ada@example.com", &new, UNTRUSTED).await));
    // A window lengthened afterwards does not bring the old token back.
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            integration_grace_hours: Some(72),
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
    assert!(!success(
        &login(s, "ada@example.com", &old, UNTRUSTED).await
    ));
    // With no grace window, a rotation stops the old token at once.
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            integration_grace_hours: Some(0),
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
    s.rotate_integration_token(&cli(), &successor.id)
        .await
        .unwrap();
    let newest = newest_token(&env).await;
    assert!(!success(
        &login(s, "ada@example.com", &new, UNTRUSTED).await
    ));
    assert!(success(
        &login(s, "ada@example.com", &newest, UNTRUSTED).await
    ));
    env.finish().await;
}

async fn an_expired_token_is_refused_with_its_own_status(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (_, token) = create(&env, "ada@example.com", "short", Some(2)).await;
    env.clock.advance(Duration::days(2) - Duration::seconds(1));
    assert!(success(
        &login(s, "ada@example.com", &token, UNTRUSTED).await
    ));
    env.clock.advance(Duration::seconds(1));
    let r = login(s, "ada@example.com", &token, UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::InvalidLogin);
    assert_eq!(
        status_of(s, "ada@example.com").await,
        (
            "Failed: integration token expired".into(),
            "Integration token: short".into()
        )
    );
    let list = s
        .list_integration_tokens(&cli(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(list[0].status, "expired");
    // Longer than the org allows, or no time at all, is refused and creates nothing.
    for days in [0, 91] {
        assert!(matches!(
            s.create_integration_token(&cli(), "ada@example.com", "long", Some(days))
                .await,
            Err(ServiceError::Invalid(_))
        ));
    }
    assert_eq!(
        s.list_integration_tokens(&cli(), "ada@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    env.finish().await;
}

async fn reminders_go_once_each_even_with_two_nodes(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    create(&env, "ada@example.com", "nightly", Some(20)).await;
    let node_b = env.second_node(|s| s).await;
    let reminders = |env: &Env| {
        env.mails()
            .iter()
            .filter(|m| {
                m.subject
                    .starts_with("Your integration token nightly expires")
            })
            .count()
    };
    let mut sent = Vec::new();
    // Nothing is due until 14 days before; then 14, 3 and 1 day before, each once.
    for (advance, expect) in [(5, 0), (1, 1), (5, 1), (6, 2), (1, 2), (1, 3), (2, 3)] {
        env.clock.advance(Duration::days(advance));
        let (a, b) = tokio::join!(
            s.send_integration_reminders(),
            node_b.send_integration_reminders()
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        sent.push(a + b);
        env.deliver().await;
        assert_eq!(reminders(&env), expect, "after {advance} more days");
    }
    assert_eq!(sent.iter().sum::<usize>(), 3);
    let text = env.mails().last().unwrap().text.clone();
    assert!(text.contains("expires on"), "{text}");
    node_b.close().await;
    env.finish().await;
}

async fn login_ranges_api_access_and_the_web_ui_still_apply(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = acme(&env).await;
    let (_, token) = create(&env, "ada@example.com", "ETL", None).await;
    // The web UI refuses it, as a wrong credential.
    let r = login_on(s, Channel::Ui, "ada@example.com", &token, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (
            LoginOutcome::InvalidLogin,
            LoginStatus::IntegrationTokenNotForUi
        )
    );
    // Another user's name with this token: not this user's token.
    user(s, &o, "bob@example.com", Some(PW)).await;
    let r = login(s, "bob@example.com", &token, UNTRUSTED).await;
    assert_eq!(r.status, LoginStatus::IntegrationTokenInvalid);
    // Profile login IP ranges (R-L1) and API access (R-L8) apply to integration tokens.
    let api = Permissions {
        api_enabled: true,
        ..Permissions::default()
    };
    s.create_profile(&cli(), &o, "Office", api).await.unwrap();
    s.add_login_range(&cli(), &o, "Office", "192.168.0.0/16", None, "HQ")
        .await
        .unwrap();
    super::support::user_with_profile(s, &o, "carol@example.com", Some(PW), Some("Office")).await;
    let (_, carols) = create(&env, "carol@example.com", "ETL", None).await;
    let r = login(s, "carol@example.com", &carols, UNTRUSTED).await;
    assert_eq!(r.status, LoginStatus::RestrictedIp);
    assert!(success(
        &login(s, "carol@example.com", &carols, "192.168.4.5").await
    ));
    s.create_profile(&cli(), &o, "No API", Permissions::default())
        .await
        .unwrap();
    super::support::user_with_profile(s, &o, "dan@example.com", Some(PW), Some("No API")).await;
    let (_, dans) = create(&env, "dan@example.com", "ETL", None).await;
    let r = login(s, "dan@example.com", &dans, UNTRUSTED).await;
    assert_eq!(
        (r.outcome, r.status),
        (LoginOutcome::ApiDisabled, LoginStatus::ApiDisabled)
    );
    // A password may not start like an integration token.
    match s
        .set_password(
            &cli(),
            "ada@example.com",
            &Password::new("kwi_Passw0rd!long"),
        )
        .await
    {
        Err(ServiceError::Invalid(m)) => {
            assert_eq!(m, PasswordRejected::IntegrationTokenPrefix.to_string())
        }
        other => panic!("{other:?}"),
    }
    env.finish().await;
}

async fn limits_names_and_other_orgs(b: Backend) {
    let env = Env::new_with(b, |s| s.with_integration_tokens_per_user(2)).await;
    let s = &env.services;
    let o = acme(&env).await;
    let (first, _) = create(&env, "ada@example.com", "one", None).await;
    assert!(matches!(
        s.create_integration_token(&cli(), "ada@example.com", "ONE", None)
            .await,
        Err(ServiceError::Conflict(_))
    ));
    create(&env, "ada@example.com", "two", None).await;
    assert!(matches!(
        s.create_integration_token(&cli(), "ada@example.com", "three", None)
            .await,
        Err(ServiceError::Refused(_))
    ));
    for bad in ["", "   ", "a\nb", &"x".repeat(81)] {
        assert!(
            s.create_integration_token(&cli(), "ada@example.com", bad, None)
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    // A revoked token frees its place.
    s.revoke_integration_token(&cli(), &first).await.unwrap();
    assert!(matches!(
        s.revoke_integration_token(&cli(), &first).await,
        Err(ServiceError::Conflict(_))
    ));
    create(&env, "ada@example.com", "three", None).await;
    // Users act on their own tokens; another org's admin, or a colleague, sees none.
    let ada_id = s
        .show_user(&cli(), "ada@example.com")
        .await
        .unwrap()
        .user
        .id;
    let ada = Actor::User {
        org_id: o.clone(),
        user_id: ada_id,
        username: "ada@example.com".into(),
        admin: false,
    };
    assert_eq!(
        s.list_integration_tokens(&ada, "ada@example.com")
            .await
            .unwrap()
            .len(),
        3
    );
    let other = org(s, "Other").await;
    let bob_id = user(s, &other, "bob@example.com", Some(PW)).await;
    let outsider = Actor::User {
        org_id: other,
        user_id: bob_id,
        username: "bob@example.com".into(),
        admin: true,
    };
    for r in [
        s.revoke_integration_token(&outsider, &first)
            .await
            .map(|_| ()),
        s.rotate_integration_token(&outsider, &first)
            .await
            .map(|_| ()),
        s.integration_token_usage(&outsider, &first)
            .await
            .map(|_| ()),
        s.list_integration_tokens(&outsider, "ada@example.com")
            .await
            .map(|_| ()),
        s.create_integration_token(&outsider, "ada@example.com", "x", None)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(r, Err(ServiceError::NotFound(_))), "{r:?}");
    }
    // Ids of other objects, and nonsense, name no token.
    for bad in ["005000000000001", "0Ik000000000000", "x", "0Ik\n"] {
        assert!(matches!(
            s.revoke_integration_token(&cli(), bad).await,
            Err(ServiceError::NotFound(_))
        ));
    }
    env.finish().await;
}

async fn the_previous_security_token_works_for_the_token_grace_window(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    env.deliver().await;
    let first = latest_token(&env.mails(), "ada@example.com");
    // The default (0) is Salesforce's behaviour: a reset ends the old token at once.
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    env.deliver().await;
    let second = latest_token(&env.mails(), "ada@example.com");
    let r = login(s, "ada@example.com", &format!("{PW}{first}"), UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            token_grace_hours: Some(2),
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    env.deliver().await;
    let third = latest_token(&env.mails(), "ada@example.com");
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{second}"), UNTRUSTED).await
    ));
    assert_eq!(
        status_of(s, "ada@example.com").await.1,
        "Password + previous security token (grace)"
    );
    // Only the one token before: the first is long gone.
    let r = login(s, "ada@example.com", &format!("{PW}{first}"), UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    env.clock.advance(Duration::hours(2));
    let r = login(s, "ada@example.com", &format!("{PW}{second}"), UNTRUSTED).await;
    assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    assert!(success(
        &login(s, "ada@example.com", &format!("{PW}{third}"), UNTRUSTED).await
    ));
    // A password change ends the previous token at once, grace or not.
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    s.set_password(&cli(), "ada@example.com", &Password::new("N3w-passw0rd!"))
        .await
        .unwrap();
    let r = login(
        s,
        "ada@example.com",
        &format!("N3w-passw0rd!{third}"),
        UNTRUSTED,
    )
    .await;
    assert_eq!(r.outcome, LoginOutcome::MustUseSecurityToken);
    env.finish().await;
}
