//! What attacking integration tokens found, kept found: a success is written only while its
//! token and user are as the decision saw them, a shortened grace window stays short, a name
//! has at most two tokens that log in, and a mangled token is a wrong token, never a password.

use super::integration::{acme, create, newest_token};
use super::support::{PW, UNTRUSTED, cli, login, success};
use crate::common::{Backend, Env, history_query, latest_token};
use crate::on_both;
use keyward::domain::login::LoginStatus;
use keyward::domain::secret::Password;
use keyward::service::orgs::PolicyChange;
use keyward::service::{ServiceError, Services};
use time::Duration;

on_both!(
    the_one_step_success_writes_only_for_a_live_token_and_an_active_user,
    a_session_of_a_revoked_token_is_refused_at_the_check,
    shortened_windows_stay_short_and_a_name_has_two_live_tokens_at_most,
    mangled_tokens_are_wrong_tokens_never_passwords,
);

/// The one-step write of an integration-token success (`store::logins`) checks, in its own
/// statement, what the decision read before it: a token revoked or a user deactivated
/// meanwhile writes nothing, and the login decides again under locks.
async fn the_one_step_success_writes_only_for_a_live_token_and_an_active_user(b: Backend) {
    use keyward::test_support::store::{integration, logins};
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let created = s
        .create_integration_token(&cli(), "ada@example.com", "ETL", None)
        .await
        .unwrap();
    let row = super::support::user_row(s, "ada@example.com").await;
    let id15 = &created.id[..15];
    let now = keyward::clock::ms(s.now());
    let attempt = |n: u32| {
        let (mut session, mut history) = super::support::success_rows(&row, 100 + n, now);
        session.integration_token_id = Some(id15.to_string());
        history.credential = "Integration token: ETL".into();
        (session, history)
    };
    let db = keyward::test_support::db(s);
    let write = |n: u32, profile: String| async move {
        let (session, history) = attempt(n);
        logins::record_integration_success(db, id15, &profile, now, &session, &history)
            .await
            .unwrap()
    };
    let history_rows = || async {
        s.login_history(&cli(), Some("Acme"), &history_query(None, 100))
            .await
            .unwrap()
            .len()
    };
    assert!(write(1, row.profile_id.clone()).await);
    assert_eq!(history_rows().await, 1);
    let usage = s
        .integration_token_usage(&cli(), &created.id)
        .await
        .unwrap();
    assert_eq!((usage.len(), usage[0].uses), (1, 1));
    // Another profile than the decision saw, a deactivated user, a revoked token: nothing.
    assert!(!write(2, "00e000000000000".into()).await);
    s.deactivate(&cli(), "ada@example.com").await.unwrap();
    assert!(!write(3, row.profile_id.clone()).await);
    s.reactivate(&cli(), "ada@example.com").await.unwrap();
    s.revoke_integration_token(&cli(), &created.id)
        .await
        .unwrap();
    assert!(!write(4, row.profile_id.clone()).await);
    assert_eq!(
        history_rows().await,
        1,
        "nothing written by the refused ones"
    );
    let mut c = db.conn().await.unwrap();
    assert!(
        integration::usage(&mut c.as_conn(), &row.org_id, &row.id, id15)
            .await
            .unwrap()[0]
            .uses
            == 1
    );
    drop(c);
    env.finish().await;
}

/// The session check reads the token with the session: a session whose token is revoked is
/// refused even where the revocation did not end it.
async fn a_session_of_a_revoked_token_is_refused_at_the_check(b: Backend) {
    use keyward::test_support::store::integration;
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (id, token) = create(&env, "ada@example.com", "ETL", None).await;
    let session =
        |r: keyward::service::login::LoginResponse| r.session.unwrap().id.expose().to_string();
    let before = session(login(s, "ada@example.com", &token, UNTRUSTED).await);
    let raced = session(login(s, "ada@example.com", &token, UNTRUSTED).await);
    assert!(s.check_session(&before).await.unwrap().is_some());
    // The token revoked without its sessions ended.
    let row = super::support::user_row(s, "ada@example.com").await;
    let db = keyward::test_support::db(s);
    let mut c = db.conn().await.unwrap();
    assert!(
        integration::revoke(&mut c.as_conn(), &row.org_id, &id[..15], 1)
            .await
            .unwrap()
    );
    drop(c);
    assert!(
        s.check_session(&raced).await.unwrap().is_none(),
        "a session of a revoked token is refused"
    );
    env.finish().await;
}

