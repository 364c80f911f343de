//! `/api/v1/policy` and `/api/v1/delegated-auth`: the org-wide login settings, both read and
//! changed through the org's record.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson};
use crate::service::{ServiceError, orgs};
use axum::Json;
use axum::extract::State;

#[utoipa::path(get, path = "/api/v1/policy", tag = "policy",
    responses((status = 200, body = Policy)))]
pub(super) async fn get_policy(State(state): State<AppState>, a: ApiAdmin) -> Answer<Policy> {
    let org = state.services.get_org(&a.actor, a.org()).await?;
    Ok(Json(org.policy.into()))
}

#[utoipa::path(patch, path = "/api/v1/policy", tag = "policy", request_body = PolicyChange,
    responses((status = 200, body = Policy), (status = 400, body = ErrorBody)))]
pub(super) async fn update_policy(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(p): ApiJson<PolicyChange>,
) -> Answer<Policy> {
    let complexity = match p.complexity.as_deref() {
        None => None,
        Some(c) => Some(crate::domain::policy::Complexity::parse(c).ok_or_else(|| {
            ApiError::from(ServiceError::Invalid(format!(
                "unknown complexity {c:?}: use none, alpha_numeric, \
                         alpha_numeric_special, upper_lower_numeric or \
                         upper_lower_numeric_special"
            )))
        })?),
    };
    let change = orgs::PolicyChange {
        lockout_attempts: p.lockout_attempts,
        lockout_minutes: p.lockout_minutes,
        password_expiry_days: p.password_expiry_days,
        session_seconds: p.session_seconds,
        session_max_seconds: p.session_max_seconds,
        min_password_length: p.min_password_length,
        password_history: p.password_history,
        complexity,
        integration_max_days: p.integration_max_days,
        integration_grace_hours: p.integration_grace_hours,
        integration_reminder_days: p
            .integration_reminder_days
            .map(crate::domain::integration::ReminderDays::try_from)
            .transpose()
            .map_err(|e| ApiError::from(ServiceError::Invalid(e)))?,
        token_grace_hours: p.token_grace_hours,
    };
    if change.is_empty() {
        // An empty merge patch changes nothing (RFC 7396): the policy as it is.
        return get_policy(State(state), a).await;
    }
    let policy = state
        .services
        .set_policy(&a.actor, a.org(), &change)
        .await?;
    Ok(Json(policy.into()))
}

#[utoipa::path(get, path = "/api/v1/delegated-auth", tag = "policy",
    responses((status = 200, body = DelegatedAuth)))]
pub(super) async fn get_delegated_auth(
    State(state): State<AppState>,
    a: ApiAdmin,
) -> Answer<DelegatedAuth> {
    let org = state.services.get_org(&a.actor, a.org()).await?;
    Ok(Json(DelegatedAuth {
        url: org.delegated_auth_url,
    }))
}

#[utoipa::path(put, path = "/api/v1/delegated-auth", tag = "policy", request_body = DelegatedAuth,
    responses((status = 200, body = DelegatedAuth), (status = 400, body = ErrorBody)))]
pub(super) async fn set_delegated_auth(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(d): ApiJson<DelegatedAuth>,
) -> Answer<DelegatedAuth> {
    state
        .services
        .set_delegated_auth(&a.actor, a.org(), d.url.as_deref())
        .await?;
    get_delegated_auth(State(state), a).await
}
