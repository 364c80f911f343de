//! PostgreSQL restarted under load.

use super::support::*;
use crate::common::process::free_port;
use crate::common::{Backend, TestDb};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
