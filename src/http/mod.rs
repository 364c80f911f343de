//! HTTP: the only module that knows axum and hyper. Each interface is a thin layer that reads
//! the request, calls `service`, and writes the answer in its protocol's shape:
//!
//! - `soap/`     SOAP `login`, `logout`, `getUserInfo`, `setPassword` (docs/wire.md §1)
//! - `oauth`     `/services/oauth2/token|revoke|introspect|userinfo` (docs/wire.md §2)
//! - `identity`  the identity URL `/id/{orgId}/{userId}`
//! - `ops`       `/healthz`, `/metrics`
//!
//! Around them, for every request: path normalisation (repeated and trailing slashes; hyper
//! already reduces absolute-form targets to their path), a request id, one log line, a timeout,
//! and security headers. `server` accepts connections (plain or TLS) with a header timeout and
//! shuts down gracefully.

pub mod api;
pub mod extract;
pub mod identity;
pub(crate) mod multipart;
pub mod oauth;
pub mod ops;
pub mod server;
pub mod soap;
pub mod web;

use crate::domain::ip::IpRange;
use crate::service::Services;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::Layer;
use tracing::Instrument;

/// What the HTTP layer needs to know about how it is deployed.
#[derive(Clone)]
pub struct HttpConfig {
    /// `server.public_url`, without a trailing slash; `None`: from the request's Host.
    pub public_url: Option<String>,
    /// This listener serves https.
    pub tls: bool,
    /// R-L11
    pub trusted_proxies: Vec<IpRange>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Where this server listens: the base URL when a request has no usable Host.
    pub local_addr: SocketAddr,
    /// `server.metrics_token`; `None`: `/metrics` is off.
    pub metrics_token: Option<String>,
}

impl HttpConfig {
    pub fn from_config(config: &crate::config::Config, local_addr: SocketAddr) -> Self {
        HttpConfig {
            public_url: (!config.server.public_url.is_empty()).then(|| config.public_url()),
            tls: config.tls_enabled(),
            trusted_proxies: config.trusted_proxies().unwrap_or_default(),
            max_body_bytes: usize::try_from(config.server.max_body_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(config.server.request_timeout_seconds),
            local_addr,
            metrics_token: (!config.server.metrics_token.0.is_empty())
                .then(|| config.server.metrics_token.0.clone()),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub http: Arc<HttpConfig>,
}

/// Adds `Retry-After` (whole seconds, at least 1) to an answer refused for a while: the
/// per-address failed-login limit.
pub(crate) fn with_retry_after(mut r: Response, wait: Option<time::Duration>) -> Response {
    if let Some(wait) = wait {
        let secs = wait.whole_seconds().max(1) + i64::from(wait.subsec_nanoseconds() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    r
}

/// "14 minutes", "1 minute", "30 seconds": a wait, for people.
pub(crate) fn wait_text(wait: time::Duration) -> String {
    let secs = wait.whole_seconds().max(1);
    let (n, unit) = if secs >= 90 {
        ((secs + 59) / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The request id of this request (`X-Request-Id`), for logs and error answers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The body of an answer that quotes its request id — the server's own trouble, which the
/// client is asked to report with the id. The request-id layer writes it, so every surface turns
/// a service error into its own error with `?` alone, and the error was logged in the request's
/// span, which carries the id.
#[derive(Clone)]
pub struct BodyWithRequestId(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl BodyWithRequestId {
    /// `response`, whose body becomes `body(request id)`.
    pub fn attach(
        mut response: Response,
        body: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Response {
        response
            .extensions_mut()
            .insert(BodyWithRequestId(Arc::new(body)));
        response
    }
}

/// The routes. Paths are matched after [`normalize_path`], so each is listed once.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(soap::routes())
        .merge(oauth::routes())
        .merge(identity::routes())
        .merge(web::routes())
        .merge(api::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.http.tls,
            security_headers,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.http.request_timeout,
        ))
        .layer(axum::middleware::from_fn(api::json_errors))
        .layer(axum::middleware::from_fn(request_id_and_log))
        .with_state(state)
}

/// The whole application as one service: path normalisation must happen before routing, so it
/// wraps the router rather than being one of its layers.
pub fn app(state: AppState) -> NormalizedApp {
    tower::util::MapRequestLayer::new(normalize_path as fn(Request) -> Request).layer(router(state))
}

pub type NormalizedApp = tower::util::MapRequest<Router, fn(Request) -> Request>;

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not found\n")
}

/// `//services/Soap/u/59.0/` → `/services/Soap/u/59.0` (docs/wire.md §0.1: jsforce with a
/// trailing slash in its login URL, Data Loader's forced trailing slash).
fn normalize_path(mut req: Request) -> Request {
    let path = req.uri().path();
    if path == "/" || (!path.contains("//") && !path.ends_with('/')) {
        return req;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(q) = req.uri().query() {
        clean.push('?');
        clean.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = clean.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Takes the client's `X-Request-Id` when it is a sane token, else makes one; returns it on
/// the response; logs one line per request — the path only, never the query string, which can
/// hold an access token (`/id/…?oauth_token=…`).
async fn request_id_and_log(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::crypto::random_base62(20));
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().chars().take(200).collect::<String>();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span).await;
    if let Some(body) = response.extensions_mut().remove::<BodyWithRequestId>() {
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = axum::body::Body::from((body.0)(&id));
    }
    let status = response.status();
    tracing::info!(
        request_id = %id,
        %method,
        path = %path,
        status = status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "http request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    response
}

/// Security headers on every answer, unless a handler set its own.
async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
    // Login answers carry sessions and tokens: nothing may be cached (RFC 6749 §5.1).
    set(header::CACHE_CONTROL, "no-store");
    set(header::PRAGMA, "no-cache");
    if tls {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_before_routing() {
        for (input, want) in [
            ("/services/Soap/u/59.0", "/services/Soap/u/59.0"),
            ("//services/Soap/u/59.0", "/services/Soap/u/59.0"),
            ("/services/Soap/u/64.0/", "/services/Soap/u/64.0"),
            (
                "/services//oauth2///token/?a=b",
                "/services/oauth2/token?a=b",
            ),
            ("/", "/"),
            ("//", "/"),
        ] {
            let req = Request::builder()
                .uri(input)
                .body(axum::body::Body::empty())
                .unwrap();
            let out = normalize_path(req);
            assert_eq!(
                out.uri().path_and_query().unwrap().as_str(),
                want,
                "{input}"
            );
        }
        let req = Request::builder()
            .uri("http://127.0.0.1:8080/services/Soap/u/36.0/")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(normalize_path(req).uri().path(), "/services/Soap/u/36.0");
    }
}
