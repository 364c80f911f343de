//! Integration tokens: `/api/v1/users/{id}/integration-tokens` (a user's tokens, and creating
//! one), `/api/v1/integration-tokens/{id}` (one token: read, rotate, revoke, its usage) and a
//! user's security-token usage. A token is emailed to its user, never answered: what comes
//! back is its record, as `keyward integration list` shows it.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[utoipa::path(get, path = "/api/v1/users/{id}/integration-tokens", tag = "integration",
    params(("id" = String, Path, description = "User id (15 or 18 characters) or username")),
    responses((status = 200, body = [IntegrationTokenInfo], description = "Newest first, with each one's last use; never a token"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn list_integration_tokens(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<IntegrationTokenInfo>> {
    Ok(Json(
        state
            .services
            .list_integration_tokens(&a.actor, &id)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/integration-tokens", tag = "integration",
    request_body = NewIntegrationToken,
    params(("id" = String, Path, description = "User id (15 or 18 characters) or username")),
    responses((status = 201, body = IntegrationTokenInfo, description = "Created; the token is emailed to the user, never answered"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn create_integration_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    ApiJson(n): ApiJson<NewIntegrationToken>,
) -> Result<Response, ApiError> {
    let t = state
        .services
        .create_integration_token(&a.actor, &id, &n.name, n.expires_days)
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

#[utoipa::path(get, path = "/api/v1/integration-tokens/{id}", tag = "integration",
    params(("id" = String, Path, description = "The token's id (0Ik…, 15 or 18 characters)")),
    responses((status = 200, body = IntegrationTokenInfo), (status = 404, body = ErrorBody)))]
pub(super) async fn get_integration_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<IntegrationTokenInfo> {
    Ok(Json(state.services.integration_token(&a.actor, &id).await?))
}

// 204, as every `DELETE` of this API answers (a script treats them alike); the token stays
// listed as `revoked`, and `GET /api/v1/integration-tokens/{id}` shows it.
#[utoipa::path(delete, path = "/api/v1/integration-tokens/{id}", tag = "integration",
    params(("id" = String, Path, description = "The token's id (0Ik…)")),
    responses((status = 204, description = "Revoked: every login with it fails from now on (a rotated one in its grace window too), and the sessions and refresh tokens its logins created end"),
        (status = 403, body = ErrorBody, description = "Revoked already"), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_integration_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_integration_token(&a.actor, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/integration-tokens/{id}/rotate", tag = "integration",
    params(("id" = String, Path, description = "The token's id (0Ik…)")),
    responses((status = 201, body = IntegrationTokenInfo, description = "The successor, with the same name, emailed to the user; the old token keeps working for the org's `integration_grace_hours`"),
        (status = 403, body = ErrorBody, description = "Rotated already, expired, revoked, or the user is inactive"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn rotate_integration_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = state
        .services
        .rotate_integration_token(&a.actor, &id)
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

#[utoipa::path(get, path = "/api/v1/integration-tokens/{id}/usage", tag = "integration",
    params(("id" = String, Path, description = "The token's id (0Ik…)")),
    responses((status = 200, body = [CredentialUse], description = "Each client and source address that logged in with it, last seen first"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn integration_token_usage(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<CredentialUse>> {
    Ok(Json(
        state
            .services
            .integration_token_usage(&a.actor, &id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}/token-usage", tag = "integration",
    params(("id" = String, Path, description = "User id (15 or 18 characters) or username")),
    responses((status = 200, body = [CredentialUse], description = "Each client and source address that logged in with the user's security token (any token the user had), last seen first"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn security_token_usage(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<CredentialUse>> {
    Ok(Json(
        state.services.security_token_usage(&a.actor, &id).await?,
    ))
}
