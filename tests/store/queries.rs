//! The store's statements: the same migrations on both backends, a login's one read, and a
//! success written in one step only on the row the decision saw.

use super::support::{
    PW, UNTRUSTED, cli, login, org, success_rows, user, user_row, user_with_profile,
};
use crate::common::{Backend, Env};
use crate::on_both;
use keyward::crypto::digest;
use keyward::domain::profile::Permissions;
use keyward::domain::secret::Password;
use keyward::test_support::store::users as user_rows;

on_both!(
    a_success_is_written_in_one_step_only_on_the_row_the_decision_saw,
    a_login_reads_its_address_row_and_its_user_in_one_statement,
);

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

/// `users::find_for_login`: the source address's failed-login row and the user with its org,
/// profile and both kinds of range, in one statement — whether or not either exists.
async fn a_login_reads_its_address_row_and_its_user_in_one_statement(b: Backend) {
    use keyward::test_support::store::address_failures;
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
    let mut c = keyward::test_support::db(&s).conn().await.unwrap();
    for _ in 0..3 {
        address_failures::record_failure(&mut c.as_conn(), "203.0.113.9", 5_000, 0)
            .await
            .unwrap();
    }
    // Given back now: `finish` waits for every connection to come back to the pool.
    drop(c);
    let find = |user: &'static str, address: Option<&'static str>| {
        let db = keyward::test_support::db(&s).clone();
        async move {
            let mut c = db.conn().await.unwrap();
            user_rows::find_for_login(&mut c.as_conn(), user, address, None)
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
    use keyward::test_support::store::logins::record_success_if_unchanged;
    use keyward::test_support::store::sessions::get_live_with_user;
    let env = Env::new(b).await;
    let s = env.services.clone();
    let o = org(&s, "Acme").await;
    user(&s, &o, "ada@example.com", Some(PW)).await;
    let now = keyward::clock::ms(s.now());
    let attempt = |n: u32, seen: &user_rows::UserRow| success_rows(seen, n, now);
    let written = |digest: String| {
        let s = s.clone();
        async move {
            let mut c = keyward::test_support::db(&s).conn().await.unwrap();
            let live = get_live_with_user(&mut c.as_conn(), &digest, now)
                .await
                .unwrap();
            let history = s
                .login_history(
                    &cli(),
                    Some("Acme"),
                    &crate::common::history_query(None, 100),
                )
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
        let ok = record_success_if_unchanged(
            keyward::test_support::db(&s),
            seen,
            now,
            &session,
            &history,
            Some("security_token"),
        )
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
    keyward::test_support::store::sessions::insert(
        &mut keyward::test_support::db(&s)
            .conn()
            .await
            .unwrap()
            .as_conn(),
        &taken,
    )
    .await
    .unwrap();
    let (mut session, history) = attempt(8, &seen);
    session.digest = taken.digest.clone();
    for _ in 0..3 {
        // Each time the same refusal: no call meets a transaction left open by the one before.
        let refused = record_success_if_unchanged(
            keyward::test_support::db(&s),
            &seen,
            now,
            &session,
            &history,
            None,
        )
        .await;
        assert!(
            matches!(
                refused,
                Err(keyward::test_support::store::StoreError::Conflict(_))
            ),
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
        record_success_if_unchanged(
            keyward::test_support::db(&s),
            &seen,
            now,
            &session,
            &history,
            Some("security_token"),
        )
        .await
        .unwrap()
    );
    assert_eq!(
        written(session.digest.clone()).await,
        (true, history_before + 1)
    );
    // With the usage inventory's row, counted once more by a second success.
    let seen = user_row(&s, "ada@example.com").await;
    let (session, history) = attempt(10, &seen);
    assert!(
        record_success_if_unchanged(
            keyward::test_support::db(&s),
            &seen,
            now,
            &session,
            &history,
            Some("security_token"),
        )
        .await
        .unwrap()
    );
    let usage = s
        .security_token_usage(&cli(), "ada@example.com")
        .await
        .unwrap();
    assert_eq!(usage.len(), 1, "one (client, address) pair");
    assert_eq!((usage[0].client.as_str(), usage[0].uses), ("test", 2));
    assert_eq!(usage[0].source_ip, UNTRUSTED);
    let after = user_row(&s, "ada@example.com").await;
    assert_eq!((after.failed_logins, after.last_login_at), (0, Some(now)));
    env.finish().await;
}
