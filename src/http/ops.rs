//! Operations: `/healthz` for load balancers, `/metrics` for Prometheus.

use super::AppState;
use super::identity::bearer;
use crate::crypto::{ct_eq, digest};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::fmt::Write;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// 200 when the database answers, 503 when it does not (a load balancer takes the node out).
async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let s = &app.services;
    match s.health().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": s.database_name()})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": s.database_name()})),
            )
        }
    }
}

/// Prometheus text format: logins by type and status, the hash pool's queue, the outbox
/// backlog (-1 when the database does not answer). Only with `Authorization: Bearer
/// <server.metrics_token>`: the statuses tell an unknown username from a wrong password, which
/// a login never tells (R-L4). Without a configured token the endpoint does not exist.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = &app.http.metrics_token else {
        return (
            StatusCode::NOT_FOUND,
            "Not found: /metrics is off until server.metrics_token is set\n",
        )
            .into_response();
    };
    let sent = bearer(&headers, None).unwrap_or_default();
    if !ct_eq(&digest(&sent), &digest(expected)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs Authorization: Bearer <server.metrics_token>\n",
        )
            .into_response();
    }
    let s = &app.services;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP keyward_logins_total Login attempts by login type and login-history status.\n\
         # TYPE keyward_logins_total counter"
    );
    for (login_type, status, n) in s.metrics.logins() {
        let _ = writeln!(
            out,
            "keyward_logins_total{{login_type=\"{}\",status=\"{}\"}} {n}",
            label(login_type),
            label(status)
        );
    }
    let _ = writeln!(
        out,
        "# HELP keyward_hash_queue_depth Password hashes waiting for a place in the hash pool.\n\
         # TYPE keyward_hash_queue_depth gauge\nkeyward_hash_queue_depth {}",
        s.hasher.queue_depth()
    );
    let _ = writeln!(
        out,
        "# HELP keyward_hash_invocations_total Password hashes and verifications run.\n\
         # TYPE keyward_hash_invocations_total counter\nkeyward_hash_invocations_total {}",
        s.hasher.invocations()
    );
    let _ = writeln!(
        out,
        "# HELP keyward_hash_queue_refused_total Logins answered 503 because password_hash.max_queue hashes were already waiting.\n\
         # TYPE keyward_hash_queue_refused_total counter\nkeyward_hash_queue_refused_total {}",
        s.hasher.refusals()
    );
    let _ = writeln!(
        out,
        "# HELP keyward_addresses_limited_total Times a source address reached address_limit.failures (its logins are then refused until its window ends).\n\
         # TYPE keyward_addresses_limited_total counter\nkeyward_addresses_limited_total {}",
        s.metrics.addresses_limited()
    );
    let backlog = s.outbox.backlog().await.unwrap_or(-1);
    let _ = writeln!(
        out,
        "# HELP keyward_outbox_backlog Mails queued and not yet delivered.\n\
         # TYPE keyward_outbox_backlog gauge\nkeyward_outbox_backlog {backlog}"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Label values escaped as the exposition format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
