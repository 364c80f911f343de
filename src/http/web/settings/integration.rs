//! My Settings → Integration Tokens: the signed-in user's own tokens — created and rotated
//! ones are mailed, never shown — with rotate, revoke, and where each one was used. Setup's
//! user page lists a user's tokens with the same lines.

use super::{Page, chrome};
use crate::http::AppState;
use crate::http::web::auth::{Signed, done};
use crate::http::web::{Chrome, Done, Nothing, WebError, WebForm, page, shown_instant, user_error};
use crate::service::ServiceError;
use crate::service::integration::{CredentialUse, IntegrationTokenInfo};
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

const LIST: &str = "/settings/integration-tokens";
const TITLE: &str = "Integration Tokens";

/// An integration token as the tables show it: never its value, which no page has.
pub struct TokenLine {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub last_address: String,
    /// Active: it may be rotated.
    pub active: bool,
    /// Active or in grace: it still logs in, so it may be revoked.
    pub live: bool,
}

impl From<IntegrationTokenInfo> for TokenLine {
    fn from(t: IntegrationTokenInfo) -> TokenLine {
        TokenLine {
            active: t.status == "active",
            live: t.status == "active" || t.status == "in grace",
            created: shown_instant(&t.created),
            expires: shown_instant(&t.expires),
            last_used: t
                .last_used
                .as_deref()
                .map_or_else(|| "never".into(), shown_instant),
            last_address: t.last_address.unwrap_or_default(),
            id: t.id,
            name: t.name,
            status: t.status,
        }
    }
}

pub fn token_lines(tokens: Vec<IntegrationTokenInfo>) -> Vec<TokenLine> {
    tokens.into_iter().map(TokenLine::from).collect()
}

/// One (client, source address) of a credential's usage inventory.
pub struct UsageLine {
    pub client: String,
    pub source_ip: String,
    pub first_seen: String,
    pub last_seen: String,
    pub uses: i64,
}

pub fn usage_lines(rows: Vec<CredentialUse>) -> Vec<UsageLine> {
    rows.into_iter()
        .map(|u| UsageLine {
            first_seen: shown_instant(&u.first_seen),
            last_seen: shown_instant(&u.last_seen),
            client: u.client,
            source_ip: u.source_ip,
            uses: u.uses,
        })
        .collect()
}

/// The token `id` among `tokens`: its 18 characters in any case (the suffix tells ids apart
/// by case), or its 15 exactly. My Settings acts on the user's own tokens only: an
/// administrator's other users' tokens are Setup's, so here they are as missing as another
/// org's; Setup likewise takes a token only through its own user's page.
pub fn pick(tokens: Vec<IntegrationTokenInfo>, id: &str) -> Result<IntegrationTokenInfo, WebError> {
    let id = id.trim();
    tokens
        .into_iter()
        .find(|t| t.id.eq_ignore_ascii_case(id) || (id.len() == 15 && t.id.starts_with(id)))
        .ok_or_else(|| ServiceError::NotFound(format!("no integration token {id}")).into())
}

async fn own(state: &AppState, s: &Signed, id: &str) -> Result<IntegrationTokenInfo, WebError> {
    let tokens = state
        .services
        .list_integration_tokens(&s.actor, s.user_id())
        .await?;
    pick(tokens, id)
}

#[derive(Template)]
#[template(path = "web/settings_integration.html")]
struct ListPage {
    chrome: Chrome,
    tokens: Vec<TokenLine>,
    email: String,
    max_days: u32,
    grace_hours: u32,
    form: NewTokenForm,
}

#[derive(Deserialize, Default)]
pub(super) struct NewTokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_days: String,
}

async fn render_list(state: &AppState, s: &Signed, c: Chrome, form: NewTokenForm) -> Page {
    let tokens = state
        .services
        .list_integration_tokens(&s.actor, s.user_id())
        .await?;
    let policy = &s.session.org().policy;
    Ok(page(&ListPage {
        chrome: c,
        tokens: token_lines(tokens),
        email: s.session.user().email.clone(),
        max_days: policy.integration_max_days,
        grace_hours: policy.integration_grace_hours,
        form,
    }))
}

