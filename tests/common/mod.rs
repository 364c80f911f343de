//! Shared test harness: a fresh database per test on either backend, services with cheap
//! hashing and a file mail transport in a temporary directory, a clock the test moves, and a
//! runner for the `keyward` binary.
//!
//! PostgreSQL tests create their own database `keyward_t_<random>` through the server named by
//! `KEYWARD_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and drop
//! it afterwards. They fail, rather than skip, when it cannot be reached.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod process;
pub mod server;

use keyward::clock::FixedClock;
use keyward::crypto::{HashParams, Hasher};
use keyward::mail::transport::Transport;
use keyward::service::outbox::RetryPolicy;
use keyward::service::{Actor, Outbox, Services};
use keyward::test_support::store::{Db, DbOptions};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from `async fn $name(b: Backend)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

pub const START: OffsetDateTime = datetime!(2026-11-24 09:00 UTC);

pub fn admin_url() -> String {
    std::env::var("KEYWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database and the directory the test may write to.
pub struct TestDb {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    /// `postgres://…/keyward_t_x` for PostgreSQL; empty for SQLite.
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                dir,
                url: String::new(),
                pg_name: None,
            },
            Backend::Postgres => {
                let admin = admin_url();
                let name = format!(
                    "keyward_t_{}",
                    keyward::crypto::random_base62(12).to_lowercase()
                );
                let mut c = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL tests need a server: set KEYWARD_TEST_DATABASE_URL \
                         (tried {admin}): {e}"
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb {
                    backend,
                    dir,
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir().join("mail")
    }

    pub async fn open(&self) -> Db {
        // Bursts of 200 logins queue for 10 connections; on a loaded CI machine that can take
        // longer than the production default of 5 s, which is not what these tests measure.
        let options = DbOptions {
            acquire_timeout: Duration::from_secs(60),
            ..DbOptions::default()
        };
        let db = match self.backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(self.data_dir()).unwrap();
                Db::open_sqlite(&self.data_dir().join("keyward.db"), &options)
                    .await
                    .unwrap()
            }
            Backend::Postgres => Db::open_postgres(&self.url, &options).await.unwrap(),
        };
        db.migrate().await.unwrap();
        db
    }

    /// Drops the PostgreSQL database (the SQLite file goes with the temporary directory).
    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut c) = sqlx::PgConnection::connect(&admin_url()).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
    }

    /// Text dump of everything in the database: the SQLite files' raw bytes, or `pg_dump`.
    pub fn dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut all = Vec::new();
                for name in ["keyward.db", "keyward.db-wal", "keyward.db-shm"] {
                    if let Ok(b) = std::fs::read(self.data_dir().join(name)) {
                        all.extend(b);
                    }
                }
                all
            }
            Backend::Postgres => {
                let out = std::process::Command::new("pg_dump")
                    .arg("--no-owner")
                    .arg(&self.url)
                    .output()
                    .expect("pg_dump");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }
}

pub fn cheap_hash() -> HashParams {
    HashParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    }
}

/// Services over a fresh database, with a fixed clock at `START`.
pub struct Env {
    pub db: TestDb,
    pub services: Arc<Services>,
    pub clock: Arc<FixedClock>,
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        Env::new_with(backend, |s| s).await
    }

    /// With the services' settings changed (`Services::with_address_limit`, say).
    pub async fn new_with(backend: Backend, tweak: impl FnOnce(Services) -> Services) -> Env {
        let db = TestDb::new(backend).await;
        let clock = Arc::new(FixedClock::new(START));
        let services = build_services(
            &db,
            clock.clone(),
            Transport::file(db.mail_dir()),
            test_retry(),
            tweak,
        )
        .await;
        Env {
            db,
            services,
            clock,
        }
    }

    pub async fn finish(self) {
        // A connection still checked out would make `close` wait forever: fail instead.
        tokio::time::timeout(Duration::from_secs(20), self.services.close())
            .await
            .expect("the test left a database connection checked out");
        self.db.drop_db().await;
    }

    /// Delivers due mail now.
    pub async fn deliver(&self) {
        self.services.outbox.deliver_due().await.unwrap();
    }

    pub fn mails(&self) -> Vec<Mail> {
        mails_in(&self.db.mail_dir())
    }
}

pub async fn services_on(
    db: &TestDb,
    clock: Arc<dyn keyward::clock::Clock>,
    transport: Transport,
) -> Arc<Services> {
    services_with(db, clock, transport, test_retry()).await
}

fn test_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
    }
}

pub async fn services_with(
    db: &TestDb,
    clock: Arc<dyn keyward::clock::Clock>,
    transport: Transport,
    retry: RetryPolicy,
) -> Arc<Services> {
    build_services(db, clock, transport, retry, |s| s).await
}

