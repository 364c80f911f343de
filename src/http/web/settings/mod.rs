//! Personal settings: My Personal Information, Change My Password (R-T6, R-L10), Reset My
//! Security Token (R-T5; hidden and refused under R-T9) with where the token was used, the
//! integration tokens (`integration`), the authenticator app (R-U2), my login history, my
//! sessions and verified browsers.

pub mod integration;

use super::auth::{SESSION_COOKIE, Signed, done};
use super::{Chrome, Done, NavItem, WebError, WebForm, cookie, page};
use crate::domain::secret::Password;
use crate::http::AppState;
use crate::http::web::HistoryLine;
use crate::http::web::Nothing;
use crate::service::account::{RefreshTokenView, UserChange};
use crate::service::{ServiceError, fmt_ms, id18};
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(info_page).post(save_info))
        .route(
            "/settings/password",
            get(password_page).post(change_password),
        )
        .route("/settings/token", get(token_page).post(reset_token))
        .route(
            "/settings/integration-tokens",
            get(integration::list_page).post(integration::create),
        )
        .route(
            "/settings/integration-tokens/{id}",
            get(integration::usage_page),
        )
        .route(
            "/settings/integration-tokens/{id}/{action}",
            post(integration::action),
        )
        .route("/settings/mfa", get(mfa_page))
        .route("/settings/mfa/start", post(mfa_start))
        .route("/settings/mfa/confirm", post(mfa_confirm))
        .route("/settings/mfa/remove", post(mfa_remove))
        .route("/settings/history", get(history_page))
        .route("/settings/sessions", get(sessions_page))
        .route("/settings/sessions/end", post(end_session))
        .route(
            "/settings/refresh-tokens/revoke",
            post(revoke_refresh_token),
        )
        .route("/settings/browsers/forget", post(forget_browsers))
}

type Page = Result<Response, WebError>;

/// The frame of a settings page, with the token entry only where a reset is allowed (R-T9).
async fn chrome(
    state: &AppState,
    s: &Signed,
    title: &str,
    current: &str,
) -> Result<Chrome, WebError> {
    let refusal = state
        .services
        .token_reset_refusal(&s.actor, s.user_id())
        .await?;
    let mut nav = vec![
        ("/settings", "My Personal Information"),
        ("/settings/password", "Change My Password"),
    ];
    if refusal.is_none() {
        nav.push(("/settings/token", "Reset My Security Token"));
    }
    nav.extend([
        ("/settings/integration-tokens", "Integration Tokens"),
        ("/settings/mfa", "Authenticator App"),
        ("/settings/history", "My Login History"),
        ("/settings/sessions", "Sessions and Browsers"),
    ]);
    let mut c = s.chrome(title, "settings");
    c.nav_label = "My settings";
    c.nav = nav
        .into_iter()
        .map(|(href, label)| NavItem {
            href,
            label,
            current: href == current,
        })
        .collect();
    Ok(c)
}

