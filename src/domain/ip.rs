//! IP ranges as Salesforce has them (R-M3): a start and an end address of the same family,
//! inclusive. A CIDR (`10.0.0.0/8`, `2001:db8::/32`) is accepted as input and becomes the
//! equivalent start–end pair.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRangeError {
    #[error("invalid IP address {0:?}")]
    BadAddress(String),
    #[error("invalid CIDR {0:?}")]
    BadCidr(String),
    #[error("start {0} and end {1} are not the same IP version")]
    MixedFamilies(IpAddr, IpAddr),
    #[error("start {0} is after end {1}")]
    Reversed(IpAddr, IpAddr),
    #[error("give either START END or a single CIDR, not a CIDR and an END")]
    CidrWithEnd,
    #[error(
        "trusted IP range {0} is too wide: at most 33554432 IPv4 addresses (a /7) or a /48 of IPv6"
    )]
    TooWide(IpRange),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack socket reports for an IPv4
/// peer) are compared as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn parse_addr(s: &str) -> Result<IpAddr, IpRangeError> {
    s.trim()
        .parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| IpRangeError::BadAddress(s.chars().take(60).collect()))
}

impl IpRange {
    pub fn new(start: IpAddr, end: IpAddr) -> Result<IpRange, IpRangeError> {
        let (start, end) = (canonical(start), canonical(end));
        match (start, end) {
            (IpAddr::V4(a), IpAddr::V4(b)) if u32::from(a) > u32::from(b) => {
                Err(IpRangeError::Reversed(start, end))
            }
            (IpAddr::V6(a), IpAddr::V6(b)) if u128::from(a) > u128::from(b) => {
                Err(IpRangeError::Reversed(start, end))
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Ok(IpRange { start, end })
            }
            _ => Err(IpRangeError::MixedFamilies(start, end)),
        }
    }

    /// `parse("10.0.0.1", Some("10.0.0.9"))`, `parse("10.0.0.0/8", None)` or a single address,
    /// `parse("10.0.0.1", None)`: the range of that one address.
    pub fn parse(start: &str, end: Option<&str>) -> Result<IpRange, IpRangeError> {
        if start.contains('/') {
            if end.is_some() {
                return Err(IpRangeError::CidrWithEnd);
            }
            let net: ipnet::IpNet = start
                .trim()
                .parse()
                .map_err(|_| IpRangeError::BadCidr(start.chars().take(60).collect()))?;
            return IpRange::new(net.network(), net.broadcast());
        }
        let start = parse_addr(start)?;
        IpRange::new(start, end.map(parse_addr).transpose()?.unwrap_or(start))
    }

    pub fn start(&self) -> IpAddr {
        self.start
    }

    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// Whether `ip` is in the range; [`UNKNOWN_CLIENT`] is in none.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip == UNKNOWN_CLIENT {
            return false;
        }
        match (self.start, self.end, canonical(ip)) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => {
                (u32::from(a)..=u32::from(b)).contains(&u32::from(x))
            }
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => {
                (u128::from(a)..=u128::from(b)).contains(&u128::from(x))
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl IpRange {
    /// How many addresses the range spans.
    pub fn size(&self) -> u128 {
        match (self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => u128::from(u32::from(b) - u32::from(a)) + 1,
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(b) - u128::from(a)).saturating_add(1),
            _ => 0,
        }
    }

    /// A trusted IP range lets the password alone log in from anywhere inside it, so its size
    /// is capped as in Salesforce: at most 33,554,432 IPv4 addresses (a /7), and a /48 of IPv6.
    /// (Profile login IP ranges are not capped: they restrict rather than trust.)
    pub fn check_trusted_size(&self) -> Result<(), IpRangeError> {
        let max = match self.start {
            IpAddr::V4(_) => MAX_TRUSTED_V4,
            IpAddr::V6(_) => MAX_TRUSTED_V6,
        };
        if self.size() > max {
            return Err(IpRangeError::TooWide(*self));
        }
        Ok(())
    }
}

