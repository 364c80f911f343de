//! The web UI: server-rendered pages (askama templates in `templates/web/`), no scripts.
//!
//! - `auth`      login, identity verification (R-U1, R-U2), logout; the session extractors
//! - `settings`  personal settings: information, password, Reset My Security Token, integration
//!   tokens, TOTP, login history, sessions
//! - `setup`     Setup, for admins of the org
//!
//! Every page answers with a strict Content-Security-Policy (no inline script or style, forms
//! only to this origin), `no-store`, and is rendered for one session. Every form carries a CSRF
//! token: derived from the session id for logged-in forms, a double-submit cookie before login.
//! Cookies are `HttpOnly; SameSite=Lax`, plus `Secure` over TLS.

pub mod auth;
pub mod settings;
pub mod setup;

use super::AppState;
use crate::service::ServiceError;
use askama::Template;
use axum::Router;
use axum::extract::FromRequest;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;

/// The pages' policy: this origin's stylesheet and images (and `data:` images), nothing
/// inline, no frames, forms only to this origin.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../../static/keyward.css");
/// The brand's ring on navy, 32 × 32: browsers ask for `/favicon.ico` on every page view.
const FAVICON: &[u8] = include_bytes!("../../../static/favicon.ico");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/keyward.css", get(stylesheet))
        .route("/favicon.ico", get(favicon))
        .merge(auth::routes())
        .merge(settings::routes())
        .merge(setup::routes())
        .layer(axum::middleware::from_fn(refuse_control_paths))
}

/// A page whose path holds a control character (`/setup/users/005…%0A`) names nothing: 404
/// before any handler runs, so no action is taken and no redirect carries it.
async fn refuse_control_paths(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if crate::http::extract::path_has_control(req.uri()) {
        let missing =
            ServiceError::NotFound("no such page: the address holds a control character".into());
        return WebError::from(missing).into_response();
    }
    next.run(req).await
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// Who the header shows.
pub struct Who {
    pub name: String,
    pub org: String,
    pub admin: bool,
}

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every page's frame needs: title, the logged-in user, the side navigation, messages.
pub struct Chrome {
    pub title: String,
    pub user: Option<Who>,
    /// `settings` or `setup`: which top link is current.
    pub area: &'static str,
    pub nav: Vec<NavItem>,
    pub nav_label: &'static str,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Chrome {
    /// A page for someone not logged in.
    pub fn public(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            user: None,
            area: "",
            nav: Vec::new(),
            nav_label: "",
            csrf: String::new(),
            notice: None,
            error: None,
        }
    }

    pub fn with_error(mut self, e: impl Into<String>) -> Chrome {
        self.error = Some(e.into());
        self
    }

    pub fn with_notice(mut self, n: Option<impl Into<String>>) -> Chrome {
        self.notice = n.map(Into::into);
        self
    }
}

/// Renders a page with the pages' headers.
pub fn page(t: &impl Template) -> Response {
    page_with(StatusCode::OK, t)
}

pub fn page_with(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, page_headers(), html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.\n",
            )
                .into_response()
        }
    }
}

fn page_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

#[derive(Template)]
#[template(path = "web/message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    heading: &'a str,
    text: &'a str,
    request_id: &'a str,
    back: &'a str,
    back_label: &'a str,
}

/// A form with no fields but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct Nothing {}

/// One login attempt in a page's table (My Login History, Setup → Login History).
pub struct HistoryLine {
    pub time: String,
    pub username: String,
    pub source_ip: String,
    pub login_type: String,
    pub status: String,
    pub client: String,
    pub api_version: String,
    /// Which credential logged in (or was refused): a security token, an integration token…
    pub credential: String,
}

impl From<crate::service::views::LoginAttempt> for HistoryLine {
    fn from(r: crate::service::views::LoginAttempt) -> HistoryLine {
        HistoryLine {
            time: crate::service::fmt_ms(r.login_at),
            username: r.username.unwrap_or_default(),
            source_ip: r.source_ip,
            login_type: r.login_type,
            status: r.status,
            client: r.client,
            api_version: r.api_version,
            credential: r.credential,
        }
    }
}

/// The one error type of the pages. Service errors keep their text (written for the person
/// who made the request, never secret); internal ones show only the request id.
#[derive(Debug)]
pub enum WebError {
    /// No valid session: back to the login page.
    LoggedOut,
    /// The session's password has expired: only the change-password page is open (R-L6).
    PasswordExpired,
    /// The CSRF token was missing or wrong.
    Forgery,
    /// A page of Setup for a user who is not an admin of the org.
    NotAdmin,
    BadForm(String),
    Service(ServiceError),
}

