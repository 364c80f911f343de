//! `/api/v1/users/…`: users, their passwords, authenticators, sessions and refresh tokens,
//! each answered as the user's JSON after the change.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson};
use crate::service::{ServiceError, account, users};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

async fn user_json(state: &AppState, a: &ApiAdmin, id: &str) -> Answer<User> {
    let v = state.services.show_user(&a.actor, id).await?;
    Ok(Json(User::of(
        &v.user,
        &v.profile_name,
        state.services.now_ms(),
    )))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = [User], description = "In username order; page with `after`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_users(
    State(state): State<AppState>,
    a: ApiAdmin,
    Query(p): Query<UserListParams>,
) -> Answer<Vec<User>> {
    let sv = &state.services;
    let l = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&l) {
        return Err(ApiError::from(ServiceError::Invalid(format!(
            "limit must be between 1 and 1000 (got {l})"
        ))));
    }
    let users = sv
        .search_users(&a.actor, a.org(), p.q.as_deref(), p.after.as_deref(), l)
        .await?;
    let profiles = sv.list_profiles(&a.actor, a.org()).await?;
    let names: HashMap<&str, &str> = profiles
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let now = sv.now_ms();
    Ok(Json(
        users
            .iter()
            .map(|u| User::of(u, names.get(u.profile_id.as_str()).unwrap_or(&""), now))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(n): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let password = n.password.map(crate::domain::secret::Password::new);
    let u = state
        .services
        .create_user(
            &a.actor,
            &users::NewUser {
                org: a.org(),
                username: &n.username,
                email: &n.email,
                first_name: &n.first_name,
                last_name: &n.last_name,
                profile: n.profile.as_deref(),
            },
            password.as_ref(),
        )
        .await?;
    let Json(user) = user_json(&state, &a, &u.id).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id (15 or 18 characters) or username")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub(super) async fn get_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<User> {
    user_json(&state, &a, &id).await
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserChange,
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    ApiJson(c): ApiJson<UserChange>,
) -> Answer<User> {
    let u = state
        .services
        .update_user(
            &a.actor,
            &id,
            &account::UserChange {
                first_name: c.first_name.map(Option::unwrap_or_default),
                last_name: c.last_name.map(Option::unwrap_or_default),
                email: c.email,
                profile: c.profile,
                current_password: c.current_password.map(crate::domain::secret::Password::new),
            },
        )
        .await?;
    user_json(&state, &a, &u.id).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/{action}", tag = "users",
    params(("id" = String, Path, description = "User id or username"),
        ("action" = String, Path, description = "`deactivate` (R-T8), `reactivate`, `unlock` (R-L5) or `reset-token` (R-T5: the new token is emailed to the user, never returned)")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn user_action(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Answer<User> {
    let sv = &state.services;
    let r = match action.as_str() {
        "deactivate" => sv.deactivate(&a.actor, &id).await.map(|_| ()),
        "reactivate" => sv.reactivate(&a.actor, &id).await.map(|_| ()),
        "unlock" => sv.unlock(&a.actor, &id).await.map(|_| ()),
        "reset-token" => sv.reset_token(&a.actor, &id).await.map(|_| ()),
        other => Err(ServiceError::NotFound(format!(
            "no action {other:?}: use deactivate, reactivate, unlock or reset-token"
        ))),
    };
    r?;
    user_json(&state, &a, &id).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = NewPassword,
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn set_user_password(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<NewPassword>,
) -> Answer<User> {
    state
        .services
        .set_password(
            &a.actor,
            &id,
            &crate::domain::secret::Password::new(p.password),
        )
        .await?;
    user_json(&state, &a, &id).await
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/authenticator", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 204, description = "Removed (or there was none)"), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_authenticator(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.remove_totp(&a.actor, &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = [Session]), (status = 404, body = ErrorBody)))]
pub(super) async fn user_sessions(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<Session>> {
    let rows = state.services.sessions_of(&a.actor, &id).await?;
    Ok(Json(rows.into_iter().map(Session::from).collect()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions/{handle}", tag = "users",
    params(("id" = String, Path, description = "User id or username"), ("handle" = String, Path, description = "A session's handle")),
    responses((status = 204, description = "Ended"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn end_user_session(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path((id, handle)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if handle == a.session.handle() {
        return Err(ApiError::from(ServiceError::Conflict(
            "that is the session making this request: log out with it instead".into(),
        )));
    }
    let ended = state.services.end_session(&a.actor, &id, &handle).await?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::from(ServiceError::NotFound(
            "no such live session".into(),
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/users/{id}/refresh-tokens", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = [RefreshToken]), (status = 404, body = ErrorBody)))]
pub(super) async fn user_refresh_tokens(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<Vec<RefreshToken>> {
    let rows = state.services.refresh_tokens_of(&a.actor, &id).await?;
    Ok(Json(rows.into_iter().map(RefreshToken::from).collect()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/refresh-tokens/{handle}", tag = "users",
    params(("id" = String, Path, description = "User id or username"), ("handle" = String, Path, description = "A refresh token's handle")),
    responses((status = 204, description = "Revoked, with every access token it issued"), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_user_refresh_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path((id, handle)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .services
        .revoke_refresh_token(&a.actor, &id, &handle)
        .await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::from(ServiceError::NotFound(
            "no such refresh token".into(),
        )))
    }
}