pub const MAX_TRUSTED_V4: u128 = 1 << 25;
pub const MAX_TRUSTED_V6: u128 = 1 << 80;

pub fn any_contains(ranges: &[IpRange], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

/// Why `ip` is not a public Internet address, for an outbound call that must not reach the
/// server's own network (the delegated-authentication URL): loopback, unspecified, private
/// (RFC 1918), shared (RFC 6598, carrier-grade NAT), link-local, unique-local (RFC 4193),
/// site-local, multicast, broadcast, "this network" (0.0.0.0/8), reserved (240.0.0.0/4),
/// special-purpose (192.0.0.0/24, 198.18.0.0/15, 192.88.99.0/24), discard-only (100::/64) and
/// documentation — also inside IPv6 forms that reach an IPv4 address (IPv4-mapped, -translated
/// and -compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16) and Teredo
/// (2001::/32), whose IPv4 end cannot be told from outside. `None`: public.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let o = v6.octets();
            let v4 = |a: usize| std::net::Ipv4Addr::new(o[a], o[a + 1], o[a + 2], o[a + 3]);
            if seg[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return v4_class(v4(12)).or(Some("IPv4-compatible"));
            }
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return v4_class(v4(12));
            }
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
                return Some("local NAT64");
            }
            if seg[0] == 0x2002 {
                return v4_class(v4(2));
            }
            if seg[0] == 0x2001 && seg[1] == 0 {
                return Some("Teredo");
            }
            if seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0 {
                return v4_class(v4(12)).or(Some("IPv4-translated"));
            }
            if seg[..4] == [0x100, 0, 0, 0] {
                return Some("discard-only");
            }
            if seg[0] == 0x2001 && seg[1] == 0xdb8 {
                return Some("documentation");
            }
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg[0] & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else {
                None
            }
        }
    }
}

fn v4_class(ip: std::net::Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("shared (carrier-grade NAT)")
    } else if o[0] >= 240 {
        Some("reserved")
    } else if o[..3] == [192, 0, 0] || (o[0] == 198 && o[1] & 0xfe == 18) || o[..3] == [192, 88, 99]
    {
        Some("special-purpose")
    } else if matches!(o[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]) {
        Some("documentation")
    } else {
        None
    }
}

