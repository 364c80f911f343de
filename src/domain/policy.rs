//! An org's password policy and session settings (R-M3 defaults, Salesforce's
//! Setup › Password Policies), and the password rules a new password must pass.

use super::integration::ReminderDays;
use super::secret::Password;
use super::token::{TOKEN_LEN, looks_like_keyward_token};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest password accepted when one is set, in bytes: far above any real password, low enough
/// that hashing it costs nothing extra.
pub const MAX_PASSWORD_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// No requirement beyond the length.
    None,
    /// Must mix letters and digits (Salesforce's default).
    AlphaNumeric,
    /// Letters, digits and one of `! # $ % - _ = + < >`.
    AlphaNumericSpecial,
    /// Upper- and lower-case letters and digits.
    UpperLowerNumeric,
    /// Upper- and lower-case letters, digits and a special character.
    UpperLowerNumericSpecial,
}

impl Complexity {
    pub const ALL: [Complexity; 5] = [
        Complexity::None,
        Complexity::AlphaNumeric,
        Complexity::AlphaNumericSpecial,
        Complexity::UpperLowerNumeric,
        Complexity::UpperLowerNumericSpecial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::None => "none",
            Complexity::AlphaNumeric => "alpha_numeric",
            Complexity::AlphaNumericSpecial => "alpha_numeric_special",
            Complexity::UpperLowerNumeric => "upper_lower_numeric",
            Complexity::UpperLowerNumericSpecial => "upper_lower_numeric_special",
        }
    }

    pub fn parse(s: &str) -> Option<Complexity> {
        Complexity::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn describe(self) -> &'static str {
        match self {
            Complexity::None => "",
            Complexity::AlphaNumeric => "at least one letter and one digit",
            Complexity::AlphaNumericSpecial => {
                "at least one letter, one digit and one of ! # $ % - _ = + < >"
            }
            Complexity::UpperLowerNumeric => {
                "at least one upper-case letter, one lower-case letter and one digit"
            }
            Complexity::UpperLowerNumericSpecial => {
                "at least one upper-case letter, one lower-case letter, one digit and one of ! # $ % - _ = + < >"
            }
        }
    }

    fn satisfied_by(self, pw: &str) -> bool {
        let letter = pw.chars().any(char::is_alphabetic);
        let upper = pw.chars().any(char::is_uppercase);
        let lower = pw.chars().any(char::is_lowercase);
        let digit = pw.chars().any(|c| c.is_ascii_digit());
        let special = pw.chars().any(|c| "!#$%-_=+<>".contains(c));
        match self {
            Complexity::None => true,
            Complexity::AlphaNumeric => letter && digit,
            Complexity::AlphaNumericSpecial => letter && digit && special,
            Complexity::UpperLowerNumeric => upper && lower && digit,
            Complexity::UpperLowerNumericSpecial => upper && lower && digit && special,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicy {
    pub min_password_length: u32,
    pub complexity: Complexity,
    /// How many previous passwords may not be reused.
    pub password_history: u32,
    /// 0 = passwords never expire.
    pub password_expiry_days: u32,
    /// Consecutive failures that lock the user; 0 = no limit.
    pub lockout_attempts: u32,
    /// How long a lockout lasts; 0 = until an admin unlocks.
    pub lockout_minutes: u32,
    /// Idle timeout: a session ends this long after its last use (R-L10).
    pub session_seconds: u32,
    /// Absolute lifetime: a session ends this long after it began, however much it is used
    /// (ASVS 7.3.2).
    pub session_max_seconds: u32,
    /// The longest lifetime an integration token may be given, in days.
    pub integration_max_days: u32,
    /// How long a rotated integration token keeps working beside its successor.
    pub integration_grace_hours: u32,
    /// Days before an integration token expires that its user is reminded.
    pub integration_reminder_days: ReminderDays,
    /// How long a reset security token keeps working beside the new one (0 = not at all,
    /// Salesforce's behaviour); a password change ends it at once.
    pub token_grace_hours: u32,
}

/// An hour in epoch milliseconds, the unit the grace windows are set in.
pub const HOUR_MS: i64 = 3_600_000;

impl OrgPolicy {
    /// How long a rotated integration token keeps working, in milliseconds.
    pub fn integration_grace_ms(&self) -> i64 {
        i64::from(self.integration_grace_hours) * HOUR_MS
    }

    /// How long a reset security token keeps working, in milliseconds.
    pub fn token_grace_ms(&self) -> i64 {
        i64::from(self.token_grace_hours) * HOUR_MS
    }

    /// The password rules in a sentence, for the forms that set a password.
    pub fn rules_text(&self) -> String {
        let mut s = format!("At least {} characters", self.min_password_length);
        let c = self.complexity.describe();
        if !c.is_empty() {
            s.push_str(", with ");
            s.push_str(c);
        }
        if self.password_history > 0 {
            s.push_str(&format!(
                "; not one of your last {} passwords",
                self.password_history
            ));
        }
        s.push('.');
        s
    }
}

impl Default for OrgPolicy {
    /// R-M3, R-L5 and R-L6 defaults.
    fn default() -> Self {
        OrgPolicy {
            min_password_length: 8,
            complexity: Complexity::AlphaNumeric,
            password_history: 3,
            password_expiry_days: 90,
            lockout_attempts: 10,
            lockout_minutes: 15,
            session_seconds: 7200,
            session_max_seconds: 86_400,
            integration_max_days: 90,
            integration_grace_hours: 24,
            integration_reminder_days: ReminderDays::default(),
            token_grace_hours: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field} must be between {min} and {max} (got {value})")]
    OutOfRange {
        field: &'static str,
        min: u32,
        max: u32,
        value: u32,
    },
}

fn in_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), PolicyError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(PolicyError::OutOfRange {
            field,
            min,
            max,
            value,
        })
    }
}