fn notice(done: &Done, messages: &[(&str, &'static str)]) -> Option<&'static str> {
    let d = done.done.as_deref()?;
    messages.iter().find(|(k, _)| *k == d).map(|(_, m)| *m)
}

#[derive(Template)]
#[template(path = "web/settings_info.html")]
struct InfoPage {
    chrome: Chrome,
    user: crate::service::views::User,
    user_id: String,
    org: String,
    org_id: String,
    profile: String,
    password_changed: String,
    token_issued: String,
    totp: bool,
}

async fn render_info(state: &AppState, s: &Signed, c: Chrome) -> Page {
    let view = state.services.show_user(&s.actor, s.user_id()).await?;
    let totp = state.services.totp_status(&s.actor, s.user_id()).await?;
    let never = || "never".to_string();
    Ok(page(&InfoPage {
        chrome: c,
        user_id: id18(&view.user.id),
        org: view.org_name,
        org_id: id18(&view.user.org_id),
        profile: view.profile_name,
        password_changed: view.user.password_changed_at.map_or_else(never, fmt_ms),
        token_issued: view.user.token_issued_at.map_or_else(never, fmt_ms),
        totp: totp.enrolled,
        user: view.user,
    }))
}

async fn info_page(State(state): State<AppState>, s: Signed, Query(d): Query<Done>) -> Page {
    let c = chrome(&state, &s, "My Personal Information", "/settings")
        .await?
        .with_notice(notice(&d, &[("saved", "Your information was saved.")]));
    render_info(&state, &s, c).await
}

#[derive(Deserialize)]
struct InfoForm {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    current_password: Option<String>,
}

async fn save_info(State(state): State<AppState>, s: Signed, form: WebForm<InfoForm>) -> Page {
    s.check(&form)?;
    let change = UserChange {
        first_name: form.data.first_name.clone(),
        last_name: form.data.last_name.clone(),
        email: form.data.email.clone(),
        profile: None,
        current_password: form.data.current_password.clone().map(Password::new),
    };
    match state
        .services
        .update_user(&s.actor, s.user_id(), &change)
        .await
    {
        Ok(_) => Ok(done("/settings", "saved")),
        Err(e) => {
            let msg = super::user_error(e)?;
            let c = chrome(&state, &s, "My Personal Information", "/settings")
                .await?
                .with_error(msg);
            render_info(&state, &s, c).await
        }
    }
}

#[derive(Template)]
#[template(path = "web/settings_password.html")]
struct PasswordPage {
    chrome: Chrome,
    expired: bool,
    min_length: u32,
    rules: String,
}

fn password_form(s: &Signed, c: Chrome) -> Response {
    let policy = s.session.org().policy.clone();
    page(&PasswordPage {
        chrome: c,
        expired: s.session.password_expired(),
        min_length: policy.min_password_length,
        rules: policy.rules_text(),
    })
}

async fn password_page(State(state): State<AppState>, s: Signed, Query(d): Query<Done>) -> Page {
    let c = chrome(&state, &s, "Change My Password", "/settings/password")
        .await?
        .with_notice(notice(
            &d,
            &[(
                "changed",
                "Your password was changed. A new security token is on its way to your email; \
                 your other sessions have ended.",
            )],
        ));
    Ok(password_form(&s, c))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

async fn change_password(
    State(state): State<AppState>,
    s: Signed,
    headers: HeaderMap,
    form: WebForm<PasswordForm>,
) -> Page {
    s.check(&form)?;
    let fail = |msg: String| async {
        let c = chrome(&state, &s, "Change My Password", "/settings/password")
            .await?
            .with_error(msg);
        Ok(password_form(&s, c))
    };
    if form.data.new != form.data.confirm {
        return fail("The new password and its confirmation are not the same.".into()).await;
    }
    let keep = cookie(&headers, SESSION_COOKIE)
        .and_then(crate::service::sessions::SessionId::parse)
        .map(|id| id.digest());
    match state
        .services
        .change_own_password(
            &s.actor,
            &Password::new(form.data.current.clone()),
            &Password::new(form.data.new.clone()),
            keep.as_deref(),
        )
        .await
    {
        Ok(()) => Ok(done("/settings/password", "changed")),
        Err(e) => fail(super::user_error(e)?).await,
    }
}

#[derive(Template)]
#[template(path = "web/settings_token.html")]
struct TokenPage {
    chrome: Chrome,
    refusal: Option<String>,
    sent: bool,
    email: String,
    username: String,
    issued: Option<String>,
    /// How long a reset leaves the previous token working (org policy).
    grace_hours: u32,
    /// Where the user's security tokens (the current one and earlier ones) were used.
    usage: Vec<integration::UsageLine>,
}

async fn token_page(State(state): State<AppState>, s: Signed, Query(d): Query<Done>) -> Page {
    let refusal = state
        .services
        .token_reset_refusal(&s.actor, s.user_id())
        .await?;
    let c = chrome(&state, &s, "Reset My Security Token", "/settings/token").await?;
    let user = s.session.user();
    let (status, usage) = if refusal.is_some() {
        (axum::http::StatusCode::FORBIDDEN, Vec::new())
    } else {
        let usage = state
            .services
            .security_token_usage(&s.actor, s.user_id())
            .await?;
        (axum::http::StatusCode::OK, integration::usage_lines(usage))
    };
    Ok(super::page_with(
        status,
        &TokenPage {
            chrome: c,
            refusal,
            sent: d.done.as_deref() == Some("sent"),
            email: user.email.clone(),
            username: user.username.clone(),
            issued: user.token_issued_at.map(fmt_ms),
            grace_hours: s.session.org().policy.token_grace_hours,
            usage,
        },
    ))
}

async fn reset_token(State(state): State<AppState>, s: Signed, form: WebForm<Nothing>) -> Page {
    s.check(&form)?;
    state.services.reset_token(&s.actor, s.user_id()).await?;
    Ok(done("/settings/token", "sent"))
}

#[derive(Template)]
#[template(path = "web/settings_mfa.html")]
struct MfaPage {
    chrome: Chrome,
    enrolled: bool,
    recovery_left: i64,
    pending: Option<crate::service::verification::TotpEnrolment>,
    qr: String,
}

/// The otpauth URI as an inline SVG QR code (no script, no external image).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build();
            // The renderer starts with an XML declaration, which does not belong inside HTML.
            svg.find("<svg")
                .map_or(svg.clone(), |i| svg[i..].to_string())
        }
        Err(_) => String::new(),
    }
}

fn issuer(s: &Signed) -> String {
    format!("keyward {}", s.session.org().name)
}

async fn render_mfa(state: &AppState, s: &Signed, c: Chrome) -> Page {
    let e = WebError::from;
    let status = state
        .services
        .totp_status(&s.actor, s.user_id())
        .await
        .map_err(e)?;
    let pending = if status.enrolled {
        None
    } else {
        state
            .services
            .pending_totp(&s.actor, &issuer(s), s.session.handle())
            .await?
    };
    let qr = pending
        .as_ref()
        .map(|p| qr_svg(&p.otpauth_uri))
        .unwrap_or_default();
    Ok(page(&MfaPage {
        chrome: c,
        enrolled: status.enrolled,
        recovery_left: status.recovery_codes_left,
        pending,
        qr,
    }))
}

async fn mfa_page(State(state): State<AppState>, s: Signed, Query(d): Query<Done>) -> Page {
    let c = chrome(&state, &s, "Authenticator App", "/settings/mfa")
        .await?
        .with_notice(notice(
            &d,
            &[("removed", "Your authenticator app was removed.")],
        ));
    render_mfa(&state, &s, c).await
}

async fn mfa_start(State(state): State<AppState>, s: Signed, form: WebForm<PasswordOnly>) -> Page {
    s.check(&form)?;
    let password = Password::new(form.data.password.clone());
    match state
        .services
        .start_totp(&s.actor, &issuer(&s), Some(&password), s.session.handle())
        .await
    {
        Ok(_) => Ok(done("/settings/mfa", "started")),
        Err(e @ (ServiceError::Refused(_) | ServiceError::Conflict(_))) => {
            let c = chrome(&state, &s, "Authenticator App", "/settings/mfa")
                .await?
                .with_error(super::capitalise(&e.to_string()));
            render_mfa(&state, &s, c).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "web/settings_codes.html")]
struct CodesPage {
    chrome: Chrome,
    codes: Vec<String>,
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn mfa_confirm(State(state): State<AppState>, s: Signed, form: WebForm<CodeForm>) -> Page {
    s.check(&form)?;
    let session = s.session.handle();
    match state
        .services
        .confirm_totp(&s.actor, &form.data.code, session)
        .await
    {
        Ok(codes) => {
            let c = chrome(&state, &s, "Your recovery codes", "/settings/mfa").await?;
            Ok(page(&CodesPage { chrome: c, codes }))
        }
        Err(e @ (ServiceError::Invalid(_) | ServiceError::Conflict(_))) => {
            let c = chrome(&state, &s, "Authenticator App", "/settings/mfa")
                .await?
                .with_error(super::capitalise(&e.to_string()));
            render_mfa(&state, &s, c).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct PasswordOnly {
    #[serde(default)]
    password: String,
}

async fn mfa_remove(State(state): State<AppState>, s: Signed, form: WebForm<PasswordOnly>) -> Page {
    s.check(&form)?;
    match state
        .services
        .remove_totp(
            &s.actor,
            s.user_id(),
            Some(&Password::new(form.data.password.clone())),
        )
        .await
    {
        Ok(_) => Ok(done("/settings/mfa", "removed")),
        Err(e @ ServiceError::Refused(_)) => {
            let c = chrome(&state, &s, "Authenticator App", "/settings/mfa")
                .await?
                .with_error(super::capitalise(&e.to_string()));
            render_mfa(&state, &s, c).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "web/settings_history.html")]
struct HistoryPage {
    chrome: Chrome,
    username: String,
    rows: Vec<HistoryLine>,
}

async fn history_page(State(state): State<AppState>, s: Signed) -> Page {
    let rows = state.services.my_login_history(&s.actor, 100).await?;
    let c = chrome(&state, &s, "My Login History", "/settings/history").await?;
    Ok(page(&HistoryPage {
        chrome: c,
        username: s.session.user().username.clone(),
        rows: rows.into_iter().map(HistoryLine::from).collect(),
    }))
}

pub struct SessionLine {
    pub handle: String,
    pub created: String,
    pub login_type: String,
    pub source_ip: String,
    pub last_seen: String,
    pub expires: String,
    pub current: bool,
}

/// A refresh token as the sessions tables show it.
pub struct RefreshLine {
    pub handle: String,
    pub client_name: String,
    pub created: String,
    pub last_used: String,
}

pub fn refresh_lines(rows: Vec<RefreshTokenView>) -> Vec<RefreshLine> {
    rows.into_iter()
        .map(|r| RefreshLine {
            handle: r.handle,
            client_name: r.client_name,
            created: fmt_ms(r.created_at),
            last_used: fmt_ms(r.last_used_at),
        })
        .collect()
}

pub struct BrowserLine {
    pub created: String,
    pub source_ip: String,
    pub user_agent: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "web/settings_sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionLine>,
    pub end_action: String,
    pub refresh_tokens: Vec<RefreshLine>,
    pub revoke_action: String,
    pub show_browsers: bool,
    pub browsers: Vec<BrowserLine>,
}

pub fn session_lines(rows: Vec<crate::service::views::Session>, current: &str) -> Vec<SessionLine> {
    rows.into_iter()
        .map(|r| SessionLine {
            current: r.handle == current,
            handle: r.handle,
            created: fmt_ms(r.created_at),
            login_type: r.login_type,
            source_ip: r.source_ip,
            last_seen: fmt_ms(r.last_seen_at),
            expires: fmt_ms(r.expires_at),
        })
        .collect()
}

async fn sessions_page(State(state): State<AppState>, s: Signed, Query(d): Query<Done>) -> Page {
    let e = WebError::from;
    let sessions = state
        .services
        .sessions_of(&s.actor, s.user_id())
        .await
        .map_err(e)?;
    let refresh_tokens = state
        .services
        .refresh_tokens_of(&s.actor, s.user_id())
        .await?;
    let browsers = state.services.verified_browsers(&s.actor).await?;
    let c = chrome(&state, &s, "Sessions and Browsers", "/settings/sessions")
        .await?
        .with_notice(notice(
            &d,
            &[
                ("ended", "The session was ended."),
                ("revoked", "The refresh token was revoked."),
                (
                    "forgotten",
                    "Your verified browsers were forgotten: the next login from each needs a \
                     verification code.",
                ),
            ],
        ));
    Ok(page(&SessionsPage {
        chrome: c,
        sessions: session_lines(sessions, s.session.handle()),
        end_action: "/settings/sessions/end".into(),
        refresh_tokens: refresh_lines(refresh_tokens),
        revoke_action: "/settings/refresh-tokens/revoke".into(),
        show_browsers: true,
        browsers: browsers
            .into_iter()
            .map(|b| BrowserLine {
                created: fmt_ms(b.created_at),
                source_ip: b.source_ip,
                user_agent: b.user_agent,
                last_used: fmt_ms(b.last_used_at),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    session: String,
}

async fn end_session(State(state): State<AppState>, s: Signed, form: WebForm<EndForm>) -> Page {
    s.check(&form)?;
    state
        .services
        .end_session(&s.actor, s.user_id(), &form.data.session)
        .await?;
    Ok(done("/settings/sessions", "ended"))
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    refresh_token: String,
}

async fn revoke_refresh_token(
    State(state): State<AppState>,
    s: Signed,
    form: WebForm<RevokeForm>,
) -> Page {
    s.check(&form)?;
    state
        .services
        .revoke_refresh_token(&s.actor, s.user_id(), &form.data.refresh_token)
        .await?;
    Ok(done("/settings/sessions", "revoked"))
}

async fn forget_browsers(State(state): State<AppState>, s: Signed, form: WebForm<Nothing>) -> Page {
    s.check(&form)?;
    state.services.forget_browsers(&s.actor).await?;
    Ok(done("/settings/sessions", "forgotten"))
}