/// The client address of a request whose trusted proxy did not say who the client is (no
/// `X-Forwarded-For`, or an entry it wrote that cannot be read): `::`, which no connection has
/// and no range contains — so such a request is inside no trusted or login range and never
/// exempt from the address limit. Failing closed: taking the proxy for the client would put
/// every such request inside whatever range trusts the proxy's address.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// R-L11: the client's address. The TCP peer, unless the peer is one of `trusted_proxies`;
/// then the `X-Forwarded-For` entries (every header's, in order) are read from the right, each
/// trusted proxy is skipped, and the first address that is not a trusted proxy is the client.
/// A forwarded header from any other peer is ignored, so nobody can choose their own address.
/// A trusted proxy that sent no entry, or an unparseable entry before the client was found
/// (a trusted proxy wrote everything to the right of the client), gives [`UNKNOWN_CLIENT`].
/// When every entry is a trusted proxy, the left-most is the client (a host inside the
/// proxies' range, say).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: &[IpRange]) -> IpAddr {
    let peer = canonical(peer);
    if !any_contains(trusted_proxies, peer) {
        return peer;
    }
    let mut client = UNKNOWN_CLIENT;
    let entries = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        let Some(ip) = parse_forwarded_entry(entry) else {
            return UNKNOWN_CLIENT;
        };
        client = ip;
        if !any_contains(trusted_proxies, ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    e.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_l11_client_ip_trusts_forwarded_for_only_from_trusted_proxies() {
        let proxies = vec![
            IpRange::parse("10.0.0.0/8", None).unwrap(),
            IpRange::parse("::1", Some("::1")).unwrap(),
        ];
        let cases: &[(&str, &[&str], &str, &str)] = &[
            (
                "203.0.113.9",
                &["10.1.1.1"],
                "203.0.113.9",
                "untrusted peer: header ignored",
            ),
            ("203.0.113.9", &[], "203.0.113.9", "no header"),
            (
                "10.0.0.2",
                &[],
                "::",
                "trusted peer without a header: unknown, not the proxy",
            ),
            ("10.0.0.2", &[""], "::", "an empty header: unknown"),
            ("10.0.0.2", &["junk"], "::", "an unreadable header: unknown"),
            ("10.0.0.2", &["198.51.100.7"], "198.51.100.7", "one proxy"),
            (
                "10.0.0.2",
                &["1.1.1.1, 198.51.100.7, 10.0.0.5"],
                "198.51.100.7",
                "right-most untrusted",
            ),
            (
                "10.0.0.2",
                &["1.1.1.1", "198.51.100.7"],
                "198.51.100.7",
                "several headers in order",
            ),
            (
                "10.0.0.2",
                &["10.0.0.3, 10.0.0.4"],
                "10.0.0.3",
                "all trusted: the left-most",
            ),
            (
                "10.0.0.2",
                &["junk, 198.51.100.7"],
                "198.51.100.7",
                "junk left of the client is never reached",
            ),
            (
                "10.0.0.2",
                &["198.51.100.7, junk"],
                "::",
                "junk written by our proxy: unknown",
            ),
            (
                "10.0.0.2",
                &["198.51.100.7, junk, 10.0.0.3"],
                "::",
                "junk behind a second proxy: unknown",
            ),
            (
                "10.0.0.2",
                &["198.51.100.7:5555"],
                "198.51.100.7",
                "address with a port",
            ),
            (
                "10.0.0.2",
                &["[2001:db8::7]:443"],
                "2001:db8::7",
                "bracketed IPv6 with a port",
            ),
            ("::1", &["2001:db8::7"], "2001:db8::7", "IPv6 proxy"),
            (
                "::ffff:10.0.0.2",
                &["198.51.100.7"],
                "198.51.100.7",
                "IPv4-mapped peer is the IPv4 proxy",
            ),
        ];
        for (peer, headers, want, why) in cases {
            let got = client_ip(peer.parse().unwrap(), headers, &proxies);
            assert_eq!(got, want.parse::<IpAddr>().unwrap(), "{why}");
        }
        // The unknown client is inside no range, however wide.
        let everything = IpRange::parse("::", Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(!everything.unwrap().contains(UNKNOWN_CLIENT));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_named_and_public_ones_are_not() {
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local"),
            ("fc12::1", "unique-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:0101::1", "private"),
            ("::7f00:1", "loopback"),
            ("::a00:1", "private"),
            ("::808:808", "IPv4-compatible"),
            ("fec0::1", "site-local"),
            ("64:ff9b:1::a", "local NAT64"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("240.1.2.3", "reserved"),
            ("192.0.0.8", "special-purpose"),
            ("198.19.0.1", "special-purpose"),
            ("192.88.99.1", "special-purpose"),
            ("203.0.113.7", "documentation"),
            ("2001:db8::1", "documentation"),
            ("::ffff:0:a00:1", "private"),
            ("100::1", "discard-only"),
        ] {
            assert_eq!(internal_class(ip(addr)), Some(class), "{addr}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "198.20.0.1",
            "192.0.1.1",
            "2001:4860::8888",
        ] {
            assert_eq!(internal_class(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn r_m3_start_end_pairs_are_inclusive() {
        let r = IpRange::parse("10.0.0.5", Some("10.0.0.9")).unwrap();
        assert!(!r.contains(ip("10.0.0.4")));
        assert!(r.contains(ip("10.0.0.5")));
        assert!(r.contains(ip("10.0.0.9")));
        assert!(!r.contains(ip("10.0.0.10")));
        assert!(!r.contains(ip("::1")));
    }

    #[test]
    fn r_m3_cidr_input_becomes_a_range() {
        let r = IpRange::parse("192.168.4.0/22", None).unwrap();
        assert_eq!(r.to_string(), "192.168.4.0-192.168.7.255");
        let r = IpRange::parse("2001:db8::/32", None).unwrap();
        assert_eq!(r.start(), ip("2001:db8::"));
        assert_eq!(r.end(), ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert!(r.contains(ip("2001:db8:1::5")));
        assert!(!r.contains(ip("2001:db9::")));
        // A host bits in the CIDR are ignored, as `ip route` does.
        let r = IpRange::parse("10.1.2.3/8", None).unwrap();
        assert_eq!(r.to_string(), "10.0.0.0-10.255.255.255");
    }

    #[test]
    fn r_l2_trusted_ranges_are_capped() {
        assert!(
            IpRange::parse("10.0.0.0/8", None)
                .unwrap()
                .check_trusted_size()
                .is_ok()
        );
        assert!(
            IpRange::parse("10.0.0.0/7", None)
                .unwrap()
                .check_trusted_size()
                .is_ok()
        );
        assert!(
            IpRange::parse("10.0.0.0/6", None)
                .unwrap()
                .check_trusted_size()
                .is_err()
        );
        assert!(
            IpRange::parse("0.0.0.0/0", None)
                .unwrap()
                .check_trusted_size()
                .is_err()
        );
        assert!(
            IpRange::parse("2001:db8::/48", None)
                .unwrap()
                .check_trusted_size()
                .is_ok()
        );
        assert!(
            IpRange::parse("2001:db8::/47", None)
                .unwrap()
                .check_trusted_size()
                .is_err()
        );
        assert!(
            IpRange::parse("::/0", None)
                .unwrap()
                .check_trusted_size()
                .is_err()
        );
        assert_eq!(
            IpRange::parse("10.0.0.1", Some("10.0.0.1")).unwrap().size(),
            1
        );
        assert_eq!(IpRange::parse("::/0", None).unwrap().size(), u128::MAX);
    }

    #[test]
    fn r_m3_ipv4_mapped_ipv6_peers_match_ipv4_ranges() {
        let r = IpRange::parse("127.0.0.1", Some("127.0.0.1")).unwrap();
        assert!(r.contains(ip("::ffff:127.0.0.1")));
        let r = IpRange::parse("::ffff:10.0.0.1", Some("10.0.0.2")).unwrap();
        assert_eq!(r.start(), ip("10.0.0.1"));
    }

    #[test]
    fn a_single_address_is_a_range_of_one() {
        for a in ["10.0.0.3", "2001:db8::1"] {
            let r = IpRange::parse(a, None).unwrap();
            assert_eq!((r.start(), r.end()), (ip(a), ip(a)));
        }
    }

    #[test]
    fn r_m3_invalid_ranges_are_refused() {
        use IpRangeError::*;
        type Case<'a> = (&'a str, Option<&'a str>, fn(&IpRangeError) -> bool);
        let cases: [Case; 7] = [
            ("10.0.0.9", Some("10.0.0.1"), |e| matches!(e, Reversed(..))),
            ("10.0.0.1", Some("::1"), |e| matches!(e, MixedFamilies(..))),
            ("10.0.0.256", Some("10.0.0.1"), |e| {
                matches!(e, BadAddress(..))
            }),
            ("10.0.0.0/33", None, |e| matches!(e, BadCidr(..))),
            ("10.0.0.0/8", Some("10.0.0.1"), |e| matches!(e, CidrWithEnd)),
            ("10.0.0.300", None, |e| matches!(e, BadAddress(..))),
            ("example.com", Some("10.0.0.1"), |e| {
                matches!(e, BadAddress(..))
            }),
        ];
        for (start, end, ok) in cases {
            let err = IpRange::parse(start, end).unwrap_err();
            assert!(ok(&err), "{start} {end:?}: {err}");
        }
    }
}
