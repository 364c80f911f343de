//! The admin API's handlers: read the request, call the service, answer JSON. Each is
//! annotated for the OpenAPI document.

use super::dto::*;
use super::{ApiAdmin, ApiError, ApiJson, MaybeApiJson};
use crate::http::{AppState, RequestId};
use crate::service::admin::HistoryQuery;
use crate::service::oauth::ClientOptions;
use crate::service::{ServiceError, account, orgs, users};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}", get(get_user).patch(update_user))
        .route("/api/v1/users/{id}/password", post(set_user_password))
        .route(
            "/api/v1/users/{id}/authenticator",
            delete(remove_authenticator),
        )
        .route("/api/v1/users/{id}/sessions", get(user_sessions))
        .route(
            "/api/v1/users/{id}/sessions/{handle}",
            delete(end_user_session),
        )
        .route(
            "/api/v1/users/{id}/refresh-tokens",
            get(user_refresh_tokens),
        )
        .route(
            "/api/v1/users/{id}/refresh-tokens/{handle}",
            delete(revoke_user_refresh_token),
        )
        .route("/api/v1/users/{id}/{action}", post(user_action))
        .route("/api/v1/profiles", get(list_profiles).post(create_profile))
        .route(
            "/api/v1/profiles/{id}",
            get(get_profile).patch(update_profile),
        )
        .route(
            "/api/v1/profiles/{id}/login-ip-ranges",
            get(list_login_ranges).post(add_login_range),
        )
        .route(
            "/api/v1/profiles/{id}/login-ip-ranges/{range}",
            delete(remove_login_range),
        )
        .route(
            "/api/v1/trusted-ip-ranges",
            get(list_trusted_ranges).post(add_trusted_range),
        )
        .route(
            "/api/v1/trusted-ip-ranges/{range}",
            delete(remove_trusted_range),
        )
        .route("/api/v1/policy", get(get_policy).patch(update_policy))
        .route(
            "/api/v1/delegated-auth",
            get(get_delegated_auth).put(set_delegated_auth),
        )
        .route(
            "/api/v1/oauth-clients",
            get(list_oauth_clients).post(create_oauth_client),
        )
        .route(
            "/api/v1/oauth-clients/{id}",
            get(get_oauth_client).delete(delete_oauth_client),
        )
        .route(
            "/api/v1/oauth-clients/{id}/rotate-secret",
            post(rotate_client_secret),
        )
        .route(
            "/api/v1/oauth-clients/{id}/{action}",
            post(oauth_client_action),
        )
        .route("/api/v1/login-history", get(login_history))
        .route(
            "/api/v1/login-history/per-hour",
            get(login_history_per_hour),
        )
        .route("/api/v1/audit-trail", get(audit_trail))
        .route("/api/v1/mail", get(list_mail))
        .route("/api/v1/mail/{id}/retry", post(retry_mail))
}

type Answer<T> = Result<Json<T>, ApiError>;

fn svc(rid: &RequestId) -> impl Fn(ServiceError) -> ApiError + '_ {
    move |e| ApiError::service(e, rid)
}

fn limit(l: Option<i64>) -> Result<i64, ServiceError> {
    let l = l.unwrap_or(100);
    if (1..=crate::service::admin::MAX_ROWS).contains(&l) {
        Ok(l)
    } else {
        Err(ServiceError::Invalid(format!(
            "limit must be between 1 and {} (got {l})",
            crate::service::admin::MAX_ROWS
        )))
    }
}

