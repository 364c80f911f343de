//! Password policies, session settings and single sign-on (delegated authentication).

use super::{Page, chrome, messages, org};
use crate::domain::integration::ReminderDays;
use crate::domain::policy::{Complexity, OrgPolicy};
use crate::http::AppState;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::{Chrome, Done, WebError, WebForm, given, page, user_error};
use crate::service::orgs::PolicyChange;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "web/setup_policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    p: OrgPolicy,
    complexities: Vec<(&'static str, &'static str)>,
}

fn complexity_label(c: Complexity) -> &'static str {
    match c {
        Complexity::None => "No restriction",
        Complexity::AlphaNumeric => "Must mix alpha and numeric characters",
        Complexity::AlphaNumericSpecial => "Must mix alpha, numeric and special characters",
        Complexity::UpperLowerNumeric => "Must mix numbers and uppercase and lowercase letters",
        Complexity::UpperLowerNumericSpecial => {
            "Must mix numbers, uppercase and lowercase letters, and special characters"
        }
    }
}

fn policies(c: Chrome, p: OrgPolicy) -> Response {
    page(&PoliciesPage {
        chrome: c,
        p,
        complexities: Complexity::ALL
            .iter()
            .map(|c| (c.as_str(), complexity_label(*c)))
            .collect(),
    })
}

pub(super) async fn policies_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Password Policies", "/setup/password-policies").with_notice(messages(&d));
    let p = s.session.org().policy.clone();
    Ok(policies(c, p))
}

#[derive(Deserialize)]
pub(super) struct PolicyForm {
    min_password_length: Option<String>,
    complexity: Option<String>,
    password_history: Option<String>,
    password_expiry_days: Option<String>,
    lockout_attempts: Option<String>,
    lockout_minutes: Option<String>,
    session_seconds: Option<String>,
    session_max_seconds: Option<String>,
    integration_max_days: Option<String>,
    integration_grace_hours: Option<String>,
    /// `14,3,1`; sent empty, no reminders (absent, unchanged).
    integration_reminder_days: Option<String>,
    token_grace_hours: Option<String>,
}

fn number(field: &str, v: &Option<String>) -> Result<Option<u32>, String> {
    match given(v) {
        None => Ok(None),
        Some(s) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{field} must be a whole number (got {s:?})")),
    }
}

impl PolicyForm {
    fn change(&self) -> Result<PolicyChange, String> {
        Ok(PolicyChange {
            min_password_length: number("The minimum password length", &self.min_password_length)?,
            password_history: number("Passwords remembered", &self.password_history)?,
            password_expiry_days: number("The expiry", &self.password_expiry_days)?,
            lockout_attempts: number("Maximum invalid login attempts", &self.lockout_attempts)?,
            lockout_minutes: number("The lockout period", &self.lockout_minutes)?,
            session_seconds: number("The timeout", &self.session_seconds)?,
            session_max_seconds: number("The lifetime", &self.session_max_seconds)?,
            integration_max_days: number(
                "The longest integration token lifetime",
                &self.integration_max_days,
            )?,
            integration_grace_hours: number(
                "The integration token grace period",
                &self.integration_grace_hours,
            )?,
            token_grace_hours: number("The security token grace period", &self.token_grace_hours)?,
            integration_reminder_days: match &self.integration_reminder_days {
                None => None,
                Some(d) => {
                    Some(ReminderDays::parse(d).map_err(|e| crate::http::web::capitalise(&e))?)
                }
            },
            complexity: match given(&self.complexity) {
                None => None,
                Some(c) => {
                    Some(Complexity::parse(c).ok_or_else(|| format!("unknown complexity {c:?}"))?)
                }
            },
        })
    }
}

async fn save_policy(
    state: &AppState,
    s: &Signed,
    form: &PolicyForm,
) -> Result<Result<(), String>, WebError> {
    let change = match form.change() {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    match state.services.set_policy(&s.actor, org(s), &change).await {
        Ok(_) => Ok(Ok(())),
        Err(e) => user_error(e).map(Err),
    }
}

pub(super) async fn save_policies(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<PolicyForm>,
) -> Page {
    s.check(&form)?;
    let f = PolicyForm {
        session_seconds: None,
        session_max_seconds: None,
        ..form.data
    };
    match save_policy(&state, &s, &f).await? {
        Ok(()) => Ok(done("/setup/password-policies", "saved")),
        Err(m) => {
            let c = chrome(&s, "Password Policies", "/setup/password-policies").with_error(m);
            Ok(policies(c, s.session.org().policy.clone()))
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_sessions.html")]
struct SessionSettingsPage {
    chrome: Chrome,
    seconds: u32,
    max_seconds: u32,
}

fn session_settings(chrome: Chrome, p: &OrgPolicy) -> Response {
    page(&SessionSettingsPage {
        chrome,
        seconds: p.session_seconds,
        max_seconds: p.session_max_seconds,
    })
}

pub(super) async fn session_settings_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Session Settings", "/setup/session-settings").with_notice(messages(&d));
    Ok(session_settings(c, &s.session.org().policy.clone()))
}

pub(super) async fn save_session_settings(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<PolicyForm>,
) -> Page {
    s.check(&form)?;
    let f = PolicyForm {
        session_seconds: form.data.session_seconds,
        session_max_seconds: form.data.session_max_seconds,
        min_password_length: None,
        complexity: None,
        password_history: None,
        password_expiry_days: None,
        lockout_attempts: None,
        lockout_minutes: None,
        integration_max_days: None,
        integration_grace_hours: None,
        integration_reminder_days: None,
        token_grace_hours: None,
    };
    match save_policy(&state, &s, &f).await? {
        Ok(()) => Ok(done("/setup/session-settings", "saved")),
        Err(m) => {
            let c = chrome(&s, "Session Settings", "/setup/session-settings").with_error(m);
            Ok(session_settings(c, &s.session.org().policy.clone()))
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_sso.html")]
struct SsoPage {
    chrome: Chrome,
    url: String,
}

pub(super) async fn sso_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Single Sign-On", "/setup/sso").with_notice(messages(&d));
    Ok(page(&SsoPage {
        chrome: c,
        url: s
            .session
            .org()
            .delegated_auth_url
            .clone()
            .unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
pub(super) struct SsoForm {
    url: Option<String>,
}

pub(super) async fn save_sso(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<SsoForm>,
) -> Page {
    s.check(&form)?;
    let url = given(&form.data.url);
    match state
        .services
        .set_delegated_auth(&s.actor, org(&s), url)
        .await
    {
        Ok(()) => Ok(done("/setup/sso", "saved")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Single Sign-On", "/setup/sso").with_error(msg);
            Ok(page(&SsoPage {
                chrome: c,
                url: url.unwrap_or("").to_string(),
            }))
        }
    }
}