/// The one conversion of a service error on the pages: handlers use `?`; the page quotes the
/// request id (written in by the request-id layer) and the server's own trouble is logged in
/// the request's span, which names it.
impl From<ServiceError> for WebError {
    fn from(e: ServiceError) -> WebError {
        WebError::Service(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, text, rid) = match self {
            WebError::LoggedOut => return Redirect::to("/").into_response(),
            WebError::PasswordExpired => return Redirect::to("/settings/password").into_response(),
            WebError::Forgery => (
                StatusCode::FORBIDDEN,
                "The form expired",
                "This form was not sent from a page keyward showed you in this session, or the \
                 session has changed since. Nothing was changed. Go back, reload the page and try \
                 again."
                    .to_string(),
                String::new(),
            ),
            WebError::NotAdmin => (
                StatusCode::FORBIDDEN,
                "Setup is for administrators",
                "Only users whose profile has \"manage users\" can open Setup.".to_string(),
                String::new(),
            ),
            WebError::BadForm(m) => (
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                m,
                String::new(),
            ),
            WebError::Service(e) => {
                let status = match &e {
                    ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                    ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
                    ServiceError::Conflict(_) => StatusCode::CONFLICT,
                    ServiceError::Refused(_) => StatusCode::FORBIDDEN,
                    ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let text = match &e {
                    ServiceError::Internal(m) | ServiceError::Unavailable(m) => {
                        tracing::error!(error = %m, "page failed");
                        "Something went wrong on our side; nothing was changed. Try again in a \
                         moment, and give your administrator the request id if it happens again."
                            .to_string()
                    }
                    other => capitalise(&other.to_string()),
                };
                let heading = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => {
                        "Something went wrong"
                    }
                    _ => "That did not work",
                };
                let page = move |id: &str| {
                    MessagePage {
                        chrome: Chrome::public(heading),
                        heading,
                        text: &text,
                        request_id: id,
                        back: "/",
                        back_label: "Back to keyward",
                    }
                    .render()
                    .unwrap_or_default()
                };
                let response = (status, page_headers(), page("-")).into_response();
                return crate::http::BodyWithRequestId::attach(response, page);
            }
        };
        page_with(
            status,
            &MessagePage {
                chrome: Chrome::public(heading),
                heading,
                text: &text,
                request_id: &rid,
                back: "/",
                back_label: "Back to keyward",
            },
        )
    }
}

/// Service errors the person can fix (bad input, a conflict, a refusal) are shown on the page
/// they came from; the others become the error page.
pub fn user_error(e: ServiceError) -> Result<String, WebError> {
    match e {
        ServiceError::Invalid(_) | ServiceError::Conflict(_) | ServiceError::Refused(_) => {
            Ok(capitalise(&e.to_string()))
        }
        other => Err(other.into()),
    }
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The value of a cookie, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` over TLS; `max_age`
/// `None` for a cookie that ends with the browser session, `Some(0)` to delete it.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, tls: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if tls {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// A form body, size-limited like every body, decoded into `T`. Fields `T` does not name are
/// ignored (the CSRF token is checked by whoever takes the form).
pub struct WebForm<T> {
    pub csrf: String,
    pub data: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for WebForm<T> {
    type Rejection = WebError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = super::extract::read_body(body, &parts.headers, state.http.max_body_bytes)
            .await
            .map_err(|e| WebError::BadForm(capitalise(&e.to_string())))?;
        let csrf = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .map(|f| f.csrf)
            .unwrap_or_default();
        let data = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| WebError::BadForm(format!("The form is not valid: {e}.")))?;
        Ok(WebForm { csrf, data })
    }
}

/// A checkbox: present (any value) means on.
pub fn checked(v: &Option<String>) -> bool {
    v.is_some()
}

/// An empty text field means "not given".
pub fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An RFC 3339 instant of a service view as the pages write instants (`2026-11-24 09:00:00
/// UTC`); text that is no such instant is shown as it is.
pub fn shown_instant(rfc3339: &str) -> String {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map_or_else(|_| rfc3339.to_string(), crate::service::fmt_time)
}

/// A one-line confirmation for `?done=…` after a redirect (post/redirect/get).
#[derive(serde::Deserialize, Default)]
pub struct Done {
    pub done: Option<String>,
}
