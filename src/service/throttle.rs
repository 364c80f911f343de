//! The per-address failed-login limit (`domain::throttle`) against the shared store: the check
//! every login and verification makes before it checks anything (with this node's attempts in
//! flight; a login reads the address's row in the statement that reads its user), the count of
//! a failure in the attempt's transaction, and the operator's view (`keyward address-limit`).

use super::{Actor, Result, ServiceError, Services, fmt_ms};
use crate::clock::{from_ms, ms};
use crate::domain::throttle::{AddressWindow, address_key};
use crate::store::{Conn, address_failures};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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

/// Attempts in progress on this node, per address key: they count towards the limit until
/// their failure (if it is one) is in the database, so a burst sent all at once cannot pass the
/// check before any of its failures was counted. An entry goes when its last attempt ends, so
/// the map holds only the addresses with attempts in progress.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<String, u32>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, key: &str) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// Registers an attempt about to be checked; how many others were registered then.
    fn register(&self, key: &str) -> u32 {
        let mut map = self.lock();
        let n = map.entry(key.to_owned()).or_insert(0);
        *n += 1;
        *n - 1
    }
}

/// An attempt registered with [`InFlight`] from before its check until it is dropped — after
/// its failure, if any, was committed.
pub(crate) struct Admitted<'a> {
    held: Option<(&'a InFlight, String)>,
}

impl Admitted<'_> {
    /// The address's key; None for an address the limit does not apply to.
    fn key(&self) -> Option<&str> {
        self.held.as_ref().map(|(_, key)| key.as_str())
    }
}

/// An attempt registered and not yet decided ([`Services::register_attempt`]).
pub(crate) struct Registered<'a> {
    /// Attempts from the address registered before this one.
    in_flight: u32,
    attempt: Admitted<'a>,
}

impl Registered<'_> {
    /// The key of the address's row to read; None when the limit does not apply to it.
    pub(crate) fn key(&self) -> Option<&str> {
        self.attempt.key()
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some((in_flight, key)) = self.held.take() {
            let mut map = in_flight.lock();
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

pub(crate) enum Admission<'a> {
    Admitted(Admitted<'a>),
    /// Over the limit: refused until then, before anything was checked.
    Refused(OffsetDateTime),
}

impl Services {
    /// The limit's check, made before a login or a verification looks anything up: one read of
    /// the address's row, plus this node's attempts from the address registered before this one.
    ///
    /// The attempt registers (and counts those registered before it) *before* it reads the
    /// row. Every earlier attempt is then either still registered, so counted, or ended, and an
    /// attempt ends only after its failure is committed, so the read sees it: no attempt is
    /// admitted past the limit. One that commits during the read is counted twice, and one
    /// still being checked counts even if it is then refused: at the limit, under concurrency,
    /// the check may over-count, never under-count.
    pub(crate) async fn admit_address(&self, ip: IpAddr) -> Result<Admission<'_>> {
        let attempt = self.register_attempt(ip);
        let row = match attempt.key() {
            Some(key) => {
                let mut c = self.db.conn().await?;
                address_failures::get(&mut c.as_conn(), key).await?
            }
            None => None,
        };
        Ok(self.admission(attempt, row).await)
    }

    /// Whether the address is over its limit now: the check of a request that is no login
    /// itself (a client-authenticated grant, introspection) before it authenticates anything,
    /// so a guessed client secret is refused like a guessed password. `Some(until)`: refused.
    pub async fn address_refused(&self, ip: IpAddr) -> Result<Option<OffsetDateTime>> {
        Ok(match self.admit_address(ip).await? {
            Admission::Admitted(_) => None,
            Admission::Refused(until) => Some(until),
        })
    }

    /// [`Services::admit_address`]'s first half, for a caller that reads the address's row
    /// together with something else (a login reads it with the user): registers the attempt.
    /// Read the row of [`Registered::key`] after this, then decide with
    /// [`Services::admission`].
    pub(crate) fn register_attempt(&self, ip: IpAddr) -> Registered<'_> {
        let Some(key) = self.address_limit.key(ip) else {
            return Registered {
                in_flight: 0,
                attempt: Admitted { held: None },
            };
        };
        let in_flight = self.in_flight.register(&key);
        Registered {
            in_flight,
            attempt: Admitted {
                held: Some((&self.in_flight, key)),
            },
        }
    }

    /// [`Services::admit_address`]'s second half: the decision, from the address's
    /// `(window_start, failures)` row read after the attempt registered.
    pub(crate) async fn admission<'a>(
        &self,
        registered: Registered<'a>,
        row: Option<(i64, i64)>,
    ) -> Admission<'a> {
        let Registered { in_flight, attempt } = registered;
        if attempt.key().is_none() {
            return Admission::Admitted(attempt);
        }
        let window = row.map(|(started, failures)| AddressWindow {
            started: from_ms(started),
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        });
        let now = self.now();
        match self.address_limit.admit(window, in_flight, now) {
            Some(until) => {
                // The key outlives the attempt's registration, which ends here.
                let key = attempt.key().unwrap_or_default().to_owned();
                drop(attempt);
                self.sample_refusal(&key, until, window, now).await;
                Admission::Refused(until)
            }
            None => Admission::Admitted(attempt),
        }
    }

    /// Counts one refused attempt in one of `REFUSED_SAMPLE` cases, as `REFUSED_SAMPLE`; best
    /// effort: a refusal is answered whether or not its count is written.
    async fn sample_refusal(
        &self,
        key: &str,
        until: OffsetDateTime,
        window: Option<AddressWindow>,
        now: OffsetDateTime,
    ) {
        // Refusals because of attempts in flight are not the limit's: they are not counted.
        if self.address_limit.refused_until(window, now) != Some(until)
            || !rand::random::<u32>().is_multiple_of(REFUSED_SAMPLE as u32)
        {
            return;
        }
        let written = async {
            let mut c = self.db.conn().await?;
            address_failures::record_refused(&mut c.as_conn(), key, REFUSED_SAMPLE).await?;
            Ok::<_, ServiceError>(())
        }
        .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "could not count a refused attempt");
        }
    }

    /// Counts one failed login or wrong verification code against its source address, in the
    /// attempt's own transaction (the address's row is the last it locks), and says so in the
    /// log when this failure engages the limit.
    pub(crate) async fn count_address_failure(&self, c: &mut Conn<'_>, ip: IpAddr) -> Result<()> {
        let Some(key) = self.address_limit.key(ip) else {
            return Ok(());
        };
        let now = self.now();
        let failures = address_failures::record_failure(
            c,
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

    /// Attempts from this address in progress on this node (tests).
    pub fn address_in_flight(&self, ip: IpAddr) -> u32 {
        self.address_limit
            .key(ip)
            .map_or(0, |k| self.in_flight.count(&k))
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
            &mut c.as_conn(),
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
        if !address_failures::clear(&mut c.as_conn(), &key).await? {
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
            &mut c.as_conn(),
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