fn notice(s: &Signed, d: &Done) -> Option<String> {
    let grace = s.session.org().policy.integration_grace_hours;
    Some(match d.done.as_deref()? {
        "created" => "Your new integration token is on its way to your email. It is never shown \
                      here: look for the mail \"Your new integration token\"."
            .into(),
        "rotated" if grace == 0 => "The token was rotated: its successor, with the same name, is \
                                    on its way to your email, and the old one stopped working."
            .into(),
        "rotated" => format!(
            "The token was rotated: its successor, with the same name, is on its way to your \
             email. The old one keeps working for {grace} hour{} (shown as in grace) so your \
             clients can move to the new one.",
            if grace == 1 { "" } else { "s" }
        ),
        "revoked" => "The token was revoked: no new login with it works. Sessions it opened \
                      already last until they end."
            .into(),
        _ => return None,
    })
}

pub(super) async fn list_page(
    State(state): State<AppState>,
    s: Signed,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&state, &s, TITLE, LIST)
        .await?
        .with_notice(notice(&s, &d));
    render_list(&state, &s, c, NewTokenForm::default()).await
}

pub(super) async fn create(
    State(state): State<AppState>,
    s: Signed,
    form: WebForm<NewTokenForm>,
) -> Page {
    s.check(&form)?;
    let f = form.data;
    let outcome = match expiry_days(&f.expires_days) {
        Err(m) => Err(m),
        Ok(days) => match state
            .services
            .create_integration_token(&s.actor, s.user_id(), &f.name, days)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(user_error(e)?),
        },
    };
    match outcome {
        Ok(()) => Ok(done(LIST, "created")),
        Err(m) => {
            let c = chrome(&state, &s, TITLE, LIST).await?.with_error(m);
            render_list(&state, &s, c, f).await
        }
    }
}

/// The form's expiry: empty for the org's longest.
fn expiry_days(field: &str) -> Result<Option<u32>, String> {
    match field.trim() {
        "" => Ok(None),
        d => d.parse::<u32>().map(Some).map_err(|_| {
            format!(
                "The expiry must be a whole number of days (got {d:?}), or empty for the longest \
                 allowed."
            )
        }),
    }
}

/// Rotate or revoke one of the user's own tokens.
pub(super) async fn action(
    State(state): State<AppState>,
    s: Signed,
    Path((id, action)): Path<(String, String)>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    let t = own(&state, &s, &id).await?;
    let sv = &state.services;
    let (result, code) = match action.as_str() {
        "rotate" => (
            sv.rotate_integration_token(&s.actor, &t.id).await,
            "rotated",
        ),
        "revoke" => (
            sv.revoke_integration_token(&s.actor, &t.id).await,
            "revoked",
        ),
        _ => return Err(ServiceError::NotFound(format!("no action {action:?}")).into()),
    };
    match result {
        Ok(_) => Ok(done(LIST, code)),
        Err(e) => {
            let c = chrome(&state, &s, TITLE, LIST)
                .await?
                .with_error(user_error(e)?);
            render_list(&state, &s, c, NewTokenForm::default()).await
        }
    }
}

#[derive(Template)]
#[template(path = "web/settings_integration_usage.html")]
struct UsagePage {
    chrome: Chrome,
    token: TokenLine,
    usage: Vec<UsageLine>,
}

pub(super) async fn usage_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
) -> Page {
    let t = own(&state, &s, &id).await?;
    let usage = state
        .services
        .integration_token_usage(&s.actor, &t.id)
        .await?;
    let c = chrome(&state, &s, &format!("Integration token {}", t.name), LIST).await?;
    Ok(page(&UsagePage {
        chrome: c,
        token: t.into(),
        usage: usage_lines(usage),
    }))
}
