//! The Setup audit trail and the email log.

use super::{Page, chrome, org};
use crate::http::AppState;
use crate::http::web::Nothing;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::{Chrome, WebForm, given, page, user_error};
use crate::service::{fmt_ms, id18};
use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use serde::Deserialize;

pub struct AuditLine {
    pub time: String,
    pub actor: String,
    pub section: String,
    pub display: String,
}

#[derive(Template)]
#[template(path = "web/setup_audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditLine>,
}

pub(super) async fn audit_page(State(state): State<AppState>, Admin(s): Admin) -> Page {
    let rows = state.services.audit_trail(&s.actor, org(&s), 500).await?;
    Ok(page(&AuditPage {
        chrome: chrome(&s, "Setup Audit Trail", "/setup/audit"),
        rows: rows
            .into_iter()
            .map(|r| AuditLine {
                time: fmt_ms(r.created_at),
                actor: r.actor,
                section: r.section,
                display: r.display,
            })
            .collect(),
    }))
}

pub struct MailLine {
    pub id: String,
    pub created: String,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "web/setup_mail.html")]
struct MailPage {
    chrome: Chrome,
    status: String,
    mails: Vec<MailLine>,
}

#[derive(Deserialize)]
pub(super) struct MailParams {
    status: Option<String>,
}

async fn render_mail(state: &AppState, s: &Signed, c: Chrome, status: Option<&str>) -> Page {
    let mails = state
        .services
        .org_mail(&s.actor, org(s), status, 500)
        .await?;
    Ok(page(&MailPage {
        chrome: c,
        status: status.unwrap_or("").to_string(),
        mails: mails
            .into_iter()
            .map(|m| MailLine {
                id: id18(&m.id),
                created: fmt_ms(m.created_at),
                to: m.to_addr,
                subject: m.subject,
                status: m.status,
                attempts: m.attempts,
                last_error: m.last_error.unwrap_or_default(),
            })
            .collect(),
    }))
}

pub(super) async fn mail_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(p): Query<MailParams>,
    RawQuery(raw): RawQuery,
) -> Page {
    let c = chrome(&s, "Email Log", "/setup/mail").with_notice(
        raw.as_deref()
            .filter(|q| q.contains("done=retried"))
            .map(|_| "The mail was queued for delivery again."),
    );
    render_mail(&state, &s, c, given(&p.status)).await
}

pub(super) async fn retry_mail(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    match state.services.retry_mail(&s.actor, org(&s), &id).await {
        Ok(()) => Ok(done("/setup/mail", "retried")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Email Log", "/setup/mail").with_error(msg);
            render_mail(&state, &s, c, None).await
        }
    }
}
