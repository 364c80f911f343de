//! Integration tokens: one named API credential per integration, used as the password alone.
//! The format lets a machine find a leaked one: `kwi_`, 30 random base62 characters, then the
//! CRC-32 of the first 34 characters (prefix and random part) in base62, as the security token
//! writes its check characters — a typo or a truncation is told from a token without a lookup.

use super::ids::BASE62;
use super::ip::any_contains;
use super::login::{
    LockoutEffect, LoginContext, LoginDecision, LoginOutcome, LoginStatus, LoginSubject,
};
use super::token::checksum;
use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

pub const PREFIX: &str = "kwi_";
/// `kwi_` + 30 random + 6 check characters.
pub const TOKEN_LEN: usize = 40;
const RANDOM_LEN: usize = 30;
const CHECKED_LEN: usize = TOKEN_LEN - 6;

/// An integration token. Never printed: `Debug`/`Display` show `***`; the value leaves the
/// process only in the mail to its user.
#[derive(Clone, PartialEq, Eq)]
pub struct IntegrationToken(String);

impl IntegrationToken {
    /// 30 characters from a CSPRNG (178 bits) after the prefix, then the check characters.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> IntegrationToken {
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(PREFIX);
        for _ in 0..RANDOM_LEN {
            s.push(BASE62[rng.gen_range(0..62)] as char);
        }
        let check = checksum(s.as_bytes());
        s.push_str(&check);
        IntegrationToken(s)
    }

    /// Accepts only a well-formed integration token (prefix, length, alphabet and checksum).
    pub fn parse(value: &str) -> Option<IntegrationToken> {
        looks_like_integration_token(value).then(|| IntegrationToken(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IntegrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for IntegrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Whether a password field is meant as an integration token: it starts with `kwi_`, in any
/// case, after any leading white space. No password may start so (`domain::policy`), so such a
/// field is never a password: a mangled token is refused as a wrong token, not counted as a
/// wrong password, and never sent to a delegated-authentication endpoint.
pub fn meant_as_integration_token(field: &str) -> bool {
    field
        .trim_start()
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// True when `s` is exactly an integration token: `kwi_`, 36 characters of `[A-Za-z0-9]`, the
/// last six the checksum of everything before them.
pub fn looks_like_integration_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.starts_with(PREFIX)
        && s.bytes()
            .skip(PREFIX.len())
            .all(|b| b.is_ascii_alphanumeric())
        && checksum(&s.as_bytes()[..CHECKED_LEN]) == s[CHECKED_LEN..]
}

/// Where an integration token stands at an instant (epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It logs in.
    Active,
    /// Rotated: it still logs in until its successor's grace window ends.
    InGrace,
    /// Past its expiry.
    Expired,
    /// Revoked, or rotated and past the grace window.
    Revoked,
}

/// The lifecycle of one token as stored: when it expires, and when (if ever) it was revoked or
/// replaced by a successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub replaced_at: Option<i64>,
    /// When the grace window was set to end at the rotation: a window the org lengthens later
    /// does not bring back a token that had stopped.
    pub grace_until: Option<i64>,
}

impl Lifecycle {
    /// Its standing at `now`, with the org's grace window after a rotation. Revocation wins
    /// over everything; a rotated token stops at the end of the window — the org's window as
    /// it is now, or as it was at the rotation if that was shorter — or at its own expiry,
    /// whichever is first.
    pub fn standing(&self, now: i64, grace_ms: i64) -> Standing {
        if self.revoked_at.is_some_and(|r| r <= now) {
            return Standing::Revoked;
        }
        if now >= self.expires_at {
            return Standing::Expired;
        }
        let grace_end = |r: i64| {
            r.saturating_add(grace_ms)
                .min(self.grace_until.unwrap_or(i64::MAX))
        };
        match self.replaced_at {
            Some(r) if now >= grace_end(r) => Standing::Revoked,
            Some(r) if now >= r => Standing::InGrace,
            _ => Standing::Active,
        }
    }

    /// Whether a login may use it at `now`.
    pub fn logs_in(&self, now: i64, grace_ms: i64) -> bool {
        matches!(
            self.standing(now, grace_ms),
            Standing::Active | Standing::InGrace
        )
    }
}

const DAY_MS: i64 = 86_400_000;

/// The days before expiry that a token's user is reminded: distinct, 1 to 365, at most five,
/// largest first. Written `14,3,1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u32>", into = "Vec<u32>")]
pub struct ReminderDays(Vec<u32>);

impl Default for ReminderDays {
    fn default() -> Self {
        ReminderDays(vec![14, 3, 1])
    }
}

impl ReminderDays {
    /// No reminders at all.
    pub fn none() -> ReminderDays {
        ReminderDays(Vec::new())
    }

    /// `14,3,1` (any order, spaces allowed); an empty string is no reminders.
    pub fn parse(s: &str) -> Result<ReminderDays, String> {
        let days = s
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<u32>()
                    .map_err(|_| format!("reminder days must be whole numbers of days (got {d:?})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ReminderDays::try_from(days)
    }

    pub fn days(&self) -> &[u32] {
        &self.0
    }

    /// When the next reminder after `after` falls due for a token expiring at `expires_at`
    /// (epoch milliseconds); None when no reminder is left. Reminders whose time passed before
    /// `after` are skipped: a token made with 10 days to live gets no 14-day reminder, and a
    /// node that was down sends only the most urgent one it missed.
    pub fn next_after(&self, expires_at: i64, after: i64) -> Option<i64> {
        self.0
            .iter()
            .map(|d| expires_at - i64::from(*d) * DAY_MS)
            .filter(|t| *t > after && *t < expires_at)
            .min()
    }
}

impl TryFrom<Vec<u32>> for ReminderDays {
    type Error = String;

    fn try_from(mut days: Vec<u32>) -> Result<ReminderDays, String> {
        if let Some(d) = days.iter().find(|d| !(1..=365).contains(*d)) {
            return Err(format!("reminder days must be between 1 and 365 (got {d})"));
        }
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        if days.len() > 5 {
            return Err("at most five reminder days".into());
        }
        Ok(ReminderDays(days))
    }
}

impl From<ReminderDays> for Vec<u32> {
    fn from(r: ReminderDays) -> Vec<u32> {
        r.0
    }
}

impl std::fmt::Display for ReminderDays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&s.join(","))
    }
}

