//! Salesforce-style record ids (R-M2): 15 case-sensitive base62 characters, the first three
//! being the key prefix of the object type, plus the standard 3-character case-safe suffix
//! that makes the 18-character form. Both forms are accepted as input; the 18-character form
//! is what every interface returns.

use rand::Rng;
use std::fmt;

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The object types keyward gives ids to. `00D`, `00e` and `005` are Salesforce's own
/// prefixes; the others are keyward's and documented in ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPrefix {
    Org,
    Profile,
    User,
    TrustedIpRange,
    LoginIpRange,
    LoginHistory,
    AuditTrail,
    Email,
    OAuthClient,
    IntegrationToken,
}

impl KeyPrefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyPrefix::Org => "00D",
            KeyPrefix::Profile => "00e",
            KeyPrefix::User => "005",
            KeyPrefix::TrustedIpRange => "0IP",
            KeyPrefix::LoginIpRange => "0LI",
            KeyPrefix::LoginHistory => "0Ya",
            KeyPrefix::AuditTrail => "0Ym",
            KeyPrefix::Email => "02s",
            KeyPrefix::OAuthClient => "0H4",
            KeyPrefix::IntegrationToken => "0Ik",
        }
    }

    pub const fn object_name(self) -> &'static str {
        match self {
            KeyPrefix::Org => "organization",
            KeyPrefix::Profile => "profile",
            KeyPrefix::User => "user",
            KeyPrefix::TrustedIpRange => "trusted IP range",
            KeyPrefix::LoginIpRange => "login IP range",
            KeyPrefix::LoginHistory => "login history entry",
            KeyPrefix::AuditTrail => "audit trail entry",
            KeyPrefix::Email => "email",
            KeyPrefix::OAuthClient => "OAuth client",
            KeyPrefix::IntegrationToken => "integration token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("malformed id {0:?}: expected 15 or 18 letters and digits")]
    Malformed(String),
    #[error("malformed id {0:?}: the 3-character check suffix does not match")]
    BadSuffix(String),
    #[error("{id:?} is not a {expected} id (those start with {prefix})")]
    WrongType {
        id: String,
        expected: &'static str,
        prefix: &'static str,
    },
}

/// A record id in its 15-character, case-sensitive form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SfId([u8; 15]);

impl SfId {
    /// A new id: the key prefix followed by 12 random base62 characters (71 bits), so ids can be
    /// made on any node without coordination; the store's primary key catches the impossible
    /// collision.
    pub fn generate<R: Rng + ?Sized>(prefix: KeyPrefix, rng: &mut R) -> SfId {
        let mut out = [0u8; 15];
        out[..3].copy_from_slice(prefix.as_str().as_bytes());
        for b in out[3..].iter_mut() {
            *b = BASE62[rng.gen_range(0..62)];
        }
        SfId(out)
    }

    /// Parses a 15-character id, or an 18-character one whose suffix is checked. An 18-character
    /// id is case-insensitive, as in Salesforce: its suffix restores the case of the first 15.
    pub fn parse(input: &str) -> Result<SfId, IdError> {
        let malformed = || IdError::Malformed(input.chars().take(40).collect());
        if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed());
        }
        match input.len() {
            15 => {
                let mut out = [0u8; 15];
                out.copy_from_slice(input.as_bytes());
                Ok(SfId(out))
            }
            18 => {
                let bytes = input.as_bytes();
                let mut out = [0u8; 15];
                for chunk in 0..3 {
                    let s = bytes[15 + chunk].to_ascii_uppercase();
                    let bits = SUFFIX_ALPHABET
                        .iter()
                        .position(|&c| c == s)
                        .ok_or_else(|| IdError::BadSuffix(input.to_string()))?;
                    for i in 0..5 {
                        let c = bytes[chunk * 5 + i];
                        let upper = bits & (1 << i) != 0;
                        if c.is_ascii_digit() && upper {
                            return Err(IdError::BadSuffix(input.to_string()));
                        }
                        out[chunk * 5 + i] = if upper {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        };
                    }
                }
                Ok(SfId(out))
            }
            _ => Err(malformed()),
        }
    }

    /// Parses and checks the key prefix.
    pub fn parse_as(input: &str, prefix: KeyPrefix) -> Result<SfId, IdError> {
        let id = SfId::parse(input)?;
        if id.prefix() != prefix.as_str() {
            return Err(IdError::WrongType {
                id: input.to_string(),
                expected: prefix.object_name(),
                prefix: prefix.as_str(),
            });
        }
        Ok(id)
    }

    pub fn as_15(&self) -> &str {
        // Only ASCII alphanumerics are ever stored in the array.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn prefix(&self) -> &str {
        &self.as_15()[..3]
    }

    pub fn suffix(&self) -> [u8; 3] {
        let mut out = [0u8; 3];
        for (chunk, o) in out.iter_mut().enumerate() {
            let mut bits = 0usize;
            for i in 0..5 {
                if self.0[chunk * 5 + i].is_ascii_uppercase() {
                    bits |= 1 << i;
                }
            }
            *o = SUFFIX_ALPHABET[bits];
        }
        out
    }

    pub fn to_18(&self) -> String {
        let mut s = String::with_capacity(18);
        s.push_str(self.as_15());
        for b in self.suffix() {
            s.push(b as char);
        }
        s
    }
}

