//! Login history: filters, the table, the CSV download and the per-hour chart.

use super::{Page, chrome, org};
use crate::domain::login::{Channel, LoginStatus};
use crate::http::AppState;
use crate::http::web::HistoryLine;
// The admin API's filter parameters: the form sends the same ones (its `type` is an alias).
use crate::http::api::HistoryParams;
use crate::http::web::auth::Admin;
use crate::http::web::{Chrome, WebError, capitalise, given, page, user_error};
use crate::listing::{Format, Listing};
use crate::service::history::{HistoryQuery, HourCount};
use crate::service::views::LOGIN_ATTEMPT_COLUMNS;
use crate::service::{ServiceError, fmt_ms};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;

/// The filter values as the form shows them again.
pub struct ShownQuery {
    pub user: String,
    pub status: String,
    pub login_type: String,
    pub from: String,
    pub to: String,
}

const PAGE_ROWS: i64 = 500;

fn local_datetime(field: &str, s: &str) -> Result<i64, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let fmt_s = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &fmt_s))
        .map(|t| crate::clock::ms(t.assume_utc()))
        .map_err(|_| format!("{field} is not a date and time like 2026-11-25T10:00 (got {s:?})"))
}

fn datetime_local(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    crate::clock::from_ms(ms).format(&fmt).unwrap_or_default()
}

/// The search the filters ask for, and the filters as the form shows them again: absent
/// `from`/`to` mean the last 24 hours, empty ones no bound; times as the form's
/// `datetime-local` fields write them.
fn history_query(
    p: &HistoryParams,
    now: i64,
    limit: i64,
) -> Result<(HistoryQuery, ShownQuery), String> {
    let day = 24 * 3_600_000;
    let bound =
        |field: &str, v: &Option<String>, default: Option<i64>| match v.as_deref().map(str::trim) {
            None => Ok(default),
            Some("") => Ok(None),
            Some(s) => local_datetime(field, s).map(Some),
        };
    let from = bound("From", &p.from, Some(now - day))?;
    let to = bound("To", &p.to, None)?;
    let q = HistoryQuery {
        user: given(&p.user).map(str::to_string),
        status: given(&p.status).map(str::to_string),
        login_type: given(&p.login_type).map(str::to_string),
        from,
        to,
        limit,
    };
    let shown = ShownQuery {
        user: q.user.clone().unwrap_or_default(),
        status: q.status.clone().unwrap_or_default(),
        login_type: q.login_type.clone().unwrap_or_default(),
        from: from.map(datetime_local).unwrap_or_default(),
        to: to.map(datetime_local).unwrap_or_default(),
    };
    Ok((q, shown))
}

#[derive(Template)]
#[template(path = "web/setup_history.html")]
struct HistoryPage {
    chrome: Chrome,
    q: ShownQuery,
    query: String,
    statuses: Vec<&'static str>,
    types: Vec<&'static str>,
    rows: Vec<HistoryLine>,
    limit: i64,
    chart: String,
    chart_range: String,
}

pub(super) async fn history_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(p): Query<HistoryParams>,
) -> Page {
    let sv = &state.services;
    let mut c = chrome(&s, "Login History", "/setup/login-history");
    let (q, shown) = match history_query(&p, sv.now_ms(), PAGE_ROWS) {
        Ok(v) => v,
        Err(m) => {
            c.error = Some(m);
            history_query(&HistoryParams::default(), sv.now_ms(), PAGE_ROWS)
                .map_err(WebError::BadForm)?
        }
    };
    let (rows, hours) = match (
        sv.login_history(&s.actor, Some(org(&s)), &q).await,
        sv.login_history_per_hour(&s.actor, org(&s), &q).await,
    ) {
        (Ok(r), Ok(h)) => (r, h),
        (Err(e), _) | (_, Err(e)) => {
            c.error = Some(user_error_or_missing(e)?);
            (Vec::new(), Vec::new())
        }
    };
    let query = serde_urlencoded::to_string([
        ("user", shown.user.as_str()),
        ("status", shown.status.as_str()),
        ("type", shown.login_type.as_str()),
        ("from", shown.from.as_str()),
        ("to", shown.to.as_str()),
    ])
    .unwrap_or_default();
    let chart_range = match (hours.first(), hours.last()) {
        (Some(a), Some(b)) => format!("{} to {}", fmt_ms(a.hour), fmt_ms(b.hour + 3_600_000)),
        _ => String::new(),
    };
    Ok(page(&HistoryPage {
        chrome: c,
        q: shown,
        query,
        statuses: LoginStatus::ALL.iter().map(|s| s.as_str()).collect(),
        types: [
            Channel::Ui,
            Channel::SoapPartner,
            Channel::SoapEnterprise,
            Channel::OAuth,
        ]
        .iter()
        .map(|c| c.login_type())
        .collect(),
        rows: rows.into_iter().map(HistoryLine::from).collect(),
        limit: PAGE_ROWS,
        chart: chart_svg(&hours),
        chart_range,
    }))
}

