//! Setup, for admins of the org (R-M1): users, profiles, network access, policies, OAuth
//! clients, delegated authentication, login history, audit trail, outbox.

use crate::http::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
