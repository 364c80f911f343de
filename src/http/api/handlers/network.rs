//! Network access: a profile's login IP ranges and the org's trusted IP ranges, the two range
//! lists the OpenAPI document tags `network`.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[utoipa::path(get, path = "/api/v1/profiles/{id}/login-ip-ranges", tag = "network",
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = [IpRange]), (status = 404, body = ErrorBody)))]
pub(super) async fn list_login_ranges(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<IpRange>> {
    let rows = state
        .services
        .list_login_ranges(&a.actor, a.org(), &id)
        .await?;
    Ok(Json(rows.into_iter().map(IpRange::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/profiles/{id}/login-ip-ranges", tag = "network", request_body = NewIpRange,
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 201, body = IpRange), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn add_login_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<NewIpRange>,
) -> Result<Response, ApiError> {
    let row = state
        .services
        .add_login_range(
            &a.actor,
            a.org(),
            &id,
            &r.start,
            r.end.as_deref(),
            &r.description,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(IpRange::from(row))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/profiles/{id}/login-ip-ranges/{range}", tag = "network",
    params(("id" = String, Path, description = "Profile id or name"), ("range" = String, Path, description = "Range id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_login_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path((id, range)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_login_range(&a.actor, a.org(), &id, &range)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/trusted-ip-ranges", tag = "network",
    responses((status = 200, body = [IpRange])))]
pub(super) async fn list_trusted_ranges(
    State(state): State<AppState>,
    a: ApiAdmin,
) -> Answer<Vec<IpRange>> {
    let rows = state
        .services
        .list_trusted_ranges(&a.actor, a.org())
        .await?;
    Ok(Json(rows.into_iter().map(IpRange::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/trusted-ip-ranges", tag = "network", request_body = NewIpRange,
    responses((status = 201, body = IpRange), (status = 400, body = ErrorBody)))]
pub(super) async fn add_trusted_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(r): ApiJson<NewIpRange>,
) -> Result<Response, ApiError> {
    let row = state
        .services
        .add_trusted_range(
            &a.actor,
            a.org(),
            &r.start,
            r.end.as_deref(),
            &r.description,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(IpRange::from(row))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/trusted-ip-ranges/{range}", tag = "network",
    params(("range" = String, Path, description = "Range id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_trusted_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(range): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_trusted_range(&a.actor, a.org(), &range)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
