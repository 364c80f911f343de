//! Proof Key for Code Exchange (RFC 7636): the challenge an authorization request brings and
//! the verifier its token request must answer with, S256 only.
//!
//! Two departures from the RFC, both Salesforce's and both needed by real clients
//! (docs/design/oauth-clients.md): a request without `code_challenge_method` means S256, not
//! plain (jsforce and the Salesforce CLI send none), and a verifier may be up to 171 characters,
//! not 128 (jsforce's are base64url of 128 random bytes).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The shortest verifier (RFC 7636 §4.1: 32 random bytes in base64url).
const MIN_VERIFIER: usize = 43;
/// The longest: jsforce's 171.
const MAX_VERIFIER: usize = 171;

/// An S256 challenge: 43 base64url characters, the digest of the verifier to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// Answered `invalid_request` to the redirect URI.
    #[error("code_challenge_method must be S256")]
    Method,
    #[error("code_challenge must be 43 base64url characters (S256)")]
    Challenge,
}

impl Challenge {
    /// The challenge of an authorization request; `method` as sent (None: not sent).
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Challenge, PkceError> {
        if !matches!(method, None | Some("S256")) {
            return Err(PkceError::Method);
        }
        let decoded = URL_SAFE_NO_PAD.decode(challenge).ok();
        if challenge.len() != 43 || decoded.is_none_or(|d| d.len() != 32) {
            return Err(PkceError::Challenge);
        }
        Ok(Challenge(challenge.to_string()))
    }

    /// The challenge as stored with the authorization code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` is well-formed and hashes to this challenge (compared in constant
    /// time). A malformed one is simply wrong: the token request gets `invalid_grant`.
    pub fn is_answered_by(&self, verifier: &str) -> bool {
        let well_formed = (MIN_VERIFIER..=MAX_VERIFIER).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        well_formed && super::ct_eq(&computed, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_s256_with_or_without_the_method() {
        for method in [Some("S256"), None] {
            let c = Challenge::parse(CHALLENGE, method).unwrap();
            assert!(c.is_answered_by(VERIFIER));
            assert!(!c.is_answered_by("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        }
    }

    #[test]
    fn jsforce_verifiers_of_171_characters_are_accepted() {
        let verifier = "a".repeat(171);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let c = Challenge::parse(&challenge, None).unwrap();
        assert!(c.is_answered_by(&verifier));
        // Out of bounds or outside the unreserved characters: wrong, whatever its digest.
        for bad in [
            "a".repeat(172),
            "a".repeat(42),
            format!("{}+", "a".repeat(50)),
        ] {
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(bad.as_bytes()));
            assert!(
                !Challenge::parse(&challenge, None)
                    .unwrap()
                    .is_answered_by(&bad)
            );
        }
    }

    #[test]
    fn plain_and_malformed_challenges_are_refused() {
        assert_eq!(
            Challenge::parse(CHALLENGE, Some("plain")),
            Err(PkceError::Method)
        );
        assert_eq!(
            Challenge::parse(CHALLENGE, Some("s256")),
            Err(PkceError::Method)
        );
        for bad in [
            "",
            "abc",
            &CHALLENGE[..42],
            &format!("{CHALLENGE}A"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+",
        ] {
            assert_eq!(
                Challenge::parse(bad, None),
                Err(PkceError::Challenge),
                "{bad:?}"
            );
        }
    }
}
