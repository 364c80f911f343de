//! The per-address limit on failed logins: besides each user's lockout (R-L5), an address that
//! fails too often within a window is refused — before any user is looked up and before any
//! password hash runs — until that window ends. An attacker spraying passwords over many
//! usernames from a few addresses gets `failures` guesses per address per window, and the
//! requests beyond cost a row read, not a hash, so they cannot starve other addresses' logins.
//!
//! Addresses are counted as IPv4 addresses and IPv6 /64 prefixes (one customer's LAN or one
//! host usually holds a whole /64; counting single IPv6 addresses would let one host rotate
//! through 2^64 of them).

use crate::domain::ip::{IpRange, any_contains, canonical};
use std::net::{IpAddr, Ipv6Addr};
use time::{Duration, OffsetDateTime};

/// The configured limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressLimit {
    /// Failed logins an address may make in one window; 0 turns the limit off.
    pub failures: u32,
    pub window: Duration,
    /// Addresses never limited (a company's egress NAT that the operator vouches for).
    pub exempt: Vec<IpRange>,
}

impl Default for AddressLimit {
    fn default() -> Self {
        AddressLimit {
            failures: 100,
            window: Duration::minutes(15),
            exempt: Vec::new(),
        }
    }
}

/// What the store holds about one address: its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressWindow {
    pub started: OffsetDateTime,
    pub failures: u32,
}

impl AddressLimit {
    /// The key this address is counted under, or `None` when it is not limited.
    pub fn key(&self, ip: IpAddr) -> Option<String> {
        if self.failures == 0 || any_contains(&self.exempt, ip) {
            return None;
        }
        Some(address_key(ip))
    }

    /// When the address may try again, if it is refused now: it has used up its failures and
    /// its window has not ended.
    pub fn refused_until(
        &self,
        window: Option<AddressWindow>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let w = window?;
        let ends = w.started + self.window;
        (self.failures > 0 && w.failures >= self.failures && now < ends).then_some(ends)
    }

    /// [`AddressLimit::refused_until`], counting the address's attempts still in flight on this
    /// node as failures to come: without them, a burst sent all at once would pass the check
    /// before any of its failures was counted. Refused only because of attempts in flight, the
    /// address may try again in a second, when they have settled.
    pub fn admit(
        &self,
        window: Option<AddressWindow>,
        in_flight: u32,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        if let Some(until) = self.refused_until(window, now) {
            return Some(until);
        }
        let counted = window
            .filter(|w| now < w.started + self.window)
            .map_or(0, |w| w.failures);
        (self.failures > 0 && counted.saturating_add(in_flight) >= self.failures)
            .then(|| now + Duration::seconds(1))
    }

    /// A window that started at or before this instant has ended: the next failure starts a new
    /// one.
    pub fn expired_before(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.window
    }
}

/// An IPv4 address as itself (IPv4-mapped IPv6 included); an IPv6 address as its /64.
pub fn address_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minute)
    }

    fn limit() -> AddressLimit {
        AddressLimit {
            failures: 3,
            window: Duration::minutes(15),
            exempt: vec![IpRange::parse("10.0.0.0/8", None).unwrap()],
        }
    }

    #[test]
    fn keys_are_ipv4_addresses_and_ipv6_prefixes() {
        let l = limit();
        assert_eq!(
            l.key("203.0.113.7".parse().unwrap()).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            l.key("::ffff:203.0.113.7".parse().unwrap()).as_deref(),
            Some("203.0.113.7")
        );
        // Two addresses of one /64 share a key; the next /64 does not.
        let a = l.key("2001:db8:1:2::1".parse().unwrap());
        let b = l.key("2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        let c = l.key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn exempt_addresses_and_a_zero_limit_are_not_counted() {
        assert_eq!(limit().key("10.1.2.3".parse().unwrap()), None);
        let off = AddressLimit {
            failures: 0,
            ..limit()
        };
        assert_eq!(off.key("203.0.113.7".parse().unwrap()), None);
    }

    #[test]
    fn an_address_is_refused_from_its_last_allowed_failure_until_the_window_ends() {
        let l = limit();
        let w = |failures| {
            Some(AddressWindow {
                started: at(0),
                failures,
            })
        };
        assert_eq!(l.refused_until(None, at(1)), None);
        assert_eq!(l.refused_until(w(2), at(1)), None);
        assert_eq!(l.refused_until(w(3), at(1)), Some(at(15)));
        assert_eq!(l.refused_until(w(9), at(14)), Some(at(15)));
        // The window has ended: the address may try again.
        assert_eq!(l.refused_until(w(9), at(15)), None);
        assert_eq!(l.expired_before(at(15)), at(0));
    }

    #[test]
    fn attempts_in_flight_count_towards_the_limit_until_they_settle() {
        let l = limit();
        let w = |failures| {
            Some(AddressWindow {
                started: at(0),
                failures,
            })
        };
        // Three allowed: with none counted, two in flight leave room for one more.
        assert_eq!(l.admit(None, 2, at(1)), None);
        // A burst: the fourth attempt while three are in flight waits a second.
        assert_eq!(l.admit(None, 3, at(1)), Some(at(1) + Duration::seconds(1)));
        assert_eq!(l.admit(w(1), 2, at(1)), Some(at(1) + Duration::seconds(1)));
        // Counted failures over the limit refuse until the window ends, in flight or not.
        assert_eq!(l.admit(w(3), 0, at(1)), Some(at(15)));
        // An ended window counts nothing.
        assert_eq!(l.admit(w(2), 2, at(16)), None);
        let off = AddressLimit {
            failures: 0,
            ..limit()
        };
        assert_eq!(off.admit(None, 1000, at(1)), None);
    }
}
