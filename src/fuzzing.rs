//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): every parser that reads
//! what a client sends — SOAP envelopes, OAuth forms (form-encoded and multipart) and Basic
//! credentials, IP ranges and `X-Forwarded-For`, Salesforce ids, the password+token split. Each
//! runs the parser and checks the properties its callers rely on; a violated property panics,
//! which the fuzzer reports.
//! Not an API: `#[doc(hidden)]`, kept in the library so the targets reach private parsers.

use crate::domain::ids::SfId;
use crate::domain::ip::{IpRange, client_ip};
use crate::domain::secret::Password;
use crate::domain::token::{SuppliedSecret, looks_like_keyward_token};
use crate::http::soap::envelope::{self, Api};
use std::net::{IpAddr, Ipv4Addr};

/// A SOAP request body, as both APIs parse it. The depth pre-scan and the parser must agree
/// that a document deeper than the limit is refused before roxmltree recurses into it.
pub fn soap_envelope(data: &[u8]) {
    for api in [Api::Partner, Api::Enterprise] {
        let _ = envelope::parse(data, api);
    }
    let _ = crate::xml::exceeds_depth(data, crate::xml::MAX_DEPTH);
}

/// An OAuth request body and `Authorization: Basic` value (the first line of the input is the
/// header value, the rest the form).
pub fn oauth_form(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    // The same body as multipart/form-data, its boundary `q` (the seeds' choice) or named by
    // the first line read as a content type.
    for boundary in [
        Some(Ok("q".to_string())),
        std::str::from_utf8(header)
            .ok()
            .and_then(crate::http::multipart::boundary),
    ] {
        if let Some(Ok(b)) = boundary
            && let Ok(fields) = crate::http::multipart::fields(body, &b)
        {
            assert!(fields.iter().all(|(name, _)| !name.is_empty()));
        }
    }
    let form = crate::http::oauth::parse_pairs(body);
    if let Ok(form) = &form {
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(v) = axum::http::HeaderValue::from_bytes(header) {
            headers.insert(axum::http::header::AUTHORIZATION, v);
        }
        let _ = crate::http::oauth::client_credentials(&headers, form);
    }
}

/// IP ranges as an admin types them (`START` or `START END`), and a client address derived
/// from `X-Forwarded-For` values. A parsed range contains its own ends (but `::`, the unknown
/// client); the client address is the peer unless the peer is a trusted proxy.
pub fn ip_range(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(2, ' ');
    let start = parts.next().unwrap_or("");
    let end = parts.next();
    if let Ok(r) = IpRange::parse(start, end) {
        // `::` is the unknown client's address, in no range (`ip::UNKNOWN_CLIENT`).
        let own_end = |ip| ip == crate::domain::ip::UNKNOWN_CLIENT || r.contains(ip);
        assert!(own_end(r.start()) && own_end(r.end()), "{r:?}");
        assert!(r.size() >= 1);
    }
    let forwarded: Vec<&str> = text.lines().collect();
    let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    assert_eq!(
        client_ip(peer, &forwarded, &[]),
        peer,
        "an untrusted peer is the client"
    );
    if let Ok(proxies) = IpRange::parse("203.0.113.0/24", None) {
        let _ = client_ip(peer, &forwarded, &[proxies]);
    }
}

/// A Salesforce id, 15 or 18 characters: what parses round-trips through its 18-character form.
pub fn sf_id(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = SfId::parse(&text) {
        let again = SfId::parse(&id.to_18());
        assert!(
            again.as_ref().is_ok_and(|a| a.as_15() == id.as_15()),
            "{text:?}"
        );
    }
}

/// The password field of an API login: split into password and token only when the last 24
/// characters are a well-formed token, and then the parts put back together are what was sent.
pub fn token_split(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let s = SuppliedSecret::split(&Password::new(text.clone()));
    match &s.token {
        Some(t) => {
            assert!(looks_like_keyward_token(t.expose()));
            assert_eq!(format!("{}{}", s.password.expose(), t.expose()), text);
        }
        None => assert_eq!(s.password.expose(), text),
    }
    assert_eq!(s.whole().expose(), text);
}
