//! Orgs in the service layer: default profiles and policy (R-M3), unique names (R-M1), the
//! audit trail (R-M4), and policy changes validated and kept when concurrent.

use super::support::{PW, cli, org, user, user_row};
use crate::common::{Backend, Env};
use crate::on_both;
use keyward::domain::secret::Password;
use keyward::service::orgs::PolicyChange;
use keyward::service::users::NewUser;
use keyward::service::{Actor, ServiceError};

on_both!(
    r_m3_new_org_has_default_profiles_and_policy,
    r_m1_org_names_and_usernames_are_unique,
    r_m4_audit_trail_records_changes_without_secrets,
    policy_changes_are_validated,
    concurrent_policy_changes_are_all_kept,
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
    assert!(api_only.permissions.api_only && api_only.permissions.password_never_expires);
    let o = s.get_org(&cli(), "acme").await.unwrap();
    let p = o.policy;
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
    let p = s.get_org(&cli(), &o).await.unwrap().policy;
    assert_eq!(p.session_seconds, 7200);
    assert_eq!(s.audit_trail(&cli(), &o, 10).await.unwrap().len(), 1);
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
    let p = s.get_org(&cli(), &o).await.unwrap().policy;
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