pub async fn build_services(
    db: &TestDb,
    clock: Arc<dyn keyward::clock::Clock>,
    transport: Transport,
    retry: RetryPolicy,
    tweak: impl FnOnce(Services) -> Services,
) -> Arc<Services> {
    let store = db.open().await;
    let hasher = Arc::new(Hasher::new(cheap_hash(), 4).unwrap());
    let outbox = Arc::new(Outbox::new(
        store.clone(),
        transport,
        "keyward <noreply@keyward.local>".into(),
        clock.clone(),
        retry,
        Duration::from_millis(100),
    ));
    Arc::new(tweak(Services::new(store, hasher, clock, outbox)))
}

impl Env {
    /// Another node's services over this environment's database, clock and mail directory,
    /// with its own settings.
    pub async fn second_node(&self, tweak: impl FnOnce(Services) -> Services) -> Arc<Services> {
        build_services(
            &self.db,
            self.clock.clone(),
            Transport::file(self.db.mail_dir()),
            RetryPolicy {
                max_attempts: 1,
                base: Duration::from_millis(100),
                max: Duration::from_millis(100),
            },
            tweak,
        )
        .await
    }
}

/// Creates user `username` (email the same, named Ada Lovelace) in `org`, as the CLI would;
/// with a password, the first token is mailed. Returns the user id.
pub async fn create_user(
    s: &Services,
    org: &str,
    username: &str,
    password: Option<&str>,
    profile: Option<&str>,
) -> String {
    s.create_user(
        &keyward::service::Actor::Cli("test".into()),
        &keyward::service::users::NewUser {
            org,
            username,
            email: username,
            first_name: "Ada",
            last_name: "Lovelace",
            profile,
        },
        password
            .map(keyward::domain::secret::Password::new)
            .as_ref(),
    )
    .await
    .unwrap()
    .id
}

/// An org whose trusted range covers the test's 127.0.0.1 (so the browser login needs no
/// verification code: R-U1 is the browser suite's), with an admin and a standard user.
pub struct Org {
    pub admin_id: String,
    pub user_id: String,
    pub admin: String,
    pub user: String,
}

pub async fn org(s: &Services, name: &str) -> Org {
    s.create_org(&Actor::Cli("test".into()), name)
        .await
        .unwrap();
    s.add_trusted_range(
        &Actor::Cli("test".into()),
        name,
        "127.0.0.0/8",
        None,
        "test",
    )
    .await
    .unwrap();
    let admin = format!("admin@{}.test", name.to_lowercase());
    let user = format!("user@{}.test", name.to_lowercase());
    let admin_id = create_user(
        s,
        name,
        &admin,
        Some(browser::PW),
        Some("System Administrator"),
    )
    .await;
    let user_id = create_user(s, name, &user, Some(browser::PW), None).await;
    Org {
        admin_id,
        user_id,
        admin,
        user,
    }
}

/// An OAuth client of `org` created by the CLI: (consumer key, consumer secret).
pub async fn oauth_client(
    s: &Services,
    org: &str,
    refresh: bool,
    run_as: Option<&str>,
) -> (String, String) {
    let (row, secret) = s
        .create_oauth_client(
            &Actor::Cli("test".into()),
            org,
            "app",
            &keyward::service::oauth::ClientOptions {
                refresh_tokens: refresh,
                run_as,
                current_password: None,
            },
        )
        .await
        .unwrap();
    (row.client_id, secret.0)
}

/// A delivered mail file.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Mail {
    /// The token on the R-T5 token line, if this mail has one.
    pub fn token(&self) -> Option<String> {
        self.line_value("Security token (case-sensitive): ")
    }

    /// The token on an integration-token mail's line (R-I1), if this mail has one.
    pub fn integration_token(&self) -> Option<String> {
        self.line_value("Integration token (case-sensitive): ")
    }

    fn line_value(&self, prefix: &str) -> Option<String> {
        self.text.lines().find_map(|l| {
            l.strip_prefix(prefix)
                .map(|t| t.trim_end_matches('\r').to_string())
        })
    }
}

fn header(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string()
}

/// The `.eml` files of a mail directory, oldest first (by name, as `ls` sorts them).
pub fn mails_in(dir: &Path) -> Vec<Mail> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            Mail {
                to: header(&text, "To"),
                subject: header(&text, "Subject"),
                file: n,
                text,
            }
        })
        .collect()
}

/// The newest token mailed to `to`.
pub fn latest_token(mails: &[Mail], to: &str) -> String {
    mails
        .iter()
        .rev()
        .filter(|m| m.to == to)
        .find_map(Mail::token)
        .unwrap_or_else(|| panic!("no token mail to {to}"))
}

/// A login-history search for `user` (every user when None), at most `limit` rows.
pub fn history_query(user: Option<&str>, limit: i64) -> keyward::service::history::HistoryQuery {
    keyward::service::history::HistoryQuery {
        user: user.map(str::to_string),
        limit,
        ..Default::default()
    }
}
