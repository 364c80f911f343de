//! SMTP delivery against a real SMTP server (Python's aiosmtpd, started by the test), including
//! an outage: mail queued while the server is down is all delivered once it is back (R-E1,
//! R-E2), and a delivered token mail loses its secret (R-T3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::free_port;

use common::{Backend, TestDb};
use keyward::clock::SystemClock;
use keyward::crypto::token_digest;
use keyward::domain::secret::Password;
use keyward::domain::token::SecurityToken;
use keyward::mail::transport::{SmtpSecurity, SmtpSettings, Transport};
use keyward::service::outbox::RetryPolicy;
use keyward::service::users::NewUser;
use keyward::service::{Actor, Services};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An aiosmtpd process storing what it receives in a Maildir.
struct SmtpServer {
    child: Child,
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        // scripts/test points KEYWARD_TEST_PYTHON at the interpreter that has aiosmtpd.
        let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd; scripts/test does it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "aiosmtpd did not start (is it installed? pip install aiosmtpd)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { child }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Messages in the Maildir's `new/`, as text.
fn received(maildir: &Path) -> Vec<String> {
    let dir: PathBuf = maildir.join("new");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

/// Waits until `cond` holds (at most a minute): a condition, not a timing assertion.
async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tokens(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("Security token (case-sensitive): ")
                    .map(|t| t.trim_end().to_string())
            })
        })
        .collect()
}

on_both!(
    r_e1_smtp_delivery_survives_an_outage,
    r_e1_undeliverable_mail_goes_dead_and_drops_its_secret
);

/// Org Acme and its user ada@acme.test with a password: one token mail queued.
async fn create_ada(services: &Services) {
    let cli = Actor::Cli("test".into());
    services.create_org(&cli, "Acme").await.unwrap();
    services
        .create_user(
            &cli,
            &NewUser {
                org: "Acme",
                username: "ada@acme.test",
                email: "ada@acme.test",
                first_name: "Ada",
                last_name: "",
                profile: None,
            },
            Some(&Password::new("First-Passw0rd")),
        )
        .await
        .unwrap();
}

fn smtp_to(port: u16) -> Transport {
    Transport::smtp(&SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: String::new(),
        password: String::new(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

async fn r_e1_undeliverable_mail_goes_dead_and_drops_its_secret(b: Backend) {
    let db = TestDb::new(b).await;
    // Nothing listens on this port: every attempt fails at once.
    let clock = Arc::new(keyward::clock::FixedClock::new(common::START));
    let services = common::services_on(&db, clock.clone(), smtp_to(free_port())).await;
    create_ada(&services).await;
    // Five attempts (the test policy's max), each after its backoff.
    let mut dead = 0;
    for attempt in 1..=5 {
        let r = services.outbox.deliver_due().await.unwrap();
        assert_eq!(r.sent, 0);
        dead += r.dead;
        let rows = outbox_rows(&services).await;
        assert_eq!(rows[0].attempts, attempt);
        // Not due again until its backoff has passed.
        assert_eq!(
            services.outbox.deliver_due().await.unwrap(),
            Default::default()
        );
        clock.advance(time::Duration::seconds(1));
    }
    assert_eq!(dead, 1);
    let rows = outbox_rows(&services).await;
    assert_eq!(rows[0].status, "dead");
    assert!(rows[0].secret.is_none(), "a dead token mail kept its token");
    assert!(
        rows[0].last_error.as_deref().unwrap_or("").contains("SMTP"),
        "{:?}",
        rows[0].last_error
    );
    services.close().await;
    db.drop_db().await;
}

async fn r_e1_smtp_delivery_survives_an_outage(b: Backend) {
    let db = TestDb::new(b).await;
    let port = free_port();
    let maildir = db.dir.path().join("maildir");
    let server = SmtpServer::start(port, &maildir);
    let transport = smtp_to(port);
    // Retries every 100-400 ms, and never gives up during this test.
    let retry = RetryPolicy {
        max_attempts: 100_000,
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
    };
    let services: Arc<Services> =
        common::services_with(&db, Arc::new(SystemClock), transport, retry).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(services.outbox.clone().run(stop_rx));
    create_ada(&services).await;
    eventually("the first token mail", || async {
        received(&maildir).len() == 1
    })
    .await;
    let first = received(&maildir);
    assert!(first[0].contains("Subject: Your new security token"));
    assert_eq!(tokens(&first).len(), 1);

    // The SMTP server goes away; mail keeps being queued.
    server.stop();
    let cli = Actor::Cli("test".into());
    for _ in 0..3 {
        services.reset_token(&cli, "ada@acme.test").await.unwrap();
    }
    services
        .set_password(&cli, "ada@acme.test", &Password::new("Second-Passw0rd"))
        .await
        .unwrap();
    // Attempts fail and are retried: wait until every queued message has failed at least once.
    eventually("failed attempts", || async {
        let rows = outbox_rows(&services).await;
        let queued: Vec<_> = rows.iter().filter(|r| r.status == "queued").collect();
        queued.len() == 5
            && queued
                .iter()
                .all(|r| r.attempts >= 1 && r.last_error.is_some())
    })
    .await;
    assert_eq!(received(&maildir).len(), 1);

    // The server is back: everything queued during the outage arrives.
    let server = SmtpServer::start(port, &maildir);
    eventually("delivery after the outage", || async {
        received(&maildir).len() == 6
    })
    .await;
    let all = received(&maildir);
    let subjects = all
        .iter()
        .filter(|m| m.contains("Subject: Your password was changed"))
        .count();
    assert_eq!(subjects, 1);
    let delivered = tokens(&all);
    assert_eq!(delivered.len(), 5);
    // The current token is one of those delivered, and no outbox row keeps a secret.
    let current = {
        let mut c = keyward::test_support::db(&services).conn().await.unwrap();
        keyward::test_support::store::users::find_by_username(&mut c.as_conn(), "ada@acme.test")
            .await
            .unwrap()
            .unwrap()
            .token_digest
            .unwrap()
    };
    assert!(
        delivered
            .iter()
            .any(|t| token_digest(&SecurityToken::parse(t).unwrap()) == current)
    );
    // The worker records each delivery right after the SMTP server accepts it.
    eventually("every row marked sent, its secret gone", || async {
        outbox_rows(&services)
            .await
            .iter()
            .all(|r| r.status == "sent" && r.secret.is_none())
    })
    .await;
    // The worker truncates SQLite's write-ahead log after it scrubs, a moment after marking
    // the rows sent: the tokens leave the database files then.
    eventually("no delivered token left in the database files", || async {
        let dump = db.dump();
        delivered
            .iter()
            .all(|t| !dump.windows(t.len()).any(|w| w == t.as_bytes()))
    })
    .await;
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    server.stop();
    services.close().await;
    db.drop_db().await;
}

/// The outbox rows as stored, the secret column included.
async fn outbox_rows(services: &Services) -> Vec<keyward::test_support::store::outbox::OutboxRow> {
    let mut c = keyward::test_support::db(services).conn().await.unwrap();
    keyward::test_support::store::outbox::list(&mut c.as_conn(), None, 100)
        .await
        .unwrap()
}