async fn user_json(state: &AppState, a: &ApiAdmin, id: &str, rid: &RequestId) -> Answer<User> {
    let v = state
        .services
        .show_user(&a.actor, id)
        .await
        .map_err(svc(rid))?;
    Ok(Json(User::of(
        &v.user,
        &v.profile_name,
        state.services.now_ms(),
    )))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = [User], description = "In username order; page with `after`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Query(p): Query<UserListParams>,
) -> Answer<Vec<User>> {
    let sv = &state.services;
    let l = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&l) {
        return Err(ApiError::service(
            ServiceError::Invalid(format!("limit must be between 1 and 1000 (got {l})")),
            &rid,
        ));
    }
    let users = sv
        .search_users(&a.actor, a.org(), p.q.as_deref(), p.after.as_deref(), l)
        .await
        .map_err(svc(&rid))?;
    let profiles = sv
        .list_profiles(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
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
pub async fn create_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    let Json(user) = user_json(&state, &a, &u.id, &rid).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id (15 or 18 characters) or username")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<User> {
    user_json(&state, &a, &id, &rid).await
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserChange,
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    user_json(&state, &a, &u.id, &rid).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/{action}", tag = "users",
    params(("id" = String, Path, description = "User id or username"),
        ("action" = String, Path, description = "`deactivate` (R-T8), `reactivate`, `unlock` (R-L5) or `reset-token` (R-T5: the new token is emailed to the user, never returned)")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user_action(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
    r.map_err(svc(&rid))?;
    user_json(&state, &a, &id, &rid).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = NewPassword,
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_user_password(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    user_json(&state, &a, &id, &rid).await
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/authenticator", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 204, description = "Removed (or there was none)"), (status = 404, body = ErrorBody)))]
pub async fn remove_authenticator(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_totp(&a.actor, &id, None)
        .await
        .map_err(svc(&rid))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = [Session]), (status = 404, body = ErrorBody)))]
pub async fn user_sessions(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<Vec<Session>> {
    let rows = state
        .services
        .sessions_of(&a.actor, &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(Session::from).collect()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions/{handle}", tag = "users",
    params(("id" = String, Path, description = "User id or username"), ("handle" = String, Path, description = "A session's handle")),
    responses((status = 204, description = "Ended"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end_user_session(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path((id, handle)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if handle == a.session.session.digest {
        return Err(ApiError::service(
            ServiceError::Conflict(
                "that is the session making this request: log out with it instead".into(),
            ),
            &rid,
        ));
    }
    let ended = state
        .services
        .end_session(&a.actor, &id, &handle)
        .await
        .map_err(svc(&rid))?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::service(
            ServiceError::NotFound("no such live session".into()),
            &rid,
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/users/{id}/refresh-tokens", tag = "users",
    params(("id" = String, Path, description = "User id or username")),
    responses((status = 200, body = [RefreshToken]), (status = 404, body = ErrorBody)))]
pub async fn user_refresh_tokens(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<Vec<RefreshToken>> {
    let rows = state
        .services
        .refresh_tokens_of(&a.actor, &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(RefreshToken::from).collect()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/refresh-tokens/{handle}", tag = "users",
    params(("id" = String, Path, description = "User id or username"), ("handle" = String, Path, description = "A refresh token's handle")),
    responses((status = 204, description = "Revoked, with every access token it issued"), (status = 404, body = ErrorBody)))]
pub async fn revoke_user_refresh_token(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path((id, handle)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .services
        .revoke_refresh_token(&a.actor, &id, &handle)
        .await
        .map_err(svc(&rid))?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::service(
            ServiceError::NotFound("no such refresh token".into()),
            &rid,
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/profiles", tag = "profiles",
    responses((status = 200, body = [Profile])))]
pub async fn list_profiles(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
) -> Answer<Vec<Profile>> {
    let rows = state
        .services
        .list_profiles(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(Profile::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/profiles", tag = "profiles", request_body = NewProfile,
    responses((status = 201, body = Profile), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    ApiJson(p): ApiJson<NewProfile>,
) -> Result<Response, ApiError> {
    let row = state
        .services
        .create_profile(&a.actor, a.org(), &p.name, p.permissions.into())
        .await
        .map_err(svc(&rid))?;
    Ok((StatusCode::CREATED, Json(Profile::from(row))).into_response())
}

#[utoipa::path(get, path = "/api/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub async fn get_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<Profile> {
    let row = state
        .services
        .get_profile(&a.actor, a.org(), &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(row.into()))
}

#[utoipa::path(patch, path = "/api/v1/profiles/{id}", tag = "profiles", request_body = ProfilePatch,
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = Profile), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_profile(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<ProfilePatch>,
) -> Answer<Profile> {
    let change = p.permissions.unwrap_or_default().into();
    let row = state
        .services
        .update_profile(&a.actor, a.org(), &id, change)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(row.into()))
}

#[utoipa::path(get, path = "/api/v1/profiles/{id}/login-ip-ranges", tag = "network",
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 200, body = [IpRange]), (status = 404, body = ErrorBody)))]
pub async fn list_login_ranges(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<Vec<IpRange>> {
    let rows = state
        .services
        .list_login_ranges(&a.actor, a.org(), &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(IpRange::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/profiles/{id}/login-ip-ranges", tag = "network", request_body = NewIpRange,
    params(("id" = String, Path, description = "Profile id or name")),
    responses((status = 201, body = IpRange), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_login_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    Ok((StatusCode::CREATED, Json(IpRange::from(row))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/profiles/{id}/login-ip-ranges/{range}", tag = "network",
    params(("id" = String, Path, description = "Profile id or name"), ("range" = String, Path, description = "Range id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn remove_login_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path((id, range)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_login_range(&a.actor, a.org(), &id, &range)
        .await
        .map_err(svc(&rid))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/trusted-ip-ranges", tag = "network",
    responses((status = 200, body = [IpRange])))]
pub async fn list_trusted_ranges(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
) -> Answer<Vec<IpRange>> {
    let rows = state
        .services
        .list_trusted_ranges(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(IpRange::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/trusted-ip-ranges", tag = "network", request_body = NewIpRange,
    responses((status = 201, body = IpRange), (status = 400, body = ErrorBody)))]
pub async fn add_trusted_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    Ok((StatusCode::CREATED, Json(IpRange::from(row))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/trusted-ip-ranges/{range}", tag = "network",
    params(("range" = String, Path, description = "Range id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn remove_trusted_range(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(range): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_trusted_range(&a.actor, a.org(), &range)
        .await
        .map_err(svc(&rid))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/policy", tag = "policy",
    responses((status = 200, body = Policy)))]
pub async fn get_policy(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
) -> Answer<Policy> {
    let org = state
        .services
        .get_org(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(orgs::policy_of(&org).into()))
}

#[utoipa::path(patch, path = "/api/v1/policy", tag = "policy", request_body = PolicyChange,
    responses((status = 200, body = Policy), (status = 400, body = ErrorBody)))]
pub async fn update_policy(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    ApiJson(p): ApiJson<PolicyChange>,
) -> Answer<Policy> {
    let complexity = match p.complexity.as_deref() {
        None => None,
        Some(c) => Some(crate::domain::policy::Complexity::parse(c).ok_or_else(|| {
            ApiError::service(
                ServiceError::Invalid(format!(
                    "unknown complexity {c:?}: use none, alpha_numeric, \
                         alpha_numeric_special, upper_lower_numeric or \
                         upper_lower_numeric_special"
                )),
                &rid,
            )
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
    };
    if change.is_empty() {
        // An empty merge patch changes nothing (RFC 7396): the policy as it is.
        return get_policy(State(state), a, rid).await;
    }
    let policy = state
        .services
        .set_policy(&a.actor, a.org(), &change)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(policy.into()))
}

#[utoipa::path(get, path = "/api/v1/delegated-auth", tag = "policy",
    responses((status = 200, body = DelegatedAuth)))]
pub async fn get_delegated_auth(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
) -> Answer<DelegatedAuth> {
    let org = state
        .services
        .get_org(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(DelegatedAuth {
        url: org.delegated_auth_url,
    }))
}

#[utoipa::path(put, path = "/api/v1/delegated-auth", tag = "policy", request_body = DelegatedAuth,
    responses((status = 200, body = DelegatedAuth), (status = 400, body = ErrorBody)))]
pub async fn set_delegated_auth(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    ApiJson(d): ApiJson<DelegatedAuth>,
) -> Answer<DelegatedAuth> {
    state
        .services
        .set_delegated_auth(&a.actor, a.org(), d.url.as_deref())
        .await
        .map_err(svc(&rid))?;
    get_delegated_auth(State(state), a, rid).await
}

#[utoipa::path(get, path = "/api/v1/oauth-clients", tag = "oauth",
    responses((status = 200, body = [OAuthClient])))]
pub async fn list_oauth_clients(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
) -> Answer<Vec<OAuthClient>> {
    let rows = state
        .services
        .list_oauth_clients(&a.actor, a.org())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(OAuthClient::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/oauth-clients", tag = "oauth", request_body = NewOAuthClient,
    responses((status = 201, body = CreatedOAuthClient), (status = 400, body = ErrorBody)))]
pub async fn create_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
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
        .await
        .map_err(svc(&rid))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOAuthClient {
            client: row.into(),
            client_secret: secret.0,
        }),
    )
        .into_response())
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

#[utoipa::path(get, path = "/api/v1/oauth-clients/{id}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 200, body = OAuthClient), (status = 404, body = ErrorBody)))]
pub async fn get_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Answer<OAuthClient> {
    let c = state
        .services
        .get_oauth_client(&a.actor, &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(c.into()))
}

#[utoipa::path(delete, path = "/api/v1/oauth-clients/{id}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 204, description = "Deleted: every access and refresh token issued to it stopped working"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_oauth_client(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_oauth_client(&a.actor, &id)
        .await
        .map_err(svc(&rid))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/oauth-clients/{id}/rotate-secret", tag = "oauth",
    request_body(content = Option<RotateSecret>, description = "Optional: your password, for a client that acts as you"),
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key")),
    responses((status = 200, body = CreatedOAuthClient, description = "The new secret, shown only in this answer; the old one is refused from now on"),
        (status = 404, body = ErrorBody)))]
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
    MaybeApiJson(body): MaybeApiJson<RotateSecret>,
) -> Answer<CreatedOAuthClient> {
    let password = body
        .and_then(|b| b.current_password)
        .map(crate::domain::secret::Password::new);
    let (row, secret) = state
        .services
        .rotate_client_secret(&a.actor, &id, password.as_ref())
        .await
        .map_err(svc(&rid))?;
    Ok(Json(CreatedOAuthClient {
        client: row.into(),
        client_secret: secret.0,
    }))
}

#[utoipa::path(post, path = "/api/v1/oauth-clients/{id}/{action}", tag = "oauth",
    params(("id" = String, Path, description = "The client's id (0H4…) or consumer key"),
        ("action" = String, Path, description = "`disable` (its access tokens end; grants and its refresh tokens are refused) or `enable`")),
    responses((status = 200, body = OAuthClient), (status = 404, body = ErrorBody)))]
pub async fn oauth_client_action(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path((id, action)): Path<(String, String)>,
) -> Answer<OAuthClient> {
    let enabled = match action.as_str() {
        "disable" => false,
        "enable" => true,
        other => {
            return Err(ApiError::service(
                ServiceError::NotFound(format!("no action {other:?}: use disable or enable")),
                &rid,
            ));
        }
    };
    let sv = &state.services;
    sv.set_client_enabled(&a.actor, &id, enabled)
        .await
        .map_err(svc(&rid))?;
    let c = sv
        .get_oauth_client(&a.actor, &id)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(c.into()))
}

