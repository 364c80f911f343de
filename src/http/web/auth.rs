//! Browser login: username and password (R-L4, R-L5, R-L8 through the one login service), the
//! identity-verification step (R-U1: emailed code; R-U2: authenticator), logout; and the
//! extractors that give a page its session ([`Signed`]) or refuse it to non-admins ([`Admin`]).

use super::{Chrome, WebError, WebForm, Who, cookie, page, set_cookie};
use crate::crypto::{ct_eq, digest, random_base62};
use crate::domain::login::{Channel, LoginOutcome};
use crate::domain::secret::Password;
use crate::domain::token::SuppliedSecret;
use crate::domain::verification::Method;
use crate::http::extract::{BaseUrl, ClientIp, user_agent};
use crate::http::web::Nothing;
use crate::http::{AppState, wait_text, with_retry_after};
use crate::service::Actor;
use crate::service::login::LoginRequest;
use crate::service::sessions::ActiveSession;
use crate::service::verification::{BrowserId, ChallengeId, VerifyOutcome, VerifyRequest};
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub const SESSION_COOKIE: &str = "kw_sid";
pub const BROWSER_COOKIE: &str = "kw_browser";
pub const CHALLENGE_COOKIE: &str = "kw_challenge";
/// The double-submit CSRF cookie of the forms shown before login.
pub const LOGIN_CSRF_COOKIE: &str = "kw_csrf";
const BROWSER_COOKIE_DAYS: i64 = 365;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(login_page))
        .route("/login", post(login).get(|| async { Redirect::to("/") }))
        .route("/verify", get(verify_page).post(verify))
        .route("/logout", post(logout))
}

/// A page's session: a live web session (login type `Application`) of an active user.
pub struct Signed {
    pub session: std::sync::Arc<ActiveSession>,
    pub actor: Actor,
    pub csrf: String,
    pub admin: bool,
}

impl Signed {
    /// The header and the logout form.
    pub fn chrome(&self, title: impl Into<String>, area: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            user: Some(Who {
                name: self.session.user().display_name(),
                org: self.session.org().name.clone(),
                admin: self.admin,
            }),
            area,
            nav: Vec::new(),
            nav_label: "",
            csrf: self.csrf.clone(),
            notice: None,
            error: None,
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check<T>(&self, form: &WebForm<T>) -> Result<(), WebError> {
        if ct_eq(&form.csrf, &self.csrf) {
            Ok(())
        } else {
            Err(WebError::Forgery)
        }
    }

    pub fn user_id(&self) -> &str {
        self.session.user_id()
    }
}

/// The CSRF token of a session: derived from the session id, which only this browser holds
/// (HttpOnly cookie), so a page of another origin cannot know it.
fn csrf_for(session_id: &str) -> String {
    digest(&format!("csrf:{session_id}"))[..32].to_string()
}

/// Paths a session whose password has expired may use (R-L6).
fn open_when_expired(path: &str) -> bool {
    matches!(
        path,
        "/settings/password" | "/logout" | "/static/keyward.css"
    )
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Some(sid) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(WebError::LoggedOut);
        };
        let services = &state.services;
        let session = services
            .check_session(sid)
            .await?
            .filter(|s| s.login_type() == Channel::Ui.login_type())
            .ok_or(WebError::LoggedOut)?;
        if session.password_expired() && !open_when_expired(parts.uri.path()) {
            return Err(WebError::PasswordExpired);
        }
        let actor = services.actor_for(&session).await?;
        let admin = matches!(actor, Actor::User { admin: true, .. });
        Ok(Signed {
            csrf: csrf_for(sid),
            session,
            actor,
            admin,
        })
    }
}

/// A page of Setup: the session of an admin of the org (R-M1 keeps them inside it).
pub struct Admin(pub Signed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let signed = Signed::from_request_parts(parts, state).await?;
        if !signed.admin {
            return Err(WebError::NotAdmin);
        }
        Ok(Admin(signed))
    }
}

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    csrf: &'a str,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "web/verify.html")]
struct VerifyPage<'a> {
    chrome: Chrome,
    csrf: &'a str,
    totp: bool,
    masked_email: &'a str,
}