async fn grace(s: &Services, integration: Option<u32>, token: Option<u32>) {
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            integration_grace_hours: integration,
            token_grace_hours: token,
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
}

/// Found by attacking the feature: an incident response that set a grace window to 0 and back
/// brought stopped tokens back; and rotating again and again kept every predecessor alive.
async fn shortened_windows_stay_short_and_a_name_has_two_live_tokens_at_most(b: Backend) {
    let env = Env::new_with(b, |s| s.with_integration_tokens_per_user(2)).await;
    let s = &env.services;
    acme(&env).await;
    // The integration grace window.
    let (id, first) = create(&env, "ada@example.com", "ETL", None).await;
    env.clock.advance(Duration::minutes(1));
    let second_id = s.rotate_integration_token(&cli(), &id).await.unwrap().id;
    let second = newest_token(&env).await;
    assert!(success(
        &login(s, "ada@example.com", &first, UNTRUSTED).await
    ));
    grace(s, Some(0), None).await;
    assert!(!success(
        &login(s, "ada@example.com", &first, UNTRUSTED).await
    ));
    grace(s, Some(24), None).await;
    assert!(!success(
        &login(s, "ada@example.com", &first, UNTRUSTED).await
    ));
    // A rotation of the successor ends the grace of the one before it.
    let (_, other) = create(&env, "ada@example.com", "other", None).await;
    let _ = other;
    // Two tokens that log in (ETL's successor and "other"): the limit of 2 is reached, and a
    // rotation's predecessor in grace counts too.
    env.clock.advance(Duration::minutes(1));
    let third_id = s
        .rotate_integration_token(&cli(), &second_id)
        .await
        .unwrap()
        .id;
    let third = newest_token(&env).await;
    assert!(success(
        &login(s, "ada@example.com", &second, UNTRUSTED).await
    ));
    assert!(matches!(
        s.create_integration_token(&cli(), "ada@example.com", "more", None)
            .await,
        Err(ServiceError::Refused(_))
    ));
    env.clock.advance(Duration::minutes(1));
    s.rotate_integration_token(&cli(), &third_id).await.unwrap();
    let fourth = newest_token(&env).await;
    assert!(!success(
        &login(s, "ada@example.com", &second, UNTRUSTED).await
    ));
    assert!(success(
        &login(s, "ada@example.com", &third, UNTRUSTED).await
    ));
    assert!(success(
        &login(s, "ada@example.com", &fourth, UNTRUSTED).await
    ));

    // The security token's grace window.
    grace(s, None, Some(2)).await;
    env.deliver().await;
    let before = latest_token(&env.mails(), "ada@example.com");
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    let with_before = format!("{PW}{before}");
    assert!(success(
        &login(s, "ada@example.com", &with_before, UNTRUSTED).await
    ));
    grace(s, None, Some(0)).await;
    assert!(!success(
        &login(s, "ada@example.com", &with_before, UNTRUSTED).await
    ));
    grace(s, None, Some(24)).await;
    assert!(!success(
        &login(s, "ada@example.com", &with_before, UNTRUSTED).await
    ));
    env.finish().await;
}

async fn mangled_tokens_are_wrong_tokens_never_passwords(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    acme(&env).await;
    let (_, token) = create(&env, "ada@example.com", "ETL", None).await;
    let sec = latest_token(&env.mails(), "ada@example.com");
    for mangled in [
        token.to_uppercase(),
        format!(" {token}"),
        format!("{token}{sec}"),
        format!("{token}\r"),
        token[..20].to_string(),
    ] {
        let r = login(s, "ada@example.com", &mangled, UNTRUSTED).await;
        assert_eq!(
            r.status,
            LoginStatus::IntegrationTokenInvalid,
            "{mangled:?}"
        );
    }
    let row = super::support::user_row(s, "ada@example.com").await;
    assert_eq!(row.failed_logins, 0, "none counted towards the lockout");
    for password in ["KWI_Passw0rd!long", " kwi_Passw0rd!long"] {
        assert!(
            s.set_password(&cli(), "ada@example.com", &Password::new(password))
                .await
                .is_err(),
            "{password:?}"
        );
    }
    env.finish().await;
}