impl OrgPolicy {
    /// The bounds Salesforce's Metadata API allows, widened where a finer choice is harmless.
    pub fn validate(&self) -> Result<(), PolicyError> {
        in_range("min-password-length", self.min_password_length, 5, 50)?;
        in_range("password-history", self.password_history, 0, 24)?;
        in_range("password-expiry-days", self.password_expiry_days, 0, 3650)?;
        in_range("lockout-attempts", self.lockout_attempts, 0, 100)?;
        in_range("lockout-minutes", self.lockout_minutes, 0, 525_600)?;
        in_range("session-seconds", self.session_seconds, 300, 86_400)?;
        in_range(
            "session-max-seconds",
            self.session_max_seconds,
            self.session_seconds,
            30 * 86_400,
        )?;
        in_range("integration-max-days", self.integration_max_days, 1, 3650)?;
        in_range(
            "integration-grace-hours",
            self.integration_grace_hours,
            0,
            720,
        )?;
        in_range("token-grace-hours", self.token_grace_hours, 0, 720)?;
        Ok(())
    }

    /// When a session that began at `created` and was last used at `last_used` ends, by this
    /// policy as it is now: the idle timeout or the absolute lifetime, whichever comes first. A
    /// session is checked against it at every use, so a lowered timeout or lifetime applies to
    /// the sessions already open.
    pub fn session_ends_at(
        &self,
        created: OffsetDateTime,
        last_used: OffsetDateTime,
    ) -> OffsetDateTime {
        let idle = last_used + time::Duration::seconds(i64::from(self.session_seconds));
        let absolute = created + time::Duration::seconds(i64::from(self.session_max_seconds));
        idle.min(absolute)
    }

