//! Typed configuration: defaults, then a TOML file (`--config`, `KEYWARD_CONFIG`), then
//! `KEYWARD_*` environment variables, then command-line flags. Unknown keys — in the file or
//! as `KEYWARD_*` variables — are refused with an error that names them, so a typo never
//! silently falls back to a default.
//!
//! Every key has an environment variable: `KEYWARD_` followed by its dotted path in upper case
//! with `_` for `.` (`mail.smtp.host` → `KEYWARD_MAIL_SMTP_HOST`). docs/configuration.md lists
//! them all; a test (sample.rs) keeps that page and these settings in step.

mod env;
mod sample;
mod validate;

pub use env::env_name;

pub use sample::sample;

use crate::crypto::HashParams;
use crate::mail::transport::SmtpSecurity;
use env::{NOT_SETTINGS, RESERVED_PREFIXES, env_value, set_path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("unknown environment variable {0}: not a keyward setting (see docs/configuration.md)")]
    UnknownEnv(String),
    #[error("invalid value for {var}: {message}")]
    EnvValue { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A configured secret (the SMTP password): never printed.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ConfigSecret(pub String);

impl std::fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database and the file mail transport's messages live.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub password_hash: PasswordHashConfig,
    pub mail: MailConfig,
    pub delegated_auth: DelegatedAuthConfig,
    pub address_limit: AddressLimitConfig,
    pub session_cache: SessionCacheConfig,
    pub integration_tokens: IntegrationTokensConfig,
    pub log: LogConfig,
}

/// Integration tokens (docs/integration-tokens.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationTokensConfig {
    /// Live integration tokens one user may hold.
    pub per_user: u32,
}

impl Default for IntegrationTokensConfig {
    fn default() -> Self {
        IntegrationTokensConfig {
            per_user: crate::service::integration::DEFAULT_PER_USER,
        }
    }
}

/// How long a node may answer a session check from memory (`service::cache`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionCacheConfig {
    /// 0 = every check reads the database; at most 1000 (a change made on another node must be
    /// seen within a second).
    pub ttl_ms: u64,
    /// Sessions remembered at most.
    pub entries: u32,
}

impl Default for SessionCacheConfig {
    fn default() -> Self {
        SessionCacheConfig {
            ttl_ms: crate::service::SESSION_CACHE_TTL_MS,
            entries: crate::service::SESSION_CACHE_ENTRIES as u32,
        }
    }
}

/// The per-address limit on failed logins (docs/security.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AddressLimitConfig {
    /// Failed logins one IPv4 address or IPv6 /64 may make per window; 0 turns the limit off.
    pub failures: u32,
    pub window_seconds: u64,
    /// Addresses or CIDR ranges never limited.
    pub exempt: Vec<String>,
}