#[utoipa::path(get, path = "/api/v1/login-history", tag = "history", params(HistoryParams),
    responses((status = 200, body = [LoginAttempt]), (status = 400, body = ErrorBody)))]
pub async fn login_history(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Query(p): Query<HistoryParams>,
) -> Answer<Vec<LoginAttempt>> {
    let q = history_query(&p, None).map_err(svc(&rid))?;
    let rows = state
        .services
        .search_login_history(&a.actor, a.org(), &q)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(LoginAttempt::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/login-history/per-hour", tag = "history", params(HistoryParams),
    responses((status = 200, body = [HourBucket]), (status = 400, body = ErrorBody)))]
pub async fn login_history_per_hour(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Query(p): Query<HistoryParams>,
) -> Answer<Vec<HourBucket>> {
    let mut q = history_query(&p, Some(crate::service::admin::MAX_ROWS)).map_err(svc(&rid))?;
    if q.from.is_none() {
        q.from = Some(state.services.now_ms() - 24 * 3_600_000);
    }
    let rows = state
        .services
        .login_history_per_hour(&a.actor, a.org(), &q)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(HourBucket::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/audit-trail", tag = "history", params(LimitParams),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = ErrorBody)))]
pub async fn audit_trail(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Query(p): Query<LimitParams>,
) -> Answer<Vec<AuditEntry>> {
    let l = limit(p.limit).map_err(svc(&rid))?;
    let rows = state
        .services
        .audit_trail(&a.actor, a.org(), l)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(AuditEntry::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/mail", tag = "mail", params(MailParams),
    responses((status = 200, body = [Mail]), (status = 400, body = ErrorBody)))]
pub async fn list_mail(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Query(p): Query<MailParams>,
) -> Answer<Vec<Mail>> {
    let l = limit(p.limit).map_err(svc(&rid))?;
    let status = p.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !["queued", "sent", "dead"].contains(&s)
    {
        return Err(ApiError::service(
            ServiceError::Invalid(format!("status must be queued, sent or dead (got {s:?})")),
            &rid,
        ));
    }
    let rows = state
        .services
        .org_mail(&a.actor, a.org(), status, l)
        .await
        .map_err(svc(&rid))?;
    Ok(Json(rows.into_iter().map(Mail::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/mail/{id}/retry", tag = "mail",
    params(("id" = String, Path, description = "Mail id")),
    responses((status = 204, description = "Queued again"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry_mail(
    State(state): State<AppState>,
    a: ApiAdmin,
    rid: RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .retry_mail(&a.actor, a.org(), &id)
        .await
        .map_err(svc(&rid))?;
    Ok(StatusCode::NO_CONTENT)
}
