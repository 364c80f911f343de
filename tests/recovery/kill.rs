//! kill -9 in the middle of a stream of token resets and password changes.

use super::support::*;
use crate::common::{Backend, TestDb};
use crate::on_both;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

on_both!(kill_9_mid_stream_loses_no_acknowledged_token_mail);

/// One admin action on a user, as the API was asked for it.
#[derive(Debug, Clone)]
enum Change {
    ResetToken,
    Password(String),
}

/// What one client saw: the changes the server acknowledged (2xx), in order, and the one it
/// was sending when the connection broke (which may or may not have committed).
#[derive(Debug, Default)]
struct Stream {
    acknowledged: Vec<Change>,
    in_flight: Option<Change>,
    broke_at: Option<Instant>,
    error: String,
    /// The slowest acknowledged change.
    slowest: Duration,
}

async fn kill_9_mid_stream_loses_no_acknowledged_token_mail(b: Backend) {
    let db = TestDb::new(b).await;
    let st = Setup {
        data: db.data_dir(),
        db,
        database_url: None,
    };
    let mail_dir = st.mail_dir();
    let server = st.serve("run1");
    st.cli(&["org", "create", "--name", "Acme"], None);
    let admin_pw = "Admin-Passw0rd-1";
    st.user("grace@acme.test", admin_pw, "System Administrator");
    const USERS: usize = 4;
    let users: Vec<(String, String)> = (0..USERS)
        .map(|i| {
            let name = format!("user{i}@acme.test");
            let pw = format!("Start-Passw0rd-{i}");
            st.user(&name, &pw, "Standard User");
            (name, pw)
        })
        .collect();
    eventually("the first token mails", Duration::from_secs(30), || {
        std::iter::once("grace@acme.test")
            .chain(users.iter().map(|(u, _)| u.as_str()))
            .all(|u| tokens_to(&mail_dir, u).len() == 1)
    })
    .await;

    // An administrator's API session: 127.0.0.1 is outside the trusted ranges, so password and
    // token.
    let http = client(Duration::from_secs(30));
    let admin_token = tokens_to(&mail_dir, "grace@acme.test").remove(0);
    let (status, text) = soap_login(
        &http,
        &server.base,
        "grace@acme.test",
        &format!("{admin_pw}{admin_token}"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let session = element(&text, "sessionId").unwrap();

    // One client per user, each streaming resets and password changes one after the other
    // until the connection breaks.
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..USERS).map(|_| AtomicUsize::new(0)).collect());
    let mut clients = Vec::new();
    for (i, (username, _)) in users.iter().enumerate() {
        let (http, base, session, username, acked) = (
            http.clone(),
            server.base.clone(),
            session.clone(),
            username.clone(),
            acked.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut s = Stream::default();
            for n in 0.. {
                let change = if n % 2 == 0 {
                    Change::ResetToken
                } else {
                    Change::Password(format!("Passw0rd-{i}-{n}-Kw"))
                };
                let request = match &change {
                    Change::ResetToken => {
                        http.post(format!("{base}/api/v1/users/{username}/reset-token"))
                    }
                    Change::Password(p) => http
                        .post(format!("{base}/api/v1/users/{username}/password"))
                        .json(&serde_json::json!({ "password": p })),
                };
                let sent = Instant::now();
                let answer = request.bearer_auth(&session).send().await;
                let answer = match answer {
                    Ok(r) => {
                        let status = r.status();
                        r.text().await.map(|t| (status, t))
                    }
                    Err(e) => Err(e),
                };
                match answer {
                    Ok((status, _)) if status.is_success() => {
                        s.slowest = s.slowest.max(sent.elapsed());
                        s.acknowledged.push(change);
                        acked[i].fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, text)) => panic!("{change:?} for {username}: {status} {text}"),
                    Err(e) => {
                        s.in_flight = Some(change);
                        s.broke_at = Some(Instant::now());
                        s.error = e.to_string();
                        break;
                    }
                }
            }
            s
        }));
    }
    let counts = || {
        acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    eventually(
        "60 acknowledged changes, 5 of each user",
        Duration::from_secs(60),
        || {
            let c = counts();
            (c.iter().sum::<usize>() >= 60 && c.iter().all(|&n| n >= 5))
                || clients.iter().any(|c| c.is_finished())
        },
    )
    .await;
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "a client stopped before the kill"
    );
    let killed_at = Instant::now();
    server.kill();
    let mut streams = Vec::new();
    for c in clients {
        streams.push(c.await.unwrap());
    }
    for (s, (u, _)) in streams.iter().zip(&users) {
        assert!(
            s.broke_at.unwrap() >= killed_at,
            "{u}'s stream broke before the kill: {}",
            s.error
        );
    }
    let acknowledged: usize = streams.iter().map(|s| s.acknowledged.len()).sum();
    let per_user: Vec<usize> = streams.iter().map(|s| s.acknowledged.len()).collect();
    let slowest = streams.iter().map(|s| s.slowest).max().unwrap_or_default();
    let on_disk_at_kill: usize = users
        .iter()
        .map(|(u, _)| tokens_to(&mail_dir, u).len())
        .sum();

    // The same data dir and database, a new process.
    let restarted_at = Instant::now();
    let server = st.serve("run2");
    let started_in = restarted_at.elapsed();
    let queued_mail = || {
        let (http, url, session) = (
            http.clone(),
            format!("{}/api/v1/mail?status=queued&limit=1000", server.base),
            session.clone(),
        );
        async move {
            let r = http.get(url).bearer_auth(session).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let mails: serde_json::Value = r.json().await.unwrap();
            mails
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["attempts"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    // The new worker sends at once what nobody had claimed; what the killed one had claimed
    // (counted as an attempt) waits in the log, queued, until its lease runs out. (The admin's
    // session is a row: it survived the crash.)
    let (claimed_at_kill, fresh_out_in) = {
        let mut last = queued_mail().await;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = queued_mail().await;
            if now == last && now.iter().all(|&a| a >= 1) {
                break (now.len(), restarted_at.elapsed());
            }
            assert!(
                restarted_at.elapsed() < Duration::from_secs(60),
                "unclaimed mail still queued: {now:?}"
            );
            last = now;
        }
    };
    // Every acknowledged change mailed its token: one token mail per user for the first
    // password, one per acknowledged change, and one more at most, for the change in flight.
    // The mail the killed worker had claimed is retried when its lease (35 s with the file
    // transport) runs out.
    eventually(
        "the token mail of every acknowledged change",
        Duration::from_secs(90),
        || {
            streams
                .iter()
                .zip(&users)
                .all(|(s, (u, _))| tokens_to(&mail_dir, u).len() > s.acknowledged.len())
        },
    )
    .await;
    let tokens_out_in = restarted_at.elapsed();
    // And nothing is left queued or dead: the server's email log agrees.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (queued, retried) = loop {
        let r = http
            .get(format!("{}/api/v1/mail?limit=1000", server.base))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mails: serde_json::Value = r.json().await.unwrap();
        let mails = mails.as_array().unwrap();
        let queued: Vec<String> = mails
            .iter()
            .filter(|m| m["status"] != "sent")
            .map(|m| format!("{} {} {}", m["to"], m["status"], m["attempts"]))
            .collect();
        let retried = mails
            .iter()
            .filter(|m| m["attempts"].as_i64() > Some(1))
            .count();
        if queued.is_empty() || Instant::now() > deadline {
            break (queued, retried);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(queued.is_empty(), "mail still queued or dead: {queued:?}");
    let all_out_in = restarted_at.elapsed();

    let mut committed_in_flight = 0;
    let mut in_flight_total = 0;
    for (s, (username, first_pw)) in streams.iter().zip(&users) {
        let tokens = tokens_to(&mail_dir, username);
        let expected = 1 + s.acknowledged.len();
        in_flight_total += usize::from(s.in_flight.is_some());
        assert!(
            tokens.len() == expected || (s.in_flight.is_some() && tokens.len() == expected + 1),
            "{username}: {} acknowledged changes, in flight {:?}, {} distinct tokens mailed",
            s.acknowledged.len(),
            s.in_flight,
            tokens.len()
        );
        // The change in flight committed exactly when it mailed a token.
        let committed = tokens.len() == expected + 1;
        committed_in_flight += usize::from(committed);
        let last_acked = s
            .acknowledged
            .iter()
            .rev()
            .find_map(|c| match c {
                Change::Password(p) => Some(p.clone()),
                Change::ResetToken => None,
            })
            .unwrap_or_else(|| first_pw.clone());
        let in_flight_pw = match &s.in_flight {
            Some(Change::Password(p)) => Some(p.clone()),
            _ => None,
        };
        let current = match (&in_flight_pw, committed) {
            (Some(p), true) => p.clone(),
            _ => last_acked.clone(),
        };
        let latest = tokens.last().unwrap();
        // Exactly the predicted password logs in with the last mailed token ...
        for candidate in std::iter::once(&last_acked).chain(in_flight_pw.iter()) {
            let (status, text) = soap_login(
                &http,
                &server.base,
                username,
                &format!("{candidate}{latest}"),
            )
            .await
            .unwrap();
            if *candidate == current {
                assert_eq!(status, 200, "{username} with the last mailed token: {text}");
                assert!(element(&text, "sessionId").is_some(), "{text}");
            } else {
                assert_eq!(
                    element(&text, "exceptionCode").as_deref(),
                    Some("INVALID_LOGIN"),
                    "{username}: a password that is not the current one: {text}"
                );
            }
        }
        // ... and no older token does, with the current password.
        let older = [&tokens[0], &tokens[tokens.len() - 2]];
        for old in older {
            let (status, text) =
                soap_login(&http, &server.base, username, &format!("{current}{old}"))
                    .await
                    .unwrap();
            assert_eq!(status, 500, "{text}");
            assert_eq!(
                element(&text, "exceptionCode").as_deref(),
                Some("LOGIN_MUST_USE_SECURITY_TOKEN"),
                "{username} with an older token: {text}"
            );
        }
    }
    let after: usize = users
        .iter()
        .map(|(u, _)| tokens_to(&mail_dir, u).len())
        .sum();
    eprintln!(
        "kill -9 ({b:?}): {acknowledged} changes acknowledged by {USERS} clients before the kill \
         ({per_user:?}, the slowest in {:.2} s), \
         {in_flight_total} in flight ({committed_in_flight} of them committed); {on_disk_at_kill} \
         user token mails on disk at the kill, {after} after the restart ({} delivered by the new \
         process, {retried} mails needed more than one attempt); restart took {:.2} s; mail nobody \
         had claimed was out {:.2} s after it; every acknowledged change's token mail was out \
         {:.2} s after the restart, and all mail — the {claimed_at_kill} the killed process had \
         claimed waited for their lease — {:.2} s after it",
        slowest.as_secs_f64(),
        after - on_disk_at_kill,
        started_in.as_secs_f64(),
        fresh_out_in.as_secs_f64(),
        tokens_out_in.as_secs_f64(),
        all_out_in.as_secs_f64()
    );
    assert_eq!(server.stop(), 0);
    st.db.drop_db().await;
}