impl Default for AddressLimitConfig {
    fn default() -> Self {
        let d = crate::domain::throttle::AddressLimit::default();
        AddressLimitConfig {
            failures: d.failures,
            window_seconds: d.window.whole_seconds().unsigned_abs(),
            exempt: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelegatedAuthConfig {
    /// How long an org's delegated-authentication endpoint may take to answer (R-L7).
    pub timeout_seconds: u64,
    /// Endpoints on loopback, private, link-local and other internal addresses are allowed
    /// (off: an org admin's URL could reach the server's own network).
    pub allow_private_addresses: bool,
    /// Plain `http://` endpoints are allowed (off: passwords would cross the network in clear).
    pub allow_http: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Empty: SQLite at `<data_dir>/keyward.db`. `postgres://…` for PostgreSQL.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a database connection before giving up.
    pub acquire_timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// The URL clients reach this server at, used in SOAP `serverUrl`, OAuth `instance_url`
    /// and identity URLs; empty = the scheme of this listener and the request's `Host`.
    pub public_url: String,
    /// Peers whose `X-Forwarded-For` is believed (R-L11): CIDRs (`10.0.0.0/8`) or single
    /// addresses. Empty: the TCP peer is always the client.
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain and private key: both set = serve https.
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest request body, checked before parsing and again after gzip decompression.
    pub max_body_bytes: u64,
    /// How long a client may take to send the request head (slow-header clients are cut off).
    pub header_timeout_seconds: u64,
    /// How long a whole request may take before it is answered 408.
    pub request_timeout_seconds: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: u32,
    /// The bearer token `/metrics` requires; empty = `/metrics` is off. The counters split
    /// refusals by reason, which would tell anyone which usernames exist.
    pub metrics_token: ConfigSecret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many hashes may run at once; 0 = one per CPU core.
    pub pool_size: u32,
    /// How many hashes may wait for the pool before logins are answered 503 "try again
    /// shortly"; 0 = no bound.
    pub max_queue: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `file` or `smtp`.
    pub transport: String,
    pub from: String,
    /// Delivery attempts before a message is marked dead.
    pub max_attempts: u32,
    /// First retry delay; it doubles after each failed attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How often the worker looks for mail queued by other processes (CLI, other nodes).
    pub poll_ms: u64,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: String,
    pub username: String,
    pub password: ConfigSecret,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `keyward=trace,sqlx=warn`, …
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./keyward-data"),
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            password_hash: PasswordHashConfig::default(),
            mail: MailConfig::default(),
            delegated_auth: DelegatedAuthConfig::default(),
            address_limit: AddressLimitConfig::default(),
            session_cache: SessionCacheConfig::default(),
            integration_tokens: IntegrationTokensConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for DelegatedAuthConfig {
    fn default() -> Self {
        DelegatedAuthConfig {
            timeout_seconds: 10,
            allow_private_addresses: false,
            allow_http: false,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            max_connections: 10,
            acquire_timeout_seconds: 5,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_body_bytes: 256 * 1024,
            header_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_connections: 512,
            metrics_token: ConfigSecret::default(),
        }
    }
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        let p = HashParams::default();
        PasswordHashConfig {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            pool_size: 0,
            max_queue: 256,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: "file".into(),
            from: "keyward <noreply@keyward.local>".into(),
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            poll_ms: 1_000,
            smtp: SmtpConfig::default(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: ConfigSecret::default(),
            timeout_seconds: 30,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Every setting as (dotted path, default value), in file order.
pub fn keys() -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
        walk("", &t, &mut out);
    }
    out
}

fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => walk(&path, t, out),
            other => out.push((path, other.clone())),
        }
    }
}

impl Config {
    /// Loads defaults → file → environment. `file` None means no file; `env` is the process
    /// environment (passed in so tests control it).
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut root = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            root = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                })?;
            // Checked now so the error names the file, not the merged result.
            Config::deserialize(toml::Value::Table(root.clone())).map_err(|e| {
                ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                }
            })?;
        }
        let keys = keys();
        for (var, raw) in env.iter().filter(|(k, _)| k.starts_with("KEYWARD_")) {
            if NOT_SETTINGS.contains(&var.as_str())
                || RESERVED_PREFIXES.iter().any(|p| var.starts_with(p))
            {
                continue;
            }
            let Some((path, like)) = keys.iter().find(|(p, _)| &env_name(p) == var) else {
                return Err(ConfigError::UnknownEnv(var.clone()));
            };
            set_path(&mut root, path, env_value(var, raw, like)?);
        }
        let config = Config::deserialize(toml::Value::Table(root))
            .map_err(|e| ConfigError::Invalid(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.password_hash.memory_kib,
            iterations: self.password_hash.iterations,
            parallelism: self.password_hash.parallelism,
        }
    }

    pub fn smtp_security(&self) -> Result<SmtpSecurity, ConfigError> {
        match self.mail.smtp.security.as_str() {
            "starttls" => Ok(SmtpSecurity::Starttls),
            "tls" => Ok(SmtpSecurity::Tls),
            "none" => Ok(SmtpSecurity::None),
            other => Err(ConfigError::Invalid(format!(
                "mail.smtp.security must be \"starttls\", \"tls\" or \"none\", not {other:?}"
            ))),
        }
    }

    /// How delegated-authentication endpoints are called (R-L7, `delegated_auth.*`).
    pub fn delegated_auth(&self) -> crate::delegated::DelegatedSettings {
        let d = &self.delegated_auth;
        crate::delegated::DelegatedSettings {
            timeout: std::time::Duration::from_secs(d.timeout_seconds),
            allow_private_addresses: d.allow_private_addresses,
            allow_http: d.allow_http,
        }
    }

    /// The per-address failed-login limit, with its exempt ranges parsed.
    pub fn address_limit(&self) -> Result<crate::domain::throttle::AddressLimit, ConfigError> {
        let a = &self.address_limit;
        if !(1..=7 * 86_400).contains(&a.window_seconds) {
            return Err(ConfigError::Invalid(
                "address_limit.window_seconds must be between 1 and 604800 (a week)".into(),
            ));
        }
        let exempt = parse_ranges("address_limit.exempt", &a.exempt)?;
        Ok(crate::domain::throttle::AddressLimit {
            failures: a.failures,
            window: time::Duration::seconds(i64::try_from(a.window_seconds).unwrap_or(i64::MAX)),
            exempt,
        })
    }

    pub fn trusted_proxies(&self) -> Result<Vec<crate::domain::ip::IpRange>, ConfigError> {
        parse_ranges("server.trusted_proxies", &self.server.trusted_proxies)
    }

    pub fn tls_enabled(&self) -> bool {
        !self.server.tls_cert.is_empty()
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("keyward.db")
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }

    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// A list of addresses and CIDR ranges, as settings write them.
