//! The per-address failed-login limit (`domain::throttle`) against the shared store: the check
//! every login and verification makes before it looks anything up, the count after a failure,
//! and the operator's view (`keyward address-limit`).

use super::{Actor, Result, ServiceError, Services, fmt_ms};
use crate::domain::throttle::{AddressWindow, address_key};
use crate::store::{address_failures, from_ms, ms};
use std::net::IpAddr;
use time::OffsetDateTime;

/// An address over its limit, for `keyward address-limit list`.
#[derive(Debug, Clone)]
pub struct LimitedAddress {
    /// An IPv4 address or an IPv6 /64.
    pub address: String,
    pub failures: i64,
    /// Attempts refused since the limit engaged (estimated: see docs/security.md).
    pub refused: i64,
    pub window_started: String,
    /// When it may log in again, if it is refused now.
    pub refused_until: Option<String>,
}

/// How often a refused attempt is written: one in this many, counting this many. A flood of
/// refused requests then costs reads; the count stays an unbiased estimate.
const REFUSED_SAMPLE: i64 = 64;

impl Services {
    /// When this address may try again, if it is refused now.
    pub(crate) async fn address_refused(&self, ip: IpAddr) -> Result<Option<OffsetDateTime>> {
        let Some(key) = self.address_limit.key(ip) else {
            return Ok(None);
        };
        let mut c = self.db.conn().await?;
        let window = address_failures::get(&mut c.c(), &key)
            .await?
            .map(|(started, failures)| AddressWindow {
                started: from_ms(started),
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
            });
        let until = self.address_limit.refused_until(window, self.now());
        if until.is_some() && rand::random::<u32>() % (REFUSED_SAMPLE as u32) == 0 {
            address_failures::record_refused(&mut c.c(), &key, REFUSED_SAMPLE).await?;
        }
        Ok(until)
    }

    /// Counts one failed login or wrong verification code against its source address, in a
    /// statement of its own after the attempt's transaction (no lock is held with it), and
    /// says so in the log when this failure engages the limit.
    pub(crate) async fn count_address_failure(&self, ip: IpAddr) -> Result<()> {
        let Some(key) = self.address_limit.key(ip) else {
            return Ok(());
        };
        let now = self.now();
        let mut c = self.db.conn().await?;
        let failures = address_failures::record_failure(
            &mut c.c(),
            &key,
            ms(now),
            ms(self.address_limit.expired_before(now)),
        )
        .await?;
        if failures == i64::from(self.address_limit.failures) {
            tracing::warn!(
                address = %key,
                failures,
                window_seconds = self.address_limit.window.whole_seconds(),
                "address over the failed-login limit: its logins are refused until its window ends"
            );
            self.metrics.count_address_limited();
        }
        Ok(())
    }

    /// Addresses refused now, or with at least `min_failures` in their current window.
    pub async fn limited_addresses(
        &self,
        actor: &Actor,
        min_failures: u32,
    ) -> Result<Vec<LimitedAddress>> {
        require_operator(actor)?;
        let now = self.now();
        let limit = &self.address_limit;
        let min = if min_failures == 0 {
            limit.failures.max(1)
        } else {
            min_failures
        };
        let mut c = self.db.conn().await?;
        let rows = address_failures::list(
            &mut c.c(),
            ms(limit.expired_before(now)),
            i64::from(min),
            1000,
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let window = AddressWindow {
                    started: from_ms(r.window_start),
                    failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
                };
                LimitedAddress {
                    refused_until: limit
                        .refused_until(Some(window), now)
                        .map(|t| fmt_ms(ms(t))),
                    address: r.address,
                    failures: r.failures,
                    refused: r.refused,
                    window_started: fmt_ms(r.window_start),
                }
            })
            .collect())
    }

    /// Lets an address log in again at once (an office NAT that a script's wrong password got
    /// refused). `address` is an IP address; an IPv6 address clears its /64.
    pub async fn clear_address(&self, actor: &Actor, address: &str) -> Result<String> {
        require_operator(actor)?;
        let ip: IpAddr = address
            .trim()
            .trim_end_matches("/64")
            .parse()
            .map_err(|_| ServiceError::Invalid(format!("{address:?} is not an IP address")))?;
        let key = address_key(ip);
        let mut c = self.db.conn().await?;
        if !address_failures::clear(&mut c.c(), &key).await? {
            return Err(ServiceError::NotFound(format!(
                "{key} has no failed logins on record"
            )));
        }
        tracing::info!(address = %key, by = %actor.audit_name(), "address failed-login count cleared");
        Ok(key)
    }

    /// Removes the rows of windows that have ended (housekeeping).
    pub async fn purge_address_failures(&self) -> Result<u64> {
        let mut c = self.db.conn().await?;
        Ok(address_failures::purge(
            &mut c.c(),
            ms(self.address_limit.expired_before(self.now())),
        )
        .await?)
    }
}

/// The limit is the deployment's, not an org's: only the operator (the command line) sees and
/// clears it.
fn require_operator(actor: &Actor) -> Result<()> {
    match actor {
        Actor::Cli(_) | Actor::System => Ok(()),
        Actor::User { .. } => Err(ServiceError::Refused(
            "only the server's operator (the keyward command line) can do this".into(),
        )),
    }
}
