//! The admin API's handlers: read the request, call the service, answer JSON. Each is
//! annotated for the OpenAPI document. One file per resource, as the document tags them (the
//! email log is with history); here the routing table and what every handler shares.

pub(super) mod history;
pub(super) mod integration;
pub(super) mod network;
pub(super) mod oauth;
pub(super) mod policy;
pub(super) mod profiles;
pub(super) mod users;

use super::ApiError;
use crate::http::AppState;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use history::{audit_trail, list_mail, login_history, login_history_per_hour, retry_mail};
use integration::{
    create_integration_token, get_integration_token, integration_token_usage,
    list_integration_tokens, revoke_integration_token, rotate_integration_token,
    security_token_usage,
};
use network::{
    add_login_range, add_trusted_range, list_login_ranges, list_trusted_ranges, remove_login_range,
    remove_trusted_range,
};
use oauth::{
    create_oauth_client, delete_oauth_client, get_oauth_client, list_oauth_clients,
    oauth_client_action, rotate_client_secret,
};
use policy::{get_delegated_auth, get_policy, set_delegated_auth, update_policy};
use profiles::{create_profile, get_profile, list_profiles, update_profile};
use users::{
    create_user, end_user_session, get_user, list_users, remove_authenticator,
    revoke_user_refresh_token, set_user_password, update_user, user_action, user_refresh_tokens,
    user_sessions,
};

pub(super) fn routes() -> Router<AppState> {
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
        .route(
            "/api/v1/users/{id}/integration-tokens",
            get(list_integration_tokens).post(create_integration_token),
        )
        .route("/api/v1/users/{id}/token-usage", get(security_token_usage))
        .route("/api/v1/users/{id}/{action}", post(user_action))
        .route(
            "/api/v1/integration-tokens/{id}",
            get(get_integration_token).delete(revoke_integration_token),
        )
        .route(
            "/api/v1/integration-tokens/{id}/rotate",
            post(rotate_integration_token),
        )
        .route(
            "/api/v1/integration-tokens/{id}/usage",
            get(integration_token_usage),
        )
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