/// The pre-login CSRF cookie: reuses the browser's if it has a sane one.
fn login_csrf(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        Some(v) => (v.to_string(), false),
        None => (random_base62(32), true),
    }
}

fn check_login_csrf<T>(headers: &HeaderMap, form: &WebForm<T>) -> Result<(), WebError> {
    match cookie(headers, LOGIN_CSRF_COOKIE) {
        Some(c) if !form.csrf.is_empty() && ct_eq(c, &form.csrf) => Ok(()),
        _ => Err(WebError::Forgery),
    }
}

fn login_form(state: &AppState, headers: &HeaderMap, chrome: Chrome, username: &str) -> Response {
    let (csrf, new) = login_csrf(headers);
    let mut r = page(&LoginPage {
        chrome,
        csrf: &csrf,
        username,
    });
    if new {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(LOGIN_CSRF_COOKIE, &csrf, None, state.http.tls),
        );
    }
    r
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Already logged in: straight to the settings.
    if let Some(sid) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(s)) = state.services.check_session(sid).await
        && s.login_type() == Channel::Ui.login_type()
    {
        return Redirect::to("/settings").into_response();
    }
    login_form(&state, &headers, Chrome::public("Log in"), "")
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// What a failed login tells the person: the generic answer for every credential failure
/// (R-L4), specific only where the credentials were right.
fn failure_text(outcome: LoginOutcome) -> &'static str {
    match outcome {
        LoginOutcome::ApiOnlyUser => {
            "This user is an API-only user and cannot log in to the web interface. Use the API \
             with the password followed by the security token."
        }
        _ => {
            "Please check your username and password. If you still can't log in, contact your \
             administrator."
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    form: WebForm<LoginForm>,
) -> Result<Response, WebError> {
    check_login_csrf(&headers, &form)?;
    let mut req = LoginRequest::new(
        form.data.username.trim(),
        SuppliedSecret::password_only(Password::new(form.data.password)),
        Channel::Ui,
        ip,
    );
    req.client = user_agent(&headers).to_string();
    req.login_url = format!("{base}/");
    req.browser = cookie(&headers, BROWSER_COOKIE).and_then(BrowserId::parse);
    let response = state.services.login_detached(req).await?;
    let tls = state.http.tls;
    match (response.outcome, response.session, response.challenge) {
        (LoginOutcome::Success { password_expired }, Some(s), _) => {
            let to = if password_expired {
                "/settings/password?done=expired"
            } else {
                "/settings"
            };
            Ok(signed_in(s.id.expose(), to, tls))
        }
        (LoginOutcome::IdentityVerificationRequired, _, Some(ch)) => {
            let mut r = Redirect::to("/verify").into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(CHALLENGE_COOKIE, ch.id.expose(), Some(600), tls),
            );
            Ok(r)
        }
        (LoginOutcome::AddressLimited, _, _) => Ok(address_limited(
            &state,
            &headers,
            response.retry_after,
            form.data.username.trim(),
        )),
        (outcome, _, _) => Ok(login_form(
            &state,
            &headers,
            Chrome::public("Log in").with_error(failure_text(outcome)),
            form.data.username.trim(),
        )),
    }
}

/// The login page, 429, when the address is over its failed-login limit: what happened and
/// when to come back. Nothing was checked, so it says nothing about the account.
fn address_limited(
    state: &AppState,
    headers: &HeaderMap,
    wait: Option<time::Duration>,
    username: &str,
) -> Response {
    let when = wait.map_or_else(|| "later".to_string(), |w| format!("in {}", wait_text(w)));
    let mut r = login_form(
        state,
        headers,
        Chrome::public("Log in").with_error(format!(
            "Too many failed logins from your network address. Try again {when}, or ask your \
             administrator."
        )),
        username,
    );
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    with_retry_after(r, wait)
}

