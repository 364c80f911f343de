//! Security tokens (R-T4–R-T9): first issue, reset, password changes, deactivation, refused
//! resets, and the token mail waiting in the outbox until delivery (R-E1).

use super::support::{
    PW, UNTRUSTED, cli, contains, login, org, success, user, user_row, user_with_profile,
};
use crate::common::{Backend, Env, latest_token};
use crate::on_both;
use keyward::crypto::{digest, token_digest};
use keyward::domain::login::{LoginOutcome, LoginStatus};
use keyward::domain::profile::Permissions;
use keyward::domain::secret::Password;
use keyward::domain::token::{SecurityToken, looks_like_keyward_token};
use keyward::service::{Actor, ServiceError};
use keyward::test_support::store::users as user_rows;

on_both!(
    r_t7_first_password_issues_and_mails_the_first_token,
    r_t5_token_reset_invalidates_the_old_token_at_once,
    r_t4_a_token_digest_is_never_issued_twice,
    r_t6_admin_password_reset_issues_a_token_and_ends_sessions,
    r_t6_own_password_change_keeps_the_current_session,
    r_t8_deactivation_keeps_the_token,
    r_t9_reset_refused_for_login_range_and_sso_profiles,
    r_e1_mail_waits_in_the_outbox_until_delivery,
    r_t8_logins_in_flight_meet_a_deactivation_that_committed_meanwhile,
);

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
        let mut c = keyward::test_support::db(s).conn().await.unwrap();
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
    let mut tx = keyward::test_support::db(s).begin().await.unwrap();
    // Re-issuing a digest that was ever issued is refused and changes nothing; the
    // transaction stays usable (PostgreSQL aborts a transaction on a failed insert).
    assert!(
        !user_rows::set_token(&mut tx.as_conn(), &o, &id, &current, "test", None, 1)
            .await
            .unwrap()
    );
    assert!(
        user_rows::set_token(
            &mut tx.as_conn(),
            &o,
            &id,
            &digest("fresh"),
            "test",
            None,
            1
        )
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

async fn r_e1_mail_waits_in_the_outbox_until_delivery(b: Backend) {
    let env = Env::new(b).await;
    let s = &env.services;
    let o = org(s, "Acme").await;
    user(s, &o, "ada@example.com", Some(PW)).await;
    s.reset_token(&cli(), "ada@example.com").await.unwrap();
    // Queued, not yet delivered: listed (a mail's view has no field for its token).
    let queued = s.list_mail(Some("ADA@example.com"), 10).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|m| m.status == "queued"));
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