    /// Checks a new password against the policy. History is checked by the service, which has
    /// the old hashes.
    pub fn check_password(
        &self,
        password: &Password,
        username: &str,
    ) -> Result<(), PasswordRejected> {
        let pw = password.expose();
        let chars = pw.chars().count();
        if chars < self.min_password_length as usize {
            return Err(PasswordRejected::TooShort(self.min_password_length));
        }
        if pw.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRejected::TooLong(MAX_PASSWORD_BYTES));
        }
        if pw.chars().any(char::is_control) {
            return Err(PasswordRejected::ControlCharacter);
        }
        if !self.complexity.satisfied_by(pw) {
            return Err(PasswordRejected::Complexity(self.complexity.describe()));
        }
        if pw.eq_ignore_ascii_case(username) || pw.eq_ignore_ascii_case("password") {
            return Err(PasswordRejected::Guessable);
        }
        // R-L3: logins split `password+token` when the last 24 characters are a well-formed
        // token; a password that already ends in one could never be used alone.
        if pw.len() >= TOKEN_LEN
            && pw.is_char_boundary(pw.len() - TOKEN_LEN)
            && looks_like_keyward_token(&pw[pw.len() - TOKEN_LEN..])
        {
            return Err(PasswordRejected::EndsWithToken);
        }
        // A login whose password field holds an integration token is an integration-token
        // login: a password that starts like one is kept out of that namespace altogether.
        if super::integration::meant_as_integration_token(pw) {
            return Err(PasswordRejected::IntegrationTokenPrefix);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("password too short: at least {0} characters are required")]
    TooShort(u32),
    #[error("password too long: at most {0} bytes")]
    TooLong(usize),
    #[error("password must not contain control characters")]
    ControlCharacter,
    #[error("password too weak: it needs {0}")]
    Complexity(&'static str),
    #[error("password too easy to guess: it must differ from the username and from \"password\"")]
    Guessable,
    #[error("password must not end with a security token")]
    EndsWithToken,
    #[error("password must not start with \"kwi_\" (in any case), the integration-token prefix")]
    IntegrationTokenPrefix,
    #[error("password was used recently: choose one not among the last {0}")]
    Reused(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_at_its_idle_timeout_or_its_lifetime_whichever_is_first() {
        let p = OrgPolicy {
            session_seconds: 600,
            session_max_seconds: 3600,
            ..OrgPolicy::default()
        };
        let t0 = time::macros::datetime!(2026-12-06 10:00 UTC);
        let m = time::Duration::minutes;
        assert_eq!(p.session_ends_at(t0, t0), t0 + m(10), "idle");
        assert_eq!(
            p.session_ends_at(t0, t0 + m(55)),
            t0 + m(60),
            "the lifetime caps it"
        );
        assert_eq!(OrgPolicy::default().session_max_seconds, 86_400);
        let shorter = OrgPolicy {
            session_max_seconds: 599,
            ..p.clone()
        };
        assert!(
            shorter.validate().is_err(),
            "a lifetime below the idle timeout"
        );
        let longer = OrgPolicy {
            session_max_seconds: 31 * 86_400,
            ..p
        };
        assert!(longer.validate().is_err());
    }

    fn check(policy: &OrgPolicy, pw: &str) -> Result<(), PasswordRejected> {
        policy.check_password(&Password::new(pw), "ada@example.com")
    }

    #[test]
    fn r_m3_defaults() {
        let p = OrgPolicy::default();
        assert_eq!(p.min_password_length, 8);
        assert_eq!(p.complexity, Complexity::AlphaNumeric);
        assert_eq!(p.password_history, 3);
        assert_eq!(p.password_expiry_days, 90);
        assert_eq!(p.lockout_attempts, 10);
        assert_eq!(p.lockout_minutes, 15);
        assert_eq!(p.session_seconds, 7200);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn r_m3_password_rules_table() {
        let default = OrgPolicy::default();
        let strict = OrgPolicy {
            complexity: Complexity::UpperLowerNumericSpecial,
            min_password_length: 12,
            ..OrgPolicy::default()
        };
        let token = "AAAAAAAAAAAAAAAAAA3VYMQ1";
        let rows: [(&OrgPolicy, String, Option<PasswordRejected>); 12] = [
            (
                &default,
                "abc123".into(),
                Some(PasswordRejected::TooShort(8)),
            ),
            (
                &default,
                "abcdefgh".into(),
                Some(PasswordRejected::Complexity(
                    Complexity::AlphaNumeric.describe(),
                )),
            ),
            (
                &default,
                "12345678".into(),
                Some(PasswordRejected::Complexity(
                    Complexity::AlphaNumeric.describe(),
                )),
            ),
            (&default, "abcdefg1".into(), None),
            (&default, "pässwörd1".into(), None),
            (&default, " spaces count 1 ".into(), None),
            (
                &default,
                "x1".repeat(200),
                Some(PasswordRejected::TooLong(MAX_PASSWORD_BYTES)),
            ),
            (
                &default,
                "tab\there1".into(),
                Some(PasswordRejected::ControlCharacter),
            ),
            (
                &default,
                format!("pw1{token}"),
                Some(PasswordRejected::EndsWithToken),
            ),
            (
                &strict,
                "Abcdefghijk1".into(),
                Some(PasswordRejected::Complexity(
                    Complexity::UpperLowerNumericSpecial.describe(),
                )),
            ),
            (&strict, "Abcdefghij1!".into(), None),
            (
                &default,
                "ADA@example.com".into(),
                Some(PasswordRejected::Complexity(
                    Complexity::AlphaNumeric.describe(),
                )),
            ),
        ];
        for (policy, pw, expect) in rows {
            assert_eq!(check(policy, &pw).err(), expect, "{pw:?}");
        }
        let weak = OrgPolicy {
            complexity: Complexity::None,
            ..OrgPolicy::default()
        };
        assert_eq!(
            check(&weak, "ADA@EXAMPLE.COM"),
            Err(PasswordRejected::Guessable)
        );
        assert_eq!(check(&weak, "Password"), Err(PasswordRejected::Guessable));
    }

    #[test]
    fn r_m3_policy_bounds() {
        let bad = [
            OrgPolicy {
                min_password_length: 4,
                ..OrgPolicy::default()
            },
            OrgPolicy {
                password_history: 25,
                ..OrgPolicy::default()
            },
            OrgPolicy {
                lockout_attempts: 101,
                ..OrgPolicy::default()
            },
            OrgPolicy {
                session_seconds: 60,
                ..OrgPolicy::default()
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
        let ok = OrgPolicy {
            lockout_attempts: 0,
            lockout_minutes: 0,
            password_expiry_days: 0,
            ..OrgPolicy::default()
        };
        assert!(ok.validate().is_ok());
    }
}