fn parse_ranges(
    key: &str,
    items: &[String],
) -> Result<Vec<crate::domain::ip::IpRange>, ConfigError> {
    items
        .iter()
        .map(|p| {
            let p = p.trim();
            let range = if p.contains('/') {
                crate::domain::ip::IpRange::parse(p, None)
            } else {
                crate::domain::ip::IpRange::parse(p, Some(p))
            };
            range.map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./keyward-data"));
        assert_eq!(c.password_hash.memory_kib, 19456);
        assert_eq!(c.password_hash.iterations, 2);
        assert_eq!(c.password_hash.parallelism, 1);
        assert_eq!(c.mail.transport, "file");
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn file_then_env_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/k\"\n[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"mx\"\nport = 25\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            &env(&[
                ("KEYWARD_MAIL_SMTP_PORT", "2525"),
                ("KEYWARD_DATABASE_URL", "postgres://db/k"),
                ("KEYWARD_CONFIG", "ignored here"),
                ("KEYWARD_TEST_DATABASE_URL", "reserved for tests"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/k"));
        assert_eq!(c.mail.smtp.host, "mx");
        assert_eq!(c.mail.smtp.port, 2525);
        assert_eq!(c.database.url, "postgres://db/k");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "[mail]\ntransprot = \"smtp\"\n").unwrap();
        let err = Config::load(Some(&path), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("transprot"), "{err}");
        assert!(err.contains("k.toml"), "{err}");

        let err = Config::load(None, &env(&[("KEYWARD_MAIL_TRANSPROT", "smtp")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEYWARD_MAIL_TRANSPROT"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (var, val) in [
            ("KEYWARD_MAIL_SMTP_PORT", "many"),
            ("KEYWARD_MAIL_TRANSPORT", "pigeon"),
            ("KEYWARD_PASSWORD_HASH_MEMORY_KIB", "1"),
            ("KEYWARD_SERVER_LISTEN", "localhost"),
            ("KEYWARD_DATABASE_URL", "mysql://x"),
            ("KEYWARD_LOG_FORMAT", "xml"),
            ("KEYWARD_MAIL_RETRY_BASE_MS", "0"),
            ("KEYWARD_MAIL_RETRY_BASE_MS", "99999999999999"),
            ("KEYWARD_MAIL_RETRY_MAX_MS", "1"),
            ("KEYWARD_MAIL_MAX_ATTEMPTS", "0"),
            ("KEYWARD_DATABASE_MAX_CONNECTIONS", "0"),
            ("KEYWARD_ADDRESS_LIMIT_WINDOW_SECONDS", "0"),
            ("KEYWARD_ADDRESS_LIMIT_EXEMPT", "10.0.0.0/8,not-an-address"),
            // A change on another node must be seen within a second (docs/rules.md, Interfaces).
            ("KEYWARD_SESSION_CACHE_TTL_MS", "1001"),
            ("KEYWARD_SESSION_CACHE_ENTRIES", "0"),
        ] {
            assert!(
                Config::load(None, &env(&[(var, val)])).is_err(),
                "{var}={val}"
            );
        }
        // smtp without a host
        assert!(Config::load(None, &env(&[("KEYWARD_MAIL_TRANSPORT", "smtp")])).is_err());
    }

    #[test]
    fn smtp_password_never_prints() {
        let mut c = Config::default();
        c.mail.smtp.password = ConfigSecret("s3cret".into());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
