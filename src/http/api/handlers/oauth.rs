//! `/api/v1/oauth-clients/…`: OAuth clients (connected apps); a client secret appears only in
//! the answer that made it.

use super::Answer;
use crate::http::AppState;
use crate::http::api::dto::*;
use crate::http::api::{ApiAdmin, ApiError, ApiJson, MaybeApiJson};
use crate::service::ServiceError;
use crate::service::oauth::ClientOptions;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[utoipa::path(get, path = "/api/v1/oauth-clients", tag = "oauth",
    responses((status = 200, body = [OAuthClient])))]
pub(super) async fn list_oauth_clients(
    State(state): State<AppState>,
    a: ApiAdmin,
) -> Answer<Vec<OAuthClient>> {
    let rows = state.services.list_oauth_clients(&a.actor, a.org()).await?;
    Ok(Json(rows.into_iter().map(OAuthClient::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/oauth-clients", tag = "oauth", request_body = NewOAuthClient,
    responses((status = 201, body = CreatedOAuthClient), (status = 400, body = ErrorBody)))]
pub(super) async fn create_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    ApiJson(n): ApiJson<NewOAuthClient>,
) -> Result<Response, ApiError> {
    let password = n.current_password.map(crate::domain::secret::Password::new);
    let (row, secret) = state
        .services
        .create_oauth_client(
            &a.actor,
            a.org(),
            &n.name,
            &ClientOptions {
                refresh_tokens: n.refresh_tokens,
                run_as: n.run_as.as_deref(),
                current_password: password.as_ref(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOAuthClient {
            client: row.into(),
            client_secret: secret.0,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/oauth-clients/{id}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 200, body = OAuthClient), (status = 404, body = ErrorBody)))]
pub(super) async fn get_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Answer<OAuthClient> {
    let c = state.services.get_oauth_client(&a.actor, &id).await?;
    Ok(Json(c.into()))
}

#[utoipa::path(delete, path = "/api/v1/oauth-clients/{id}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 204, description = "Deleted: every access and refresh token issued to it stopped working"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn delete_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.delete_oauth_client(&a.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/oauth-clients/{id}/rotate-secret", tag = "oauth",
    request_body(content = Option<RotateSecret>, description = "Optional: your password, for a client that acts as you"),
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 200, body = CreatedOAuthClient, description = "The new secret, shown only in this answer; the old one is refused from now on"),
        (status = 404, body = ErrorBody)))]
pub(super) async fn rotate_client_secret(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path(id): Path<String>,
    MaybeApiJson(body): MaybeApiJson<RotateSecret>,
) -> Answer<CreatedOAuthClient> {
    let password = body
        .and_then(|b| b.current_password)
        .map(crate::domain::secret::Password::new);
    let (row, secret) = state
        .services
        .rotate_client_secret(&a.actor, &id, password.as_ref())
        .await?;
    Ok(Json(CreatedOAuthClient {
        client: row.into(),
        client_secret: secret.0,
    }))
}

#[utoipa::path(post, path = "/api/v1/oauth-clients/{id}/{action}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key"),
        ("action" = String, Path, description = "`disable` (its access tokens end; grants and its refresh tokens are refused) or `enable`")),
    responses((status = 200, body = OAuthClient), (status = 404, body = ErrorBody)))]
pub(super) async fn oauth_client_action(
    State(state): State<AppState>,
    a: ApiAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Answer<OAuthClient> {
    let enabled = match action.as_str() {
        "disable" => false,
        "enable" => true,
        other => {
            return Err(ApiError::from(ServiceError::NotFound(format!(
                "no action {other:?}: use disable or enable"
            ))));
        }
    };
    let sv = &state.services;
    sv.set_client_enabled(&a.actor, &id, enabled).await?;
    let c = sv.get_oauth_client(&a.actor, &id).await?;
    Ok(Json(c.into()))
}
