//! Network Access: the org's trusted IP ranges.

use super::{Page, RangeForm, chrome, messages, org, ranges18};
use crate::http::AppState;
use crate::http::web::Nothing;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::{Chrome, Done, WebForm, given, page, user_error};
use crate::service::views::IpRange;
use askama::Template;
use axum::extract::{Path, Query, State};

#[derive(Template)]
#[template(path = "web/setup_network.html")]
struct NetworkPage {
    chrome: Chrome,
    ranges_action: String,
    ranges: Vec<IpRange>,
}

async fn render_network(state: &AppState, s: &Signed, c: Chrome) -> Page {
    let ranges = state.services.list_trusted_ranges(&s.actor, org(s)).await?;
    Ok(page(&NetworkPage {
        chrome: c,
        ranges_action: "/setup/network".into(),
        ranges: ranges18(ranges),
    }))
}

pub(super) async fn network_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Network Access", "/setup/network").with_notice(messages(&d));
    render_network(&state, &s, c).await
}

pub(super) async fn add_trusted_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<RangeForm>,
) -> Page {
    s.check(&form)?;
    let f = &form.data;
    let result = state
        .services
        .add_trusted_range(&s.actor, org(&s), &f.start, given(&f.end), &f.description)
        .await;
    match result {
        Ok(_) => Ok(done("/setup/network", "added")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Network Access", "/setup/network").with_error(msg);
            render_network(&state, &s, c).await
        }
    }
}

pub(super) async fn remove_trusted_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(range): Path<String>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    state
        .services
        .remove_trusted_range(&s.actor, org(&s), &range)
        .await?;
    Ok(done("/setup/network", "removed"))
}
