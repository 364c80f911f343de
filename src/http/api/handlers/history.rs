//! What happened: login history (rows and per-hour counts), the setup audit trail and the
//! email log: read-only but for a mail's retry, and all bounded by the same row limit.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError};
use crate::service::ServiceError;
use crate::service::history::HistoryQuery;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

fn limit(l: Option<i64>) -> Result<i64, ServiceError> {
    let l = l.unwrap_or(100);
    if (1..=crate::service::history::MAX_LIMIT).contains(&l) {
        Ok(l)
    } else {
        Err(ServiceError::Invalid(format!(
            "limit must be between 1 and {} (got {l})",
            crate::service::history::MAX_LIMIT
        )))
    }
}

fn instant(field: &str, v: Option<&str>) -> Result<Option<i64>, ServiceError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|t| Some(crate::clock::ms(t)))
            .map_err(|_| {
                ServiceError::Invalid(format!(
                    "{field} must be an RFC 3339 instant like 2026-11-25T10:00:00Z (got {s:?})"
                ))
            }),
    }
}

fn history_query(
    p: &HistoryParams,
    default_limit: Option<i64>,
) -> Result<HistoryQuery, ServiceError> {
    Ok(HistoryQuery {
        user: p.user.clone(),
        status: p.status.clone().filter(|s| !s.is_empty()),
        login_type: p.login_type.clone().filter(|s| !s.is_empty()),
        from: instant("from", p.from.as_deref())?,
        to: instant("to", p.to.as_deref())?,
        limit: limit(p.limit.or(default_limit))?,
    })
}

#[utoipa::path(get, path = "/api/v1/login-history", tag = "history", params(HistoryParams),
    responses((status = 200, body = [LoginAttempt]), (status = 400, body = ErrorBody)))]
pub(super) async fn login_history(
    State(state): State<AppState>,
    a: ApiAdmin,
    Query(p): Query<HistoryParams>,
) -> Answer<Vec<LoginAttempt>> {
    let q = history_query(&p, None)?;
    let rows = state
        .services
        .login_history(&a.actor, Some(a.org()), &q)
        .await?;
    Ok(Json(rows))
}

#[utoipa::path(get, path = "/api/v1/login-history/per-hour", tag = "history", params(HistoryParams),
    responses((status = 200, body = [HourBucket]), (status = 400, body = ErrorBody)))]
pub(super) async fn login_history_per_hour(
    State(state): State<AppState>,
    a: ApiAdmin,
    Query(p): Query<HistoryParams>,
) -> Answer<Vec<HourBucket>> {
    let mut q = history_query(&p, Some(crate::service::history::MAX_LIMIT))?;
    if q.from.is_none() {
        q.from = Some(state.services.now_ms() - 24 * 3_600_000);
    }
    let rows = state
        .services
        .login_history_per_hour(&a.actor, a.org(), &q)
        .await?;
    Ok(Json(rows.into_iter().map(HourBucket::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/audit-trail", tag = "history", params(LimitParams),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = ErrorBody)))]
pub(super) async fn audit_trail(
    State(state): State<AppState>,
    a: ApiAdmin,
    Query(p): Query<LimitParams>,
) -> Answer<Vec<AuditEntry>> {
    let l = limit(p.limit)?;
    let rows = state.services.audit_trail(&a.actor, a.org(), l).await?;
    Ok(Json(rows.into_iter().map(AuditEntry::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/mail", tag = "mail", params(MailParams),
    responses((status = 200, body = [Mail]), (status = 400, body = ErrorBody)))]
pub(super) async fn list_mail(
    State(state): State<AppState>,
    a: ApiAdmin,
    Query(p): Query<MailParams>,
) -> Answer<Vec<Mail>> {
    let l = limit(p.limit)?;
    let status = p.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !["queued", "sent", "dead"].contains(&s)
    {
        return Err(ApiError::from(ServiceError::Invalid(format!(
            "status must be queued, sent or dead (got {s:?})"
        ))));
    }
    let rows = state
        .services
        .org_mail(&a.actor, a.org(), status, l)
        .await?;
    Ok(Json(rows.into_iter().map(Mail::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/mail/{id}/retry", tag = "mail",
    params(("id" = String, Path, description = "Mail id")),
    responses((status = 204, description = "Queued again"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn retry_mail(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.retry_mail(&a.actor, a.org(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
