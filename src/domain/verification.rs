//! Identity verification for browser logins (R-U1, R-U2): the emailed 6-digit code, TOTP codes
//! (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits — what every authenticator app does), and
//! recovery codes. Pure: the caller supplies time and randomness.

use rand::{CryptoRng, Rng};
use time::{Duration, OffsetDateTime};
use totp_rs::{Algorithm, TOTP};

/// How long an emailed code is valid (R-U1).
pub const CODE_VALIDITY: Duration = Duration::minutes(10);
/// How many codes a challenge accepts before it is used up (R-U1).
pub const MAX_ATTEMPTS: i64 = 5;
pub const TOTP_STEP_SECONDS: i64 = 30;
/// 160 bits, RFC 4226's recommended shared-secret length.
pub const TOTP_SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;

/// How the user proves who they are at a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A 6-digit code emailed to the user's address (R-U1).
    Email,
    /// The current code of an enrolled authenticator, or a recovery code (R-U2).
    Totp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Email => "email",
            Method::Totp => "totp",
        }
    }

    pub fn parse(s: &str) -> Method {
        if s == "totp" {
            Method::Totp
        } else {
            Method::Email
        }
    }
}

/// A uniformly random 6-digit code, leading zeros kept.
pub fn email_code<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> String {
    format!("{:06}", rng.gen_range(0..1_000_000u32))
}

/// What the user typed, with the spaces and dashes people add removed. `None` when it cannot be
/// a 6-digit code.
pub fn normalise_code(input: &str) -> Option<String> {
    let digits: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

pub fn totp_secret<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> Vec<u8> {
    let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
    rng.fill_bytes(&mut bytes);
    bytes
}

pub fn base32(bytes: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, bytes)
}

pub fn from_base32(s: &str) -> Option<Vec<u8>> {
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, s)
}

/// The time step of an instant.
pub fn step_of(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(TOTP_STEP_SECONDS)
}

/// The code an authenticator shows at time step `step`.
pub fn totp_at(secret: &[u8], step: i64) -> Option<String> {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        1,
        TOTP_STEP_SECONDS as u64,
        secret.to_vec(),
    );
    let t = u64::try_from(step.checked_mul(TOTP_STEP_SECONDS)?).ok()?;
    Some(totp.generate(t))
}

/// The step whose code `code` is, within one step of `now` either way (clock drift), and later
/// than `last_step` (a code is accepted once). `None`: wrong, too old, or already used.
pub fn verify_totp(secret: &[u8], code: &str, now: OffsetDateTime, last_step: i64) -> Option<i64> {
    let code = normalise_code(code)?;
    let current = step_of(now);
    let mut found = None;
    // Every candidate is computed and compared, so timing says nothing about which matched.
    for step in [current - 1, current, current + 1] {
        let ok = totp_at(secret, step)
            .is_some_and(|c| subtle::ConstantTimeEq::ct_eq(c.as_bytes(), code.as_bytes()).into());
        if ok && step > last_step {
            found = Some(step);
        }
    }
    found
}

/// `otpauth://totp/keyward:ada%40example.com?secret=…&issuer=keyward` — the URI the QR code
/// carries (Google Authenticator's key-URI format).
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    // form encoding writes spaces as '+', which the key-URI format does not know.
    let label = format!("{}:{}", enc(issuer), enc(account)).replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period={TOTP_STEP_SECONDS}",
        enc(issuer).replace('+', "%20")
    )
}

/// A recovery code: `xxxx-xxxx-xxxx` in lowercase letters and digits without look-alikes
/// (about 62 bits).
pub fn recovery_code<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut out = String::with_capacity(14);
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    out
}

/// A recovery code as typed: lowercase, spaces dropped, dashes where they belong. `None` when
/// it cannot be one.
pub fn normalise_recovery_code(input: &str) -> Option<String> {
    let chars: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if chars.len() != 12 {
        return None;
    }
    Some(format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn r_u2_rfc6238_test_vector() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082 (8
        // digits); the 6-digit code is its last six digits.
        let secret = b"12345678901234567890";
        assert_eq!(totp_at(secret, 1).unwrap(), "287082");
        let t = OffsetDateTime::from_unix_timestamp(1_111_111_109).unwrap();
        assert_eq!(totp_at(secret, step_of(t)).unwrap(), "081804");
    }

    #[test]
    fn r_u2_totp_accepts_drift_of_one_step_and_never_twice() {
        let secret = b"12345678901234567890";
        let now = datetime!(2026-11-25 10:00:15 UTC);
        let step = step_of(now);
        let code = totp_at(secret, step).unwrap();
        assert_eq!(verify_totp(secret, &code, now, 0), Some(step));
        assert_eq!(verify_totp(secret, &code, now, step), None, "replay");
        let prev = totp_at(secret, step - 1).unwrap();
        assert_eq!(verify_totp(secret, &prev, now, 0), Some(step - 1));
        let old = totp_at(secret, step - 2).unwrap();
        assert_eq!(verify_totp(secret, &old, now, 0), None, "two steps old");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify_totp(secret, &spaced, now, 0), Some(step));
        assert_eq!(verify_totp(secret, "abcdef", now, 0), None);
    }

    #[test]
    fn r_u1_codes_are_six_digits() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let c = email_code(&mut rng);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(normalise_code(" 012 345 ").as_deref(), Some("012345"));
        assert_eq!(normalise_code("12345"), None);
        assert_eq!(normalise_code("1234567"), None);
    }

    #[test]
    fn recovery_codes_round_trip_as_typed() {
        let c = recovery_code(&mut rand::thread_rng());
        assert_eq!(c.len(), 14);
        assert_eq!(
            normalise_recovery_code(&c.to_uppercase()).as_deref(),
            Some(c.as_str())
        );
        assert_eq!(
            normalise_recovery_code(&c.replace('-', " ")).as_deref(),
            Some(c.as_str())
        );
        assert_eq!(normalise_recovery_code("short"), None);
    }

    #[test]
    fn otpauth_uri_is_percent_encoded() {
        assert_eq!(
            otpauth_uri("keyward Acme", "ada@example.com", "ABC"),
            "otpauth://totp/keyward%20Acme:ada%40example.com?secret=ABC&issuer=keyward%20Acme&algorithm=SHA1&digits=6&period=30"
        );
        let s = totp_secret(&mut rand::thread_rng());
        assert_eq!(from_base32(&base32(&s)).unwrap(), s);
    }
}
