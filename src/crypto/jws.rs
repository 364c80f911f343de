//! RS256 JSON Web Signatures (RFC 7515, RFC 7518 §3.3) checked with the key of an X.509
//! certificate: the assertions of the JWT bearer grant (RFC 7523), signed by the private key of
//! the certificate an admin uploaded for a connected app. Only the certificate's public key is
//! used (no chain, no dates: the admin vouches for it by uploading it), so version 1
//! certificates count too — what Salesforce's own recipe, `openssl x509 -req -signkey`, makes.
//! Signatures are verified by ring, which keyward's TLS already uses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value};

/// An uploaded certificate's RSA public key, checked when it is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    /// The key as PKCS#1 `RSAPublicKey`, what ring verifies with.
    key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)")]
    NotACertificate,
    #[error("the certificate's key must be RSA of 2048 to 8192 bits (RS256)")]
    Key,
    #[error("not a JWT: three base64url parts with a JSON header and payload")]
    Malformed,
    /// The header names another algorithm than RS256 (`none`, or HS256 keyed with the public
    /// key): refused whatever follows, as the algorithm comes from the app, never the token.
    #[error("the assertion must be signed with RS256, not {0:?}")]
    Algorithm(String),
    /// RFC 7515 §4.1.11: extensions a verifier does not understand must be refused, and
    /// keyward understands none.
    #[error("the assertion's header has a crit parameter")]
    Critical,
    #[error("the assertion's signature does not match the app's certificate")]
    Signature,
}

impl Certificate {
    /// The first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Certificate, JwsError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| JwsError::NotACertificate)?;
        Certificate::from_der(der.as_ref().to_vec())
    }

    /// The certificate as stored: its DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn from_der(der: Vec<u8>) -> Result<Certificate, JwsError> {
        let key = der::rsa_key(&der)?.to_vec();
        Ok(Certificate { der, key })
    }
}

/// The payload of `token` (a compact JWS) once its RS256 signature checks out with `cert`'s
/// key. Nothing of the payload is read before: a forged token costs one signature check.
pub fn verify_rs256(token: &str, cert: &Certificate) -> Result<Map<String, Value>, JwsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    // What the signature covers: the header and payload as sent.
    let signed = &token[..header.len() + 1 + payload.len()];
    let header = json_object(header)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => {
            let named = other.unwrap_or("").chars().take(40).collect();
            return Err(JwsError::Algorithm(named));
        }
    }
    if header.contains_key("crit") {
        return Err(JwsError::Critical);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwsError::Malformed)?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &cert.key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwsError::Signature)?;
    json_object(payload)
}