/// What the digest lookup found for the integration token a login sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationCheck {
    /// No token of this user has that digest, or it is revoked or past its grace window.
    NoMatch,
    Expired,
    /// It logs in: the current token, or a rotated one within its grace window.
    Valid,
}

/// The decision on a login whose password field held an integration token. The token is a
/// high-entropy secret, so trusted ranges and the security token (R-L2, R-L3) do not apply and
/// the password lockout neither stops it nor counts it: a guessed password cannot lock an
/// integration out, and a wrong token is refused on the source address's limit alone. What
/// stops the user stops the token: deactivation (R-T8), the profile's login IP ranges (R-L1),
/// no API access (R-L8). The web UI refuses integration tokens.
pub fn decide(
    subject: Option<&LoginSubject>,
    ctx: &LoginContext,
    check: IntegrationCheck,
) -> LoginDecision {
    use {LoginOutcome as O, LoginStatus as S};
    let fail = |outcome, status| LoginDecision {
        outcome,
        status,
        lockout: LockoutEffect::Unchanged,
    };
    if !ctx.channel.is_api() {
        return fail(O::InvalidLogin, S::IntegrationTokenNotForUi);
    }
    let Some(user) = subject else {
        return fail(O::InvalidLogin, S::InvalidLogin);
    };
    match check {
        IntegrationCheck::NoMatch => return fail(O::InvalidLogin, S::IntegrationTokenInvalid),
        IntegrationCheck::Expired => return fail(O::InvalidLogin, S::IntegrationTokenExpired),
        IntegrationCheck::Valid => {}
    }
    if !user.active {
        return fail(O::InvalidLogin, S::UserInactive);
    }
    if !user.login_ranges.is_empty() && !any_contains(user.login_ranges, ctx.source_ip) {
        return fail(O::InvalidLogin, S::RestrictedIp);
    }
    if !user.permissions.api_enabled {
        return fail(O::ApiDisabled, S::ApiDisabled);
    }
    LoginDecision {
        outcome: O::Success {
            password_expired: false,
        },
        status: S::Success,
        lockout: LockoutEffect::Unchanged,
    }
}

