//! The security token (R-T1): 24 case-sensitive alphanumerics, 18 random characters followed by
//! the CRC-32 of those 18 bytes as a 6-digit base62 number. The checksum lets a secret scanner
//! (or keyward itself, when splitting `password+token`) recognise a keyward token with a
//! 1-in-4-billion false-positive rate, without a prefix that would break the format clients
//! expect.

use super::ids::BASE62;
use super::secret::Password;
use rand::{CryptoRng, Rng};

pub const TOKEN_LEN: usize = 24;
const RANDOM_LEN: usize = 18;
const CHECK_LEN: usize = 6;

/// A security token. Never printed (R-T2): `Debug`/`Display` show `***`. The value leaves the
/// process only in the email to the user.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityToken(String);

impl SecurityToken {
    /// 18 characters from a CSPRNG (107 bits) plus the checksum.
    pub fn generate<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> SecurityToken {
        let mut s = String::with_capacity(TOKEN_LEN);
        for _ in 0..RANDOM_LEN {
            s.push(BASE62[rng.gen_range(0..62)] as char);
        }
        let check = checksum(s.as_bytes());
        s.push_str(&check);
        SecurityToken(s)
    }

    /// Accepts only a well-formed keyward token (right length, alphabet and checksum).
    pub fn parse(value: &str) -> Option<SecurityToken> {
        looks_like_keyward_token(value).then(|| SecurityToken(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecurityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for SecurityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// CRC-32 (IEEE, as zlib's `crc32`) of the bytes, as 6 base62 digits, most significant first:
/// the check characters of the security token and of the integration token.
pub(super) fn checksum(random: &[u8]) -> String {
    let mut n = u64::from(crc32fast::hash(random));
    let mut digits = [b'0'; CHECK_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits.iter().map(|&b| b as char).collect()
}

/// True when `s` is exactly a keyward token: 24 characters of `[A-Za-z0-9]` whose last six are
/// the checksum of the first 18.
pub fn looks_like_keyward_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && checksum(&s.as_bytes()[..RANDOM_LEN]) == s[RANDOM_LEN..]
}

/// What a client sent in the password field, split into its parts (R-L3). The server splits at
/// the last 24 characters only when they are a well-formed keyward token: the checksum tells a
/// token-suffixed password (`Passw0rd!` + token, possibly a stale token) from a password alone,
/// so a login needs one password hash whichever it is. A password that itself ends in a
/// well-formed token is refused when it is set (`PasswordPolicy::check`), so the split is never
/// ambiguous.
pub struct SuppliedSecret {
    pub password: Password,
    pub token: Option<SecurityToken>,
    /// The password field exactly as sent, before any split.
    sent: Password,
}

impl SuppliedSecret {
    /// Splits `password+token` as sent in SOAP `login()` or the OAuth `password` field.
    pub fn split(supplied: &Password) -> SuppliedSecret {
        let s = supplied.expose();
        if s.len() > TOKEN_LEN && s.is_char_boundary(s.len() - TOKEN_LEN) {
            let (password, token) = s.split_at(s.len() - TOKEN_LEN);
            if let Some(token) = SecurityToken::parse(token) {
                return SuppliedSecret {
                    password: Password::new(password),
                    token: Some(token),
                    sent: supplied.clone(),
                };
            }
        }
        SuppliedSecret {
            password: supplied.clone(),
            token: None,
            sent: supplied.clone(),
        }
    }

    /// A password alone, never split: the web UI's login form (R-U1 applies there, not R-L3).
    pub fn password_only(password: Password) -> SuppliedSecret {
        SuppliedSecret {
            sent: password.clone(),
            password,
            token: None,
        }
    }

    /// The password field exactly as the client sent it: what a delegated-authentication
    /// endpoint checks (R-L7), since SSO users have no token to split off.
    pub fn whole(&self) -> &Password {
        &self.sent
    }

    /// The password and a token sent in a separate field (OAuth `security_token`). A field that
    /// is not a well-formed token counts as a wrong token, not as no token.
    pub fn separate(password: Password, token_field: &str) -> SuppliedSecret {
        SuppliedSecret {
            sent: password.clone(),
            password,
            token: Some(
                SecurityToken::parse(token_field)
                    .unwrap_or_else(|| SecurityToken(String::from("invalid"))),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_t1_generated_tokens_have_the_format() {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let t = SecurityToken::generate(&mut rng);
            let s = t.expose();
            assert_eq!(s.len(), 24);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(looks_like_keyward_token(s), "{s}");
        }
    }

    #[test]
    fn r_t1_checksum_is_zlib_crc32_in_base62() {
        // Expected values computed independently with Python's zlib.crc32.
        assert!(looks_like_keyward_token("AAAAAAAAAAAAAAAAAA3VYMQ1"));
        assert!(looks_like_keyward_token("Zq3kP0mXv9LbT2wYh73cCOsY"));
        assert_eq!(checksum(b"AAAAAAAAAAAAAAAAAA"), "3VYMQ1");
        assert!(!looks_like_keyward_token("AAAAAAAAAAAAAAAAAA3VYMQ2"));
    }

    #[test]
    fn r_t1_case_and_single_character_changes_break_the_checksum() {
        let mut rng = rand::thread_rng();
        let t = SecurityToken::generate(&mut rng);
        let s = t.expose().to_string();
        let swapped: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        if swapped != s {
            assert!(!looks_like_keyward_token(&swapped));
        }
        for (i, c) in s.char_indices() {
            let mut changed = s.clone();
            let other = if c == 'x' { 'y' } else { 'x' };
            changed.replace_range(i..i + 1, &other.to_string());
            assert!(!looks_like_keyward_token(&changed), "change at {i}");
        }
        assert!(!looks_like_keyward_token(&s[..23]));
        assert!(!looks_like_keyward_token(&format!("{s}A")));
        assert!(!looks_like_keyward_token(""));
    }

    #[test]
    fn r_t2_token_never_prints() {
        let t = SecurityToken::generate(&mut rand::thread_rng());
        assert_eq!(format!("{t:?}|{t}"), "***|***");
    }

    #[test]
    fn r_l3_split_at_the_last_24_characters_only_for_a_real_token() {
        let t = SecurityToken::generate(&mut rand::thread_rng());
        let s = SuppliedSecret::split(&Password::new(format!("Passw0rd!{}", t.expose())));
        assert_eq!(s.password.expose(), "Passw0rd!");
        assert_eq!(s.token.as_ref().map(|t| t.expose()), Some(t.expose()));

        // A password alone, even a long one, is not split.
        let long = "abcdefghijklmnopqrstuvwxyz0123456789";
        let s = SuppliedSecret::split(&Password::new(long));
        assert_eq!(s.password.expose(), long);
        assert!(s.token.is_none());

        // No trimming: spaces stay part of the password.
        let s = SuppliedSecret::split(&Password::new(format!(" pw {}", t.expose())));
        assert_eq!(s.password.expose(), " pw ");

        // The token alone is not "empty password + token".
        let s = SuppliedSecret::split(&Password::new(t.expose()));
        assert_eq!(s.password.expose(), t.expose());
        assert!(s.token.is_none());

        // Multi-byte characters right before the token are handled.
        let s = SuppliedSecret::split(&Password::new(format!("pässwörd1{}", t.expose())));
        assert_eq!(s.password.expose(), "pässwörd1");
    }

    #[test]
    fn r_l3_separate_token_field_that_is_malformed_counts_as_a_wrong_token() {
        let s = SuppliedSecret::separate(Password::new("pw"), "nonsense");
        assert!(s.token.is_some());
        assert!(!looks_like_keyward_token(s.token.unwrap().expose()));
    }
}