fn json_object(part: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwsError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP_KEY: &str = include_str!("../../tests/fixtures/jwt/app-key.pem");
    const APP_CERT: &str = include_str!("../../tests/fixtures/jwt/app-cert.pem");
    const OTHER_KEY: &str = include_str!("../../tests/fixtures/jwt/other-key.pem");
    const EC_CERT: &str = include_str!("../../tests/fixtures/jwt/ec-cert.pem");
    const V1_KEY: &str = include_str!("../../tests/fixtures/jwt/v1-key.pem");
    const V1_CERT: &str = include_str!("../../tests/fixtures/jwt/v1-cert.pem");
    const SMALL_CERT: &str = include_str!("../../tests/fixtures/jwt/rsa1024-cert.pem");

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    /// A compact JWS of `header` and `payload` signed with RS256 by the PEM PKCS#8 `key`.
    fn signed(key: &str, header: &Value, payload: &Value) -> String {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let input = format!("{}.{}", b64(header), b64(payload));
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn rs256() -> Value {
        json!({"alg": "RS256", "typ": "JWT"})
    }

    #[test]
    fn a_token_signed_by_the_certificates_key_gives_its_payload() {
        let cert = Certificate::from_pem(APP_CERT).unwrap();
        let claims = json!({"iss": "3MVG9x", "sub": "ada@example.com", "exp": "1754000000"});
        let token = signed(APP_KEY, &rs256(), &claims);
        let payload = verify_rs256(&token, &cert).unwrap();
        assert_eq!(Value::Object(payload), claims);
        // The stored form gives the same certificate back.
        assert_eq!(Certificate::from_der(cert.der().to_vec()).unwrap(), cert);
        // A version 1 certificate, as `openssl x509 -req -signkey` makes them.
        let v1 = Certificate::from_pem(V1_CERT).unwrap();
        let token = signed(V1_KEY, &rs256(), &claims);
        assert_eq!(Value::Object(verify_rs256(&token, &v1).unwrap()), claims);
        assert_eq!(verify_rs256(&token, &cert), Err(JwsError::Signature));
    }

    #[test]
    fn another_key_a_changed_payload_or_another_algorithm_are_refused() {
        let cert = Certificate::from_pem(APP_CERT).unwrap();
        let claims = json!({"iss": "3MVG9x", "sub": "ada@example.com"});
        let other = signed(OTHER_KEY, &rs256(), &claims);
        assert_eq!(verify_rs256(&other, &cert), Err(JwsError::Signature));

        let token = signed(APP_KEY, &rs256(), &claims);
        let (head, rest) = token.split_once('.').unwrap();
        let sig = rest.rsplit('.').next().unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            b64(&json!({"iss": "3MVG9x", "sub": "root"}))
        );
        assert_eq!(verify_rs256(&forged, &cert), Err(JwsError::Signature));

        for alg in ["none", "HS256", "RS512", "PS256"] {
            let header = json!({"alg": alg});
            let t = format!("{}.{}.{sig}", b64(&header), b64(&claims));
            assert_eq!(
                verify_rs256(&t, &cert),
                Err(JwsError::Algorithm(alg.into()))
            );
        }
        let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims));
        assert_eq!(
            verify_rs256(&unsigned, &cert),
            Err(JwsError::Algorithm("none".into()))
        );
        let crit = json!({"alg": "RS256", "crit": ["exp"], "exp": 1});
        let t = signed(APP_KEY, &crit, &claims);
        assert_eq!(verify_rs256(&t, &cert), Err(JwsError::Critical));
        let long = format!(
            "{}.{}.{sig}",
            b64(&json!({"alg": "x".repeat(500)})),
            b64(&claims)
        );
        assert_eq!(
            verify_rs256(&long, &cert),
            Err(JwsError::Algorithm("x".repeat(40)))
        );
    }

    #[test]
    fn certificates_without_an_rsa_key_of_2048_bits_or_more_are_refused() {
        assert_eq!(Certificate::from_pem(EC_CERT), Err(JwsError::Key));
        assert_eq!(Certificate::from_pem(SMALL_CERT), Err(JwsError::Key));
    }

    #[test]
    fn malformed_tokens_and_certificates_are_refused() {
        let cert = Certificate::from_pem(APP_CERT).unwrap();
        let token = signed(APP_KEY, &rs256(), &json!({"sub": "x"}));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            &format!("{token}.x"),
            &format!("{}.{}.x", b64(&json!([1])), b64(&json!({}))),
            &format!("{}.bm90IGpzb24.x", b64(&rs256())),
            "eyJhbGciOiJSUzI1NiJ9.e30.!!!",
        ] {
            assert!(
                matches!(
                    verify_rs256(bad, &cert),
                    Err(JwsError::Malformed | JwsError::Signature)
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "hello",
            APP_KEY,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(
                Certificate::from_pem(bad),
                Err(JwsError::NotACertificate),
                "{bad:?}"
            );
        }
        assert_eq!(
            Certificate::from_der(b"not der".to_vec()),
            Err(JwsError::NotACertificate)
        );
        // Every truncation of a real certificate is refused, none panics.
        let der = Certificate::from_pem(APP_CERT).unwrap().der().to_vec();
        for n in 0..der.len() {
            assert!(Certificate::from_der(der[..n].to_vec()).is_err(), "{n}");
        }
    }
}

/// Just enough DER (X.690) to find a certificate's public key; ring parses the key itself.
mod der {
    use super::JwsError;

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    /// `[0] EXPLICIT Version`, absent in version 1 certificates.
    const VERSION: u8 = 0xa0;
    /// The `AlgorithmIdentifier`'s OID for RSA keys, 1.2.840.113549.1.1.1, as DER.
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];

    /// The content of the element of type `tag` at the start of `input`, and what follows it.
    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&found, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (found == tag && rest.len() >= len).then(|| rest.split_at(len))
    }

    /// The PKCS#1 `RSAPublicKey` of an X.509 certificate (RFC 5280 §4.1: `Certificate` →
    /// `tbsCertificate` → [version], serial, signature, issuer, validity, subject,
    /// `subjectPublicKeyInfo`), if it is RSA of 2048 to 8192 bits.
    pub(super) fn rsa_key(cert: &[u8]) -> Result<&[u8], JwsError> {
        let not = || JwsError::NotACertificate;
        let (certificate, rest) = expect(cert, SEQUENCE).ok_or_else(not)?;
        let (mut tbs, _) = expect(certificate, SEQUENCE).ok_or_else(not)?;
        if !rest.is_empty() {
            return Err(not());
        }
        if tbs.first() == Some(&VERSION) {
            tbs = expect(tbs, VERSION).ok_or_else(not)?.1;
        }
        tbs = expect(tbs, INTEGER).ok_or_else(not)?.1;
        for _ in ["signature", "issuer", "validity", "subject"] {
            tbs = expect(tbs, SEQUENCE).ok_or_else(not)?.1;
        }
        let (spki, _) = expect(tbs, SEQUENCE).ok_or_else(not)?;
        let (algorithm, rest) = expect(spki, SEQUENCE).ok_or_else(not)?;
        if !algorithm.starts_with(RSA_ENCRYPTION) {
            return Err(JwsError::Key);
        }
        let (bits, _) = expect(rest, BIT_STRING).ok_or_else(not)?;
        // A key is whole bytes: no unused bits.
        let key = bits.strip_prefix(&[0]).ok_or(JwsError::Key)?;
        let (rsa, _) = expect(key, SEQUENCE).ok_or(JwsError::Key)?;
        let (modulus, _) = expect(rsa, INTEGER).ok_or(JwsError::Key)?;
        let size = modulus.iter().skip_while(|&&b| b == 0).count() * 8;
        if !(2048..=8192).contains(&size) {
            return Err(JwsError::Key);
        }
        Ok(key)
    }
}
