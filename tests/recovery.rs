//! Crash and outage, with `keyward serve` as a real process (issue 5): a SIGKILL in the middle of
//! a stream of token resets and password changes loses no mail the server acknowledged, and
//! after the restart each user's last mailed token, with their password, is the one that logs in
//! (R-E1, R-T5, R-T6); a PostgreSQL restart under a steady load of logins makes the same server
//! answer 503 — never a 500 or a hang — while the database is away, and log people in again once
//! it is back, without restarting keyward. (An SMTP outage is tests/smtp.rs's.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::{Serve, free_port, keyward, run_ok};
use common::server::login_envelope;
use common::{Backend, TestDb, mails_in};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

on_both!(kill_9_mid_stream_loses_no_acknowledged_token_mail);

const SOAP: &str = "/services/Soap/u/59.0";

/// A data dir (and, on PostgreSQL, a database) with `keyward` pointed at it.
struct Setup {
    db: TestDb,
    data: PathBuf,
    /// Overrides the test database (the private PostgreSQL cluster of the outage test).
    database_url: Option<String>,
}

impl Setup {
    fn kw(&self, level: &str) -> Command {
        let mut c = keyward(&self.db, self.db.dir.path(), level);
        c.arg("--data-dir")
            .arg(&self.data)
            .env("KEYWARD_MAIL_POLL_MS", "100");
        if let Some(url) = &self.database_url {
            c.env("KEYWARD_DATABASE_URL", url);
        }
        c
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        run_ok(self.kw("warn"), args, stdin)
    }

    /// `keyward serve` on a free port, its output in `<dir>/<run>/`.
    fn serve(&self, run: &str) -> Serve {
        let dir = self.db.dir.path().join(run);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = self.kw("info");
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        Serve::start(c, &dir)
    }

    fn mail_dir(&self) -> PathBuf {
        self.data.join("mail")
    }

    /// A user of Acme with a first password (their first token is mailed); returns the id.
    fn user(&self, username: &str, password: &str, profile: &str) -> String {
        self.cli(
            &[
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                username,
                "--email",
                username,
                "--profile",
                profile,
                "--password-stdin",
            ],
            Some(password),
        )
        .trim()
        .to_string()
    }
}

