//! Use cases: every change an admin, a user or a client can make, each in one transaction with
//! its audit row and its mail (R-E1, R-M4). The CLI, and later the HTTP interfaces, call these
//! and nothing below them, so no interface can skip a rule, an audit row or a mail.

use crate::clock::Clock;
use crate::crypto::{CryptoError, Hasher};
use crate::delegated::DelegatedAuth;
use crate::domain::ids::{IdError, KeyPrefix, SfId};
use crate::domain::ip::IpRangeError;
use crate::domain::policy::{PasswordRejected, PolicyError};
use crate::domain::validate::FieldError;
use crate::store::{Db, StoreError};
use std::sync::Arc;
use time::OffsetDateTime;

pub mod account;
pub mod admin;
mod attempt;
pub mod audit;
pub mod backup;
pub mod bootstrap;
pub mod cache;
pub mod history;
pub mod integration;
mod integration_login;
pub mod login;
pub mod metrics;
pub mod network;
pub mod oauth;
pub mod orgs;
pub mod outbox;
pub(crate) mod resolve;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod verification;
pub mod views;

pub use metrics::Metrics;
pub use outbox::Outbox;

/// The one error type of the service surface. Its text is written for the person who made the
/// request: it names what was wrong and never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// A rule forbids it (R-T9 and the like).
    #[error("{0}")]
    Refused(String),
    /// The database cannot be reached, or the server is too busy (the hash queue is full):
    /// try again shortly (HTTP 503).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ServiceError::Conflict(format!("already exists: {what}")),
            StoreError::Unavailable(m) => ServiceError::Unavailable(format!("database: {m}")),
            StoreError::BadText => ServiceError::Invalid(StoreError::BadText.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<CryptoError> for ServiceError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Busy(_) => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

macro_rules! invalid_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ServiceError {
            fn from(e: $t) -> Self {
                ServiceError::Invalid(e.to_string())
            }
        }
    )*};
}
invalid_from!(
    FieldError,
    PasswordRejected,
    IpRangeError,
    IdError,
    PolicyError
);

/// Who is acting, for authorisation and the audit trail.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The `keyward` command line, run by this OS user. It acts on every org.
    Cli(String),
    /// A logged-in user, acting on themselves — or, with `admin` (a profile with "manage
    /// users"), on their own org.
    User {
        org_id: String,
        user_id: String,
        username: String,
        admin: bool,
    },
    /// keyward itself (first-start bootstrap).
    System,
}

impl Actor {
    pub fn cli() -> Actor {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor::Cli(who)
    }

