//! RS256 JSON Web Signatures (RFC 7515, RFC 7518 §3.3) checked with the key of an X.509
//! certificate: the assertions of the JWT bearer grant (RFC 7523), signed by the private key of
//! the certificate an admin uploaded for a connected app. The certificate is parsed and the
//! signature verified by webpki and ring, the libraries that already check keyward's TLS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Map, Value};

/// An uploaded certificate, checked to parse when it is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)")]
    NotACertificate,
    #[error("not a JWT: three base64url parts with a JSON header and payload")]
    Malformed,
    /// The header names another algorithm than RS256 (`none`, or HS256 keyed with the public
    /// key): refused whatever follows, as the algorithm comes from the app, never the token.
    #[error("the assertion must be signed with RS256, not {0:?}")]
    Algorithm(String),
    #[error("the assertion's signature does not match the app's certificate")]
    Signature,
}

impl Certificate {
    /// The first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Certificate, JwsError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| JwsError::NotACertificate)?;
        webpki::EndEntityCert::try_from(&der).map_err(|_| JwsError::NotACertificate)?;
        Ok(Certificate {
            der: der.as_ref().to_vec(),
        })
    }

    /// The certificate as stored: its DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn from_der(der: Vec<u8>) -> Result<Certificate, JwsError> {
        let parsed = CertificateDer::from(der.as_slice());
        webpki::EndEntityCert::try_from(&parsed).map_err(|_| JwsError::NotACertificate)?;
        Ok(Certificate { der })
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
        other => return Err(JwsError::Algorithm(other.unwrap_or("").to_string())),
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwsError::Malformed)?;
    let der = CertificateDer::from(cert.der.as_slice());
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| JwsError::NotACertificate)?;
    cert.verify_signature(
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        signed.as_bytes(),
        &signature,
    )
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
        // An RS256 token checked against a certificate whose key is not RSA.
        let ec = Certificate::from_pem(EC_CERT).unwrap();
        assert_eq!(verify_rs256(&token, &ec), Err(JwsError::Signature));
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
    }
}