/// A filter naming a user who does not exist (or is in another org) shows an empty result with
/// the reason, like a bad value; anything else is an error page.
fn user_error_or_missing(e: ServiceError) -> Result<String, WebError> {
    match e {
        ServiceError::NotFound(m) => Ok(capitalise(&m)),
        other => user_error(other),
    }
}

pub(super) async fn history_csv(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(p): Query<HistoryParams>,
) -> Page {
    let sv = &state.services;
    let (q, _) = history_query(&p, sv.now_ms(), crate::service::history::MAX_LIMIT)
        .map_err(WebError::BadForm)?;
    let rows = sv.login_history(&s.actor, Some(org(&s)), &q).await?;
    let listing = Listing::of(&LOGIN_ATTEMPT_COLUMNS, &rows);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"login-history.csv\"",
            ),
        ],
        listing.render(Format::Csv),
    )
        .into_response())
}

/// One bar of the chart, in SVG user units.
pub struct Bar {
    pub x: f64,
    pub w: f64,
    pub ok_y: f64,
    pub ok_h: f64,
    pub fail_y: f64,
    pub fail_h: f64,
    pub label: String,
}

pub struct Tick {
    pub x: f64,
    pub text: String,
}

#[derive(Template)]
#[template(path = "web/chart.svg", escape = "html")]
struct Chart {
    width: f64,
    height: f64,
    plot_bottom: f64,
    max: i64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    total_ok: i64,
    total_fail: i64,
}

/// The per-hour chart, server-rendered: stacked bars of successes and failures.
fn chart_svg(hours: &[HourCount]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    let max = hours
        .iter()
        .map(|h| h.success + h.failure)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = hours.len().max(1) as f64;
    let slot = (W - LEFT - 40.0) / n;
    let plot = H - BOTTOM - TOP;
    let scale = |v: i64| v as f64 / max as f64 * plot;
    let every = (hours.len() / 12).max(1);
    let fmt = time::macros::format_description!("[month]-[day] [hour]h");
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let ok_h = scale(h.success);
            let fail_h = scale(h.failure);
            let base = H - BOTTOM;
            Bar {
                x: LEFT + i as f64 * slot + slot * 0.1,
                w: (slot * 0.8).max(0.5),
                ok_y: base - ok_h,
                ok_h,
                fail_y: base - ok_h - fail_h,
                fail_h,
                label: format!(
                    "{}: {} success, {} failure",
                    fmt_ms(h.hour),
                    h.success,
                    h.failure
                ),
            }
        })
        .collect();
    let ticks = hours
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, h)| Tick {
            x: LEFT + i as f64 * slot,
            text: crate::clock::from_ms(h.hour)
                .format(&fmt)
                .unwrap_or_default(),
        })
        .collect();
    let chart = Chart {
        width: W,
        height: H,
        plot_bottom: H - BOTTOM,
        max,
        bars,
        ticks,
        total_ok: hours.iter().map(|h| h.success).sum(),
        total_fail: hours.iter().map(|h| h.failure).sum(),
    };
    chart.render().unwrap_or_default()
}
