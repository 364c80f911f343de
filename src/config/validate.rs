//! The bounds each setting must keep. Apart from loading because it runs twice: after the file
//! and the environment are read, and again once command-line flags have been applied.

use super::{Config, ConfigError};

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !matches!(self.mail.transport.as_str(), "file" | "smtp") {
            return bad(format!(
                "mail.transport must be \"file\" or \"smtp\", not {:?}",
                self.mail.transport
            ));
        }
        if self.mail.transport == "smtp" && self.mail.smtp.host.is_empty() {
            return bad("mail.transport is \"smtp\" but mail.smtp.host is empty".into());
        }
        self.smtp_security()?;
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(format!(
                "mail.from {:?} is not an email address",
                self.mail.from
            ));
        }
        if !(1..=1000).contains(&self.mail.max_attempts) {
            return bad("mail.max_attempts must be between 1 and 1000".into());
        }
        const DAY_MS: u64 = 86_400_000;
        if !(1..=DAY_MS).contains(&self.mail.retry_base_ms)
            || !(self.mail.retry_base_ms..=DAY_MS).contains(&self.mail.retry_max_ms)
        {
            return bad(format!(
                "mail.retry_base_ms must be between 1 and {DAY_MS} and mail.retry_max_ms between \
                 it and {DAY_MS} (got {} and {})",
                self.mail.retry_base_ms, self.mail.retry_max_ms
            ));
        }
        if !(50..=60_000).contains(&self.mail.poll_ms) {
            return bad("mail.poll_ms must be between 50 and 60000".into());
        }
        if !(1..=600).contains(&self.mail.smtp.timeout_seconds) {
            return bad("mail.smtp.timeout_seconds must be between 1 and 600".into());
        }
        if self.session_cache.ttl_ms > 1000 {
            return bad(format!(
                "session_cache.ttl_ms must be at most 1000 (a logout or deactivation on another \
                 node must take effect within one second), not {}",
                self.session_cache.ttl_ms
            ));
        }
        if !(1..=1000).contains(&self.integration_tokens.per_user) {
            return bad(format!(
                "integration_tokens.per_user must be between 1 and 1000 (got {})",
                self.integration_tokens.per_user
            ));
        }
        if !(1..=10_000_000).contains(&self.session_cache.entries) {
            return bad("session_cache.entries must be between 1 and 10000000".into());
        }
        if !(1..=1000).contains(&self.database.max_connections) {
            return bad("database.max_connections must be between 1 and 1000".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad(format!(
                "log.format must be \"text\" or \"json\", not {:?}",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad(format!(
                "log.level {:?} is not a valid filter",
                self.log.level
            ));
        }
        self.hash_params()
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("password_hash: {e}")))?;
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!(
                "server.listen {:?} is not an address such as 127.0.0.1:8080",
                self.server.listen
            ));
        }
        self.trusted_proxies()?;
        self.address_limit()?;
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            return bad("server.tls_cert and server.tls_key must be set together".into());
        }
        if !self.server.public_url.is_empty()
            && crate::domain::validate::http_url(&self.server.public_url).is_err()
        {
            return bad(format!(
                "server.public_url {:?} is not an http:// or https:// URL",
                self.server.public_url
            ));
        }
        if !(1024..=100 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return bad("server.max_body_bytes must be between 1024 and 104857600".into());
        }
        if !(1..=600).contains(&self.server.header_timeout_seconds)
            || !(1..=3600).contains(&self.server.request_timeout_seconds)
        {
            return bad(
                "server.header_timeout_seconds must be between 1 and 600 and \
                 server.request_timeout_seconds between 1 and 3600"
                    .into(),
            );
        }
        if !(1..=100_000).contains(&self.server.max_connections) {
            return bad("server.max_connections must be between 1 and 100000".into());
        }
        let t = &self.server.metrics_token.0;
        if !t.is_empty() && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad(
                "server.metrics_token must be at least 16 characters, without spaces".into(),
            );
        }
        if !(1..=300).contains(&self.delegated_auth.timeout_seconds) {
            return bad("delegated_auth.timeout_seconds must be between 1 and 300".into());
        }
        if !self.database.url.is_empty() && !crate::store::is_postgres_url(&self.database.url) {
            return bad(
                "database.url must be empty (SQLite in the data dir) or a postgres:// URL".into(),
            );
        }
        Ok(())
    }
}