/// The distinct tokens mailed to `to`, oldest first (a redelivery writes the same file again, so
/// a token appears once however often it was delivered).
fn tokens_to(mail_dir: &Path, to: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in mails_in(mail_dir).iter().filter(|m| m.to == to) {
        if let Some(t) = m.token()
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

/// Waits (up to `limit`) until `cond` holds: a condition, not a timing assertion.
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// A client that gives up on an answer after `timeout` (a hang is a failure, not a wait).
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// A SOAP `login()`; (status, body).
async fn soap_login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    secret: &str,
) -> reqwest::Result<(u16, String)> {
    let r = http
        .post(format!("{base}{SOAP}"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(login_envelope(username, secret))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

/// The text of the first `<name>` element.
fn element(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or("").to_string())
}

// ---------------------------------------------------------------------------------------------
// kill -9 in the middle of a stream of token resets and password changes

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

// ---------------------------------------------------------------------------------------------
// PostgreSQL restarted under load

/// A PostgreSQL cluster of the test's own (trust authentication, 127.0.0.1 on a free port), so
/// stopping it disturbs no other test. As root it runs as `postgres`: initdb refuses root.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let versions = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql/<version>/bin");
        let mut versions: Vec<PathBuf> = versions
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        let bin = versions.pop().expect("an initdb under /usr/lib/postgresql");
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let pg = PrivatePg {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        pg.pg_ctl_start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn pg_ctl_stop(&self, mode: &str) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", mode, "-w", "stop"],
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What a login under load got back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    LoggedIn,
    /// 503 with `sf:SERVER_UNAVAILABLE`.
    Unavailable,
    /// Anything else: a 500, another fault, a timeout, a refused connection.
    Wrong(String),
}

#[derive(Debug, Clone)]
struct Try {
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
}

fn classify(answer: reqwest::Result<(u16, String)>) -> Outcome {
    match answer {
        Ok((200, text)) if element(&text, "sessionId").is_some() => Outcome::LoggedIn,
        Ok((503, text))
            if element(&text, "faultcode").as_deref() == Some("sf:SERVER_UNAVAILABLE") =>
        {
            Outcome::Unavailable
        }
        Ok((status, text)) => Outcome::Wrong(format!("{status} {text}")),
        Err(e) => Outcome::Wrong(format!("no answer: {e}")),
    }
}

/// Waits (up to 60 s) for an attempt that matches `pred`; returns it.
async fn wait_for_try(what: &str, tries: &Mutex<Vec<Try>>, pred: impl Fn(&Try) -> bool) -> Try {
    let start = Instant::now();
    loop {
        if let Some(t) = tries.lock().unwrap().iter().find(|t| pred(t)) {
            return t.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {:?}",
            tries
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PostgreSQL only: SQLite has no server to restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_under_load_answers_503_then_recovers() {
    let pg = PrivatePg::start();
    let db = TestDb::new(Backend::Sqlite).await;
    let st = Setup {
        data: db.data_dir(),
        db,
        database_url: Some(pg.url()),
    };
    let server = st.serve("run");
    st.cli(&["org", "create", "--name", "Acme"], None);
    let pw = "Passw0rd!load";
    st.user("ada@acme.test", pw, "Standard User");
    let client_out = st.cli(
        &[
            "oauth", "client", "create", "--org", "Acme", "--name", "app",
        ],
        None,
    );
    let mut lines = client_out.lines();
    let (client_id, client_secret) = (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    );
    let mail_dir = st.mail_dir();
    eventually("ada's token mail", Duration::from_secs(30), || {
        tokens_to(&mail_dir, "ada@acme.test").len() == 1
    })
    .await;
    let token = tokens_to(&mail_dir, "ada@acme.test").remove(0);
    let secret = format!("{pw}{token}");

    // A steady load: four clients logging in one after the other. A login may wait for a
    // database connection (database.acquire_timeout_seconds, 5 s) and the server's request
    // timeout is 30 s: no answer within 20 s is a hang.
    let http = client(Duration::from_secs(20));
    let tries: Arc<Mutex<Vec<Try>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, base, secret, tries, stop) = (
            http.clone(),
            server.base.clone(),
            secret.clone(),
            tries.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let outcome = classify(soap_login(&http, &base, "ada@acme.test", &secret).await);
                let answered = Instant::now();
                let pause = outcome != Outcome::LoggedIn;
                tries.lock().unwrap().push(Try {
                    sent,
                    answered,
                    outcome,
                });
                if pause {
                    // A client that was refused tries again a little later, as clients do.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let count = |o: &Outcome| {
        tries
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.outcome == *o)
            .count()
    };
    eventually("20 logins under load", Duration::from_secs(60), || {
        count(&Outcome::LoggedIn) >= 20
    })
    .await;

    // PostgreSQL goes away ("fast": its sessions are cut off, transactions rolled back).
    let stopping = Instant::now();
    pg.pg_ctl_stop("fast");
    let stopped = Instant::now();
    let first_503 = wait_for_try("a 503 while PostgreSQL is down", &tries, |t| {
        t.outcome == Outcome::Unavailable
    })
    .await;
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503, "/healthz while PostgreSQL is down");
    let oauth = http
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("username", "ada@acme.test"),
            ("password", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth.status(), 503);
    let body: serde_json::Value = oauth.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    eventually("8 answers of 503", Duration::from_secs(60), || {
        count(&Outcome::Unavailable) >= 8
    })
    .await;

    // PostgreSQL is back: the same keyward process logs people in again.
    let starting = Instant::now();
    pg.pg_ctl_start();
    let started = Instant::now();
    let back = wait_for_try("a login after PostgreSQL is back", &tries, |t| {
        t.sent >= started && t.outcome == Outcome::LoggedIn
    })
    .await;
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "/healthz once PostgreSQL is back");
    // A little more load after the recovery, then the clients stop.
    let before = count(&Outcome::LoggedIn);
    eventually("20 more logins", Duration::from_secs(60), || {
        count(&Outcome::LoggedIn) >= before + 20
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }

    let tries = tries.lock().unwrap().clone();
    let wrong: Vec<&Try> = tries
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Wrong(_)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} logins got neither a session nor a 503; the first: {:?}\nthe server's errors:\n{}",
        wrong.len(),
        tries.len(),
        wrong[0],
        String::from_utf8_lossy(&server.log())
            .lines()
            .filter(|l| l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let unavailable: Vec<&Try> = tries
        .iter()
        .filter(|t| t.outcome == Outcome::Unavailable)
        .collect();
    let last_503 = unavailable.iter().map(|t| t.answered).max().unwrap();
    let slowest = tries
        .iter()
        .map(|t| t.answered - t.sent)
        .max()
        .unwrap_or_default();
    eprintln!(
        "PostgreSQL restart under load: {} logins, {} answered 503; pg_ctl stop took {:.2} s, the \
         first 503 came {:.2} s after it began, 503s for {:.2} s (first to last); PostgreSQL was \
         down {:.2} s; after pg_ctl start returned ({:.2} s) the first login sent succeeded {:.2} \
         s later; slowest answer {:.2} s",
        tries.len(),
        unavailable.len(),
        (stopped - stopping).as_secs_f64(),
        (first_503.answered - stopping).as_secs_f64(),
        (last_503 - first_503.answered).as_secs_f64(),
        (started - stopping).as_secs_f64(),
        (started - starting).as_secs_f64(),
        (back.answered - started).as_secs_f64(),
        slowest.as_secs_f64(),
    );
    // Not restarted: it stops as cleanly as ever.
    assert_eq!(server.stop(), 0);
}
