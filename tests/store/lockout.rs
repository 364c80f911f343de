//! Lockout (R-L5): at the limit, its expiry and unlock, under parallel failures, and for logins
//! in flight when it engages.

use super::support::{PW, UNTRUSTED, cli, login, org, success, user, user_row};
use crate::common::{Backend, Env, latest_token};
use crate::on_both;
use keyward::domain::login::{LoginOutcome, LoginStatus};
use keyward::service::orgs::PolicyChange;
use time::Duration;

on_both!(
    r_l5_lockout_at_the_limit_then_expiry_and_unlock,
    r_l5_parallel_failures_lock_at_exactly_the_limit,
    r_l5_logins_in_flight_meet_a_lock_that_engaged_meanwhile,
);

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
        .login_history(
            &cli(),
            Some("Acme"),
            &crate::common::history_query(None, 100),
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 50);
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
        .login_history(
            &cli(),
            Some("Acme"),
            &crate::common::history_query(None, 1000),
        )
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
