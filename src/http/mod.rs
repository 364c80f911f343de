//! HTTP: the only module that knows axum. At this stage the server answers `/healthz`; the SOAP,
//! OAuth, identity and web interfaces join here, each calling `service` and nothing below it.

use crate::service::Services;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/healthz/", get(healthz))
        .with_state(services)
}

/// 200 when the database answers, 503 when it does not (a load balancer takes the node out).
async fn healthz(State(s): State<Arc<Services>>) -> impl IntoResponse {
    match s.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": s.db.backend_name()})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": s.db.backend_name()})),
            )
        }
    }
}
