//! What handlers take from a request: the client's address (R-L11), the base URL clients
//! reach this server at, and the body — size-limited before parsing and again after gzip
//! decompression (docs/rules.md, Non-functional).

use super::{AppState, RequestId};
use crate::domain::ip::{any_contains, client_ip};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The TCP peer of the connection, as the server recorded it.
fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn from_trusted_proxy(parts: &Parts, state: &AppState) -> bool {
    any_contains(&state.http.trusted_proxies, peer(parts))
}

/// The client's address (R-L11): the TCP peer, or the right-most untrusted
/// `X-Forwarded-For` entry when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        // Decoded lossily, never skipped: a proxy appends the real client to whatever the
        // client sent in one header line, so dropping a line that holds a byte that is not
        // UTF-8 would drop the real client with it (and make the proxy the client).
        let forwarded: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let forwarded: Vec<&str> = forwarded.iter().map(String::as_str).collect();
        Ok(ClientIp(client_ip(
            peer(parts),
            &forwarded,
            &state.http.trusted_proxies,
        )))
    }
}

/// `scheme://host[:port]` that clients reach this server at, with no trailing slash: the
/// configured `server.public_url`, else this listener's scheme and the request's `Host` (or
/// `X-Forwarded-Proto`/`X-Forwarded-Host` from a trusted proxy), else the listen address.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(u) = &state.http.public_url {
            return Ok(BaseUrl(u.clone()));
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        };
        let proxied = from_trusted_proxy(parts, state);
        let mut scheme = if state.http.tls { "https" } else { "http" };
        let mut host = header("host").or_else(|| parts.uri.authority().map(|a| a.to_string()));
        if proxied {
            match header("x-forwarded-proto").as_deref() {
                Some("https") => scheme = "https",
                Some("http") => scheme = "http",
                _ => {}
            }
            if let Some(h) = header("x-forwarded-host") {
                host = Some(h);
            }
        }
        let host = host
            .filter(|h| valid_authority(h))
            .unwrap_or_else(|| state.http.local_addr.to_string());
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

/// A Host header worth echoing into URLs: a host name or address with an optional port.
fn valid_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// What the login endpoints — SOAP and the OAuth token endpoint — read besides their body's
/// content: the client's address, the base URL, the URL logged in at (login history), the
/// headers, and the body, still unread.
pub struct LoginCall {
    pub ip: IpAddr,
    pub base: String,
    pub login_url: String,
    pub headers: HeaderMap,
    pub body: Body,
}

impl FromRequest<AppState> for LoginCall {
    type Rejection = Infallible;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Infallible> {
        let (mut parts, body) = req.into_parts();
        let ClientIp(ip) = ClientIp::from_request_parts(&mut parts, state).await?;
        let BaseUrl(base) = BaseUrl::from_request_parts(&mut parts, state).await?;
        Ok(LoginCall {
            login_url: format!("{base}{}", parts.uri.path()),
            ip,
            base,
            headers: parts.headers,
            body,
        })
    }
}

impl RequestId {
    /// The id the request-id middleware gave this request (`-` outside it).
    pub fn of(parts: &Parts) -> RequestId {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId("-".into()))
    }
}

/// The request id, for handlers that put it in an error answer.
impl FromRequestParts<AppState> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Infallible> {
        Ok(RequestId::of(parts))
    }
}

/// Whether the request's path, percent-decoded, holds a control character (`%0A`, `%00`): such
/// a path names no record, and is refused before any handler runs.
pub fn path_has_control(uri: &axum::http::Uri) -> bool {
    percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .chars()
        .any(char::is_control)
}

/// The User-Agent, for login history when a protocol names no client.
pub fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body is larger than {0} bytes once decompressed")]
    TooLargeDecompressed(usize),
    #[error("Content-Encoding {0:?} is not supported: send the body plain or gzip-compressed")]
    UnsupportedEncoding(String),
    #[error("the gzip-compressed request body is corrupt")]
    BadGzip,
    #[error("the request body could not be read: the client stopped sending it")]
    Incomplete,
}

/// How much of a too-large body is read and thrown away before answering 413. Answering while
/// the client is still sending makes its TCP stack see a reset and lose the answer; reading the
/// rest first (without keeping it) lets a client that sends, say, 10 MB learn why it was
/// refused. Bodies declared larger than this are refused at once.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

impl BodyError {
    /// The HTTP status that says what was wrong.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            BodyError::TooLarge(_) | BodyError::TooLargeDecompressed(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::BadGzip | BodyError::Incomplete => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the whole body, keeping at most `limit` bytes as sent and at most `limit` bytes after
/// gzip decompression, so a gzip bomb costs `limit` of memory. Chunked bodies are decoded by
/// hyper before they reach here.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let gzip = match encoding.as_str() {
        "" | "identity" => false,
        "gzip" | "x-gzip" => true,
        other => {
            return Err(BodyError::UnsupportedEncoding(
                other.chars().take(40).collect(),
            ));
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = body;
    let mut raw = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Incomplete)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > DRAIN_CAP {
            break;
        }
        if seen <= limit {
            raw.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(BodyError::TooLarge(limit));
    }
    let raw = Bytes::from(raw);
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, limit)
}

/// Decompresses at most `limit` bytes; one byte more means the body is too large.
pub fn gunzip(raw: &[u8], limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| BodyError::BadGzip)?;
    if out.len() > limit {
        return Err(BodyError::TooLargeDecompressed(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn bodies_are_limited_before_and_after_decompression() {
        let plain = read_body(Body::from("hello"), &headers(&[]), 10).await;
        assert_eq!(plain.unwrap(), Bytes::from("hello"));
        let big = read_body(Body::from(vec![b'a'; 11]), &headers(&[]), 10).await;
        assert_eq!(big.unwrap_err(), BodyError::TooLarge(10));
        let declared = read_body(
            Body::from("x"),
            &headers(&[("content-length", "99999999")]),
            10,
        )
        .await;
        assert_eq!(declared.unwrap_err(), BodyError::TooLarge(10));

        let g = headers(&[("content-encoding", "gzip")]);
        let ok = read_body(Body::from(gz(b"<login/>")), &g, 100).await;
        assert_eq!(ok.unwrap(), Bytes::from("<login/>"));
        // A bomb: 10 MB of zeros compresses to ~10 KB.
        let bomb = gz(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let r = read_body(Body::from(bomb), &g, 1024 * 1024).await;
        assert_eq!(r.unwrap_err(), BodyError::TooLargeDecompressed(1024 * 1024));
        let corrupt = read_body(Body::from("not gzip"), &g, 100).await;
        assert_eq!(corrupt.unwrap_err(), BodyError::BadGzip);
        let br = read_body(
            Body::from("x"),
            &headers(&[("content-encoding", "br")]),
            100,
        )
        .await;
        assert!(matches!(br.unwrap_err(), BodyError::UnsupportedEncoding(_)));
    }

    #[test]
    fn host_headers_worth_echoing() {
        assert!(valid_authority("127.0.0.1:8080"));
        assert!(valid_authority("[::1]:443"));
        assert!(valid_authority("login.example.com"));
        assert!(!valid_authority("evil.com/path"));
        assert!(!valid_authority("a b"));
        assert!(!valid_authority("x\"><script>"));
        assert!(!valid_authority(""));
    }
}