impl fmt::Display for SfId {
    /// Ids display in their 18-character form, the form every interface returns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_18())
    }
}

impl fmt::Debug for SfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SfId({})", self.as_15())
    }
}

/// Does this look like an id (15 or 18 alphanumerics) rather than a name? Used where an
/// argument accepts either (docs/cli.md: `ORG` is an id or a name).
pub fn looks_like_id(input: &str, prefix: KeyPrefix) -> bool {
    let p = prefix.as_str();
    input.bytes().all(|b| b.is_ascii_alphanumeric())
        && match input.len() {
            15 => input.starts_with(p),
            // The 18-character form is case-insensitive.
            18 => input[..3].eq_ignore_ascii_case(p),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_m2_known_salesforce_ids_get_their_real_suffix() {
        // Pairs as Salesforce prints them (15-character and 18-character forms).
        let cases = [
            ("00D000000000001", "00D000000000001EAA"),
            ("005000000000001", "005000000000001AAA"),
            ("00e000000000001", "00e000000000001AAA"),
            ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
            ("003G000001SUbc4", "003G000001SUbc4IAD"),
            ("00Dx0000000BV7z", "00Dx0000000BV7zEAG"),
        ];
        for (short, long) in cases {
            let id = SfId::parse(short).unwrap();
            assert_eq!(id.to_18(), long, "{short}");
            assert_eq!(SfId::parse(long).unwrap(), id, "{long}");
        }
    }

    #[test]
    fn r_m2_eighteen_character_ids_are_case_insensitive() {
        let id = SfId::parse("001A0000006Vm9rIAC").unwrap();
        assert_eq!(SfId::parse("001a0000006vm9riac").unwrap(), id);
        assert_eq!(SfId::parse("001A0000006VM9RIAC").unwrap(), id);
    }

    #[test]
    fn r_m2_malformed_ids_are_rejected() {
        for bad in [
            "",
            "00D",
            "00D00000000001",
            "00D0000000000012",
            "00D000000000001AA",
            "00D00000000000!",
            "00D000000000001AA!",
            "005000000000001AA9", // '9' is a valid suffix char but the wrong one
        ] {
            assert!(SfId::parse(bad).is_err(), "{bad:?} accepted");
        }
        // A suffix that claims a digit is upper case cannot be right.
        assert!(matches!(
            SfId::parse("0050000000000015AB"),
            Err(IdError::BadSuffix(_)) | Err(IdError::Malformed(_))
        ));
    }

    #[test]
    fn r_m2_key_prefix_is_checked() {
        let user = SfId::parse("005000000000001").unwrap();
        assert!(SfId::parse_as(&user.to_18(), KeyPrefix::User).is_ok());
        let err = SfId::parse_as(&user.to_18(), KeyPrefix::Org).unwrap_err();
        assert!(err.to_string().contains("organization"), "{err}");
    }

    #[test]
    fn r_m2_id_or_name() {
        assert!(looks_like_id("00D000000000001", KeyPrefix::Org));
        assert!(looks_like_id("00d000000000001eaa", KeyPrefix::Org));
        assert!(!looks_like_id("00d000000000001", KeyPrefix::Org));
        assert!(!looks_like_id("Acme", KeyPrefix::Org));
        assert!(!looks_like_id("00D000000000001-", KeyPrefix::Org));
    }

    #[test]
    fn r_m2_generated_ids_round_trip() {
        let mut rng = rand::thread_rng();
        for prefix in [KeyPrefix::Org, KeyPrefix::Profile, KeyPrefix::User] {
            let id = SfId::generate(prefix, &mut rng);
            assert_eq!(id.prefix(), prefix.as_str());
            assert_eq!(SfId::parse(&id.to_18()).unwrap(), id);
            assert_eq!(SfId::parse(&id.to_18().to_lowercase()).unwrap(), id);
        }
    }
}
