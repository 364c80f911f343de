//! `/api/v1/profiles`: profiles and their permissions. A profile's login IP ranges are in
//! network.rs, with the org's trusted ranges.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[utoipa::path(get, path = "/api/v1/profiles", tag = "profiles",
    responses((status = 200, body = [Profile])))]
pub(super) async fn list_profiles(
    State(state): State<AppState>,
    a: ApiAdmin,
) -> Answer<Vec<Profile>> {
    let rows = state.services.list_profiles(&a.actor, a.org()).await?;
    Ok(Json(rows.into_iter().map(Profile::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/profiles", tag = "profiles", request_body = NewProfile,
    responses((status = 201, body = Profile), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(p): ApiJson<NewProfile>,
) -> Result<Response, ApiError> {
    let row = state
        .services
        .create_profile(&a.actor, a.org(), &p.name, p.permissions.into())
        .await?;
    Ok((StatusCode::CREATED, Json(Profile::from(row))).into_response())
}

#[utoipa::path(get, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub(super) async fn get_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Profile> {
    let row = state.services.get_profile(&a.actor, a.org(), &id).await?;
    Ok(Json(row.into()))
}

#[utoipa::path(patch, path = "/api/v1/profiles/{id}", tag = "profiles", request_body = ProfilePatch,
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = Profile), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<ProfilePatch>,
) -> Answer<Profile> {
    let change = p.permissions.unwrap_or_default().into();
    let row = state
        .services
        .update_profile(&a.actor, a.org(), &id, change)
        .await?;
    Ok(Json(row.into()))
}