    /// How the audit trail names the actor.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Cli(who) => format!("cli:{who}"),
            Actor::User { username, .. } => username.clone(),
            Actor::System => "keyward".into(),
        }
    }

    /// R-M1: an admin acts only inside their own org; anything else does not exist for them.
    /// A user who is not an admin may administer nothing.
    pub fn check_org(&self, org_id: &str) -> Result<()> {
        match self {
            Actor::User { org_id: own, .. } if own != org_id => {
                Err(ServiceError::NotFound("no such record".into()))
            }
            Actor::User { admin: false, .. } => Err(ServiceError::Refused(
                "only an administrator of the org (a profile with \"manage users\") can do this"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether records of this org exist for the actor at all (R-M1): the CLI and keyward see
    /// every org, a user only their own. What is not seen answers as what does not exist.
    pub fn sees_org(&self, org_id: &str) -> bool {
        match self {
            Actor::User { org_id: own, .. } => own == org_id,
            _ => true,
        }
    }

    /// A user acting on their own account, or an admin of the user's org (R-M1).
    pub fn check_self_or_admin(&self, org_id: &str, user_id: &str) -> Result<()> {
        match self {
            Actor::User {
                org_id: own_org,
                user_id: own,
                ..
            } if own_org == org_id && own == user_id => Ok(()),
            _ => self.check_org(org_id),
        }
    }

    /// The (org id, user id) of a logged-in user acting on themselves.
    pub fn own(&self) -> Result<(&str, &str)> {
        match self {
            Actor::User {
                org_id, user_id, ..
            } => Ok((org_id, user_id)),
            _ => Err(ServiceError::Refused(
                "only a logged-in user can do this for themselves".into(),
            )),
        }
    }

    /// Is this the user with this id, acting on themselves?
    pub fn is_user(&self, id: &str) -> bool {
        matches!(self, Actor::User { user_id, .. } if user_id == id)
    }
}

/// Everything the use cases need, built once by `app`.
pub struct Services {
    db: Db,
    pub hasher: Arc<Hasher>,
    pub clock: Arc<dyn Clock>,
    pub outbox: Arc<Outbox>,
    pub delegated: DelegatedAuth,
    pub metrics: Metrics,
    /// The per-address failed-login limit.
    pub address_limit: crate::domain::throttle::AddressLimit,
    /// This node's attempts in progress, per address (the limit counts them).
    in_flight: throttle::InFlight,
    /// Session checks answered from memory for up to `session_cache.ttl_ms` (see `cache`).
    pub(crate) session_cache: cache::ReadCache<Arc<sessions::ActiveSession>>,
    /// OAuth clients by consumer key, for introspection's client authentication.
    pub(crate) client_cache: cache::ReadCache<crate::store::oauth::OAuthClientRow>,
    /// How many live integration tokens a user may hold (`integration_tokens.per_user`).
    pub integration_per_user: u32,
}

/// How long a session check may be answered from memory by default, and how many sessions are
/// remembered (config `session_cache.*`).
pub const SESSION_CACHE_TTL_MS: u64 = 500;
pub const SESSION_CACHE_ENTRIES: usize = 10_000;

impl Services {
    pub fn new(db: Db, hasher: Arc<Hasher>, clock: Arc<dyn Clock>, outbox: Arc<Outbox>) -> Self {
        Services {
            db,
            hasher,
            clock,
            outbox,
            delegated: DelegatedAuth::new(crate::delegated::DelegatedSettings::default()),
            metrics: Metrics::default(),
            address_limit: crate::domain::throttle::AddressLimit::default(),
            in_flight: throttle::InFlight::default(),
            session_cache: cache::ReadCache::new(SESSION_CACHE_TTL_MS, SESSION_CACHE_ENTRIES),
            client_cache: cache::ReadCache::new(SESSION_CACHE_TTL_MS, SESSION_CACHE_ENTRIES),
            integration_per_user: integration::DEFAULT_PER_USER,
        }
    }

    /// How long this node may answer a session check (and an introspecting client's lookup)
    /// from memory, and how many it remembers; `ttl_ms` 0 = always read the database.
    pub fn with_session_cache(mut self, ttl_ms: u64, entries: usize) -> Self {
        self.session_cache = cache::ReadCache::new(ttl_ms, entries);
        self.client_cache = cache::ReadCache::new(ttl_ms, entries);
        self
    }

    /// Call after committing a change that may alter what a session check answers (a session
    /// ended, a user or org changed): this node's remembered checks are dropped, so it sees the
    /// change at once; other nodes see it when their memory of the session runs out.
    pub(crate) fn sessions_changed(&self) {
        self.session_cache.forget_all();
    }

    /// Commits a change that may alter what a session check answers, then drops this node's
    /// memory of session checks — also when the commit's outcome is unknown (PostgreSQL: the
    /// connection lost after COMMIT was sent), since it may have landed.
    pub(crate) async fn commit_session_change(&self, tx: crate::store::Tx) -> Result<()> {
        let committed = tx.commit().await;
        self.sessions_changed();
        Ok(committed?)
    }

    /// The per-address failed-login limit (the default: 100 failures per 15 minutes).
    pub fn with_integration_tokens_per_user(mut self, n: u32) -> Self {
        self.integration_per_user = n;
        self
    }

    pub fn with_address_limit(mut self, limit: crate::domain::throttle::AddressLimit) -> Self {
        self.address_limit = limit;
        self
    }

    /// How delegated-authentication endpoints are called (R-L7): timeout, and whether internal
    /// addresses and plain http are allowed.
    pub fn with_delegated_auth(mut self, settings: crate::delegated::DelegatedSettings) -> Self {
        self.delegated = DelegatedAuth::new(settings);
        self
    }

    /// Whether the database answers (`/healthz`).
    pub async fn health(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    /// `sqlite` or `postgres`.
    pub fn database_name(&self) -> &'static str {
        self.db.backend_name()
    }

    /// Closes the database's connections: a command's last step, so its writes are on disk.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The database, for [`crate::test_support`] only: nothing else reaches past the services.
    pub(crate) fn db_for_test_support(&self) -> &Db {
        &self.db
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn now_ms(&self) -> i64 {
        crate::clock::ms(self.clock.now())
    }
}

pub fn new_id(prefix: KeyPrefix) -> String {
    SfId::generate(prefix, &mut crate::crypto::seeded_rng())
        .as_15()
        .to_string()
}

/// The 18-character form of a stored 15-character id (what every interface shows).
pub fn id18(id15: &str) -> String {
    SfId::parse(id15).map_or_else(|_| id15.to_string(), |id| id.to_18())
}

/// "2026-11-24 10:00:00 UTC", how instants read in mails and tables.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

pub fn fmt_ms(ms: i64) -> String {
    fmt_time(crate::clock::from_ms(ms))
}

/// "2026-11-24T10:00:00.000+0000", how Salesforce's APIs write instants.
pub fn fmt_api_ms(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    crate::clock::from_ms(ms)
        .format(&fmt)
        .unwrap_or_else(|_| ms.to_string())
}