/// Whether a refused integration-token login counts against its source address: one that
/// proved no token does; an expired token, once real, does not.
pub fn counts_against_address(check: IntegrationCheck, decision: &LoginDecision) -> bool {
    check == IntegrationCheck::NoMatch
        || decision.status == LoginStatus::IntegrationTokenNotForUi
        || decision.status == LoginStatus::InvalidLogin
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_tokens_have_the_format() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let t = IntegrationToken::generate(&mut rng);
            let v = t.expose();
            assert_eq!(v.len(), TOKEN_LEN);
            assert!(v.starts_with("kwi_"));
            assert!(looks_like_integration_token(v), "{v}");
            assert_eq!(IntegrationToken::parse(v).as_ref(), Some(&t));
        }
    }

    #[test]
    fn the_check_characters_are_zlib_crc32_of_prefix_and_random_part_in_base62() {
        // Python: zlib.crc32(b"kwi_" + b"A" * 30) == 0x3c93dd04, which is "16mO7o" in base62.
        let body = format!("kwi_{}", "A".repeat(30));
        let v = format!("{body}16mO7o");
        assert!(looks_like_integration_token(&v));
        // The prefix is covered: the same random part without it does not check.
        let no_prefix = checksum("A".repeat(30).as_bytes());
        assert!(!looks_like_integration_token(&format!("{body}{no_prefix}")));
    }

    #[test]
    fn near_misses_are_not_tokens() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let v = IntegrationToken::generate(&mut rng).expose().to_string();
        let mut cases = vec![
            v[..TOKEN_LEN - 1].to_string(),
            format!("{v}x"),
            format!("KWI_{}", &v[4..]),
            format!("kwi-{}", &v[4..]),
            v.replacen('k', "K", 1),
            String::new(),
            "kwi_".to_string(),
        ];
        // Every single-character change of the random part or the check breaks it.
        for i in PREFIX.len()..TOKEN_LEN {
            let mut b = v.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            cases.push(String::from_utf8(b).unwrap_or_default());
        }
        for c in cases {
            assert!(!looks_like_integration_token(&c), "{c}");
            assert!(IntegrationToken::parse(&c).is_none());
        }
    }

    #[test]
    fn mangled_tokens_are_still_meant_as_tokens() {
        for meant in ["kwi_x", "KWI_x", "Kwi_", " kwi_abc", "\tKWI_abc"] {
            assert!(meant_as_integration_token(meant), "{meant:?}");
        }
        for not in ["", "kwi", "kwi-x", "xkwi_", "Passw0rd!kwi_", "ķwi_"] {
            assert!(!meant_as_integration_token(not), "{not:?}");
        }
    }

    #[test]
    fn tokens_never_print() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let t = IntegrationToken::generate(&mut rng);
        assert_eq!(format!("{t:?} {t}"), "*** ***");
    }

    #[test]
    fn standing_follows_revocation_expiry_and_the_grace_window() {
        const H: i64 = 3_600_000;
        let life = |revoked, replaced| Lifecycle {
            expires_at: 100 * H,
            revoked_at: revoked,
            replaced_at: replaced,
            grace_until: None,
        };
        use Standing::*;
        for (l, now, grace, want) in [
            (life(None, None), 0, 24 * H, Active),
            (life(None, None), 100 * H - 1, 24 * H, Active),
            (life(None, None), 100 * H, 24 * H, Expired),
            (life(Some(10 * H), None), 10 * H, 24 * H, Revoked),
            (life(Some(10 * H), None), 10 * H - 1, 24 * H, Active),
            (life(None, Some(10 * H)), 10 * H, 24 * H, InGrace),
            (life(None, Some(10 * H)), 34 * H - 1, 24 * H, InGrace),
            (life(None, Some(10 * H)), 34 * H, 24 * H, Revoked),
            // No grace: a rotated token stops at once.
            (life(None, Some(10 * H)), 10 * H, 0, Revoked),
            // The grace window does not outlive the token's own expiry.
            (life(None, Some(90 * H)), 100 * H, 24 * H, Expired),
            // Revocation during the grace window ends it.
            (life(Some(12 * H), Some(10 * H)), 12 * H, 24 * H, Revoked),
            // A window lengthened after the rotation does not revive the token...
            (
                Lifecycle {
                    grace_until: Some(12 * H),
                    ..life(None, Some(10 * H))
                },
                12 * H,
                48 * H,
                Revoked,
            ),
            // ...and one shortened since applies at once.
            (
                Lifecycle {
                    grace_until: Some(34 * H),
                    ..life(None, Some(10 * H))
                },
                11 * H,
                H,
                Revoked,
            ),
        ] {
            assert_eq!(l.standing(now, grace), want, "{l:?} at {now} grace {grace}");
            assert_eq!(l.logs_in(now, grace), matches!(want, Active | InGrace));
        }
    }
}