/// The answer of a completed login: a new session cookie (a session id is never reused across
/// logins, so a planted cookie is worthless), the challenge cookie gone.
fn signed_in(session_id: &str, to: &str, tls: bool) -> Response {
    let mut r = Redirect::to(to).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, session_id, None, tls),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CHALLENGE_COOKIE, "", Some(0), tls),
    );
    r
}

async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let Some(challenge) = cookie(&headers, CHALLENGE_COOKIE).and_then(ChallengeId::parse) else {
        return Ok(Redirect::to("/").into_response());
    };
    let Some(info) = state.services.challenge_info(&challenge).await? else {
        return Ok(expired(&state, &headers));
    };
    Ok(verify_form(
        &state,
        &headers,
        Chrome::public("Verify your identity"),
        info.method == Method::Totp,
        &info.masked_email,
    ))
}

fn verify_form(
    state: &AppState,
    headers: &HeaderMap,
    chrome: Chrome,
    totp: bool,
    masked_email: &str,
) -> Response {
    let (csrf, new) = login_csrf(headers);
    let mut r = page(&VerifyPage {
        chrome,
        csrf: &csrf,
        totp,
        masked_email,
    });
    if new {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(LOGIN_CSRF_COOKIE, &csrf, None, state.http.tls),
        );
    }
    r
}

fn expired(state: &AppState, headers: &HeaderMap) -> Response {
    let mut r = login_form(
        state,
        headers,
        Chrome::public("Log in").with_error(
            "Your verification code expired or was used up. Log in again to get a new one.",
        ),
        "",
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(CHALLENGE_COOKIE, "", Some(0), state.http.tls),
    );
    r
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    code: String,
}

async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    form: WebForm<VerifyForm>,
) -> Result<Response, WebError> {
    check_login_csrf(&headers, &form)?;
    let Some(challenge) = cookie(&headers, CHALLENGE_COOKIE).and_then(ChallengeId::parse) else {
        return Ok(Redirect::to("/").into_response());
    };
    let info = state.services.challenge_info(&challenge).await?;
    let outcome = state
        .services
        .verify_identity_detached(VerifyRequest {
            challenge,
            code: form.data.code,
            source_ip: ip,
            user_agent: user_agent(&headers).to_string(),
            login_url: format!("{base}/"),
        })
        .await?;
    let tls = state.http.tls;
    Ok(match outcome {
        VerifyOutcome::Verified { session, browser } => {
            let to = if session.password_expired {
                "/settings/password?done=expired"
            } else {
                "/settings"
            };
            let mut r = signed_in(session.id.expose(), to, tls);
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    BROWSER_COOKIE,
                    browser.expose(),
                    Some(BROWSER_COOKIE_DAYS * 86_400),
                    tls,
                ),
            );
            r
        }
        VerifyOutcome::WrongCode { attempts_left } => {
            let info = info.as_ref();
            verify_form(
                &state,
                &headers,
                Chrome::public("Verify your identity").with_error(format!(
                    "That code is not right. You can try {attempts_left} more time{}.",
                    if attempts_left == 1 { "" } else { "s" }
                )),
                info.is_some_and(|i| i.method == Method::Totp),
                info.map_or("", |i| i.masked_email.as_str()),
            )
        }
        VerifyOutcome::Expired => expired(&state, &headers),
        VerifyOutcome::AddressLimited { retry_after } => {
            address_limited(&state, &headers, Some(retry_after), "")
        }
        VerifyOutcome::Refused(_) => {
            let mut r = login_form(
                &state,
                &headers,
                Chrome::public("Log in").with_error(failure_text(LoginOutcome::InvalidLogin)),
                "",
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(CHALLENGE_COOKIE, "", Some(0), tls),
            );
            r
        }
    })
}

/// Ends the session and forgets its cookie.
async fn logout(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    form: WebForm<Nothing>,
) -> Result<Response, WebError> {
    signed.check(&form)?;
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        state.services.logout(sid).await?;
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), state.http.tls),
    );
    Ok(r)
}

/// The redirect after a form (post/redirect/get), with a confirmation code for the page.
pub fn done(path: &str, what: &str) -> Response {
    Redirect::to(&format!("{path}?done={what}")).into_response()
}
