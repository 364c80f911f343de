//! The identity URL `/id/{orgId}/{userId}` (docs/wire.md §2.3): who the token belongs to, with
//! the fields jsforce's `identity()` reads. The token comes as `Authorization: Bearer` or
//! `?oauth_token=`; a bad one gets Salesforce's `403 Bad_OAuth_Token`.

use super::AppState;
use super::RequestId;
use super::extract::BaseUrl;
use crate::domain::ids::{KeyPrefix, SfId};
use crate::service::{ServiceError, fmt_api_ms, id18};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new().route("/id/{org_id}/{user_id}", get(identity).post(identity))
}

/// `{base}/id/{org18}/{user18}`: jsforce splits it to learn the org and user ids.
pub fn identity_url(base: &str, org_id: &str, user_id: &str) -> String {
    format!("{base}/id/{}/{}", id18(org_id), id18(user_id))
}

/// The API endpoints of the org; `{version}` stays a placeholder unless a version is given.
pub fn urls(base: &str, org_id: &str, user_id: &str, version: Option<&str>) -> Value {
    let v = version.unwrap_or("{version}");
    json!({
        "enterprise": format!("{base}/services/Soap/c/{v}/{org_id}"),
        "metadata": format!("{base}/services/Soap/m/{v}/{org_id}"),
        "partner": format!("{base}/services/Soap/u/{v}/{org_id}"),
        "rest": format!("{base}/services/data/v{v}/"),
        "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
        "search": format!("{base}/services/data/v{v}/search/"),
        "query": format!("{base}/services/data/v{v}/query/"),
        "recent": format!("{base}/services/data/v{v}/recent/"),
        "profile": format!("{base}/{}", id18(user_id)),
        "custom_domain": base,
    })
}

/// The part of the username before `@`.
pub fn nickname(username: &str) -> &str {
    username.split('@').next().unwrap_or(username)
}

/// `Authorization: Bearer …` (or `OAuth …`, which Salesforce also accepts), else
/// `oauth_token` in the query string.
pub fn bearer(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
                .then(|| token.trim().to_string())
        });
    from_header.or_else(|| query_param(query, "oauth_token"))
}

pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Salesforce's answer to a missing, malformed, expired or revoked token.
pub fn bad_token() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Bad_OAuth_Token",
    )
        .into_response()
}

fn unavailable(e: &ServiceError, request_id: &str) -> Response {
    tracing::warn!(%request_id, error = %e, "identity request failed");
    let status = match e {
        ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        format!("The server could not answer (request id {request_id})\n"),
    )
        .into_response()
}

async fn identity(
    State(app): State<AppState>,
    Path((org_id, user_id)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    request_id: RequestId,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = query.as_deref();
    let format = query_param(q, "format").unwrap_or_else(|| "json".into());
    if format != "json" {
        return (
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "format {:?} is not supported: use format=json\n",
                format.chars().take(20).collect::<String>()
            ),
        )
            .into_response();
    }
    let version = query_param(q, "version")
        .filter(|v| v.len() <= 6 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    let Some(token) = bearer(&headers, q) else {
        return bad_token();
    };
    let session = match app.services.check_api_session(&token).await {
        Ok(Some(s)) if !s.password_expired() => s,
        Ok(_) => return bad_token(),
        Err(e) => return unavailable(&e, &request_id.0),
    };
    let (org, user) = (session.org(), session.user());
    // The ids in the path must be the token's own (either length, any case of the 18-form).
    let same = |input: &str, prefix: KeyPrefix, id15: &str| {
        SfId::parse_as(input, prefix).is_ok_and(|id| id.as_15() == id15)
    };
    if !same(&org_id, KeyPrefix::Org, &org.id) || !same(&user_id, KeyPrefix::User, &user.id) {
        return (StatusCode::FORBIDDEN, "Bad_Id").into_response();
    }
    let body = json!({
        "id": identity_url(&base, &org.id, &user.id),
        "asserted_user": true,
        "user_id": id18(&user.id),
        "organization_id": id18(&org.id),
        "username": user.username,
        "nick_name": nickname(&user.username),
        "display_name": user.full_name(),
        "email": user.email,
        "email_verified": true,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "timezone": "GMT",
        "photos": {"picture": "", "thumbnail": ""},
        "mobile_phone": null,
        "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": {"created_date": null, "body": null},
        "urls": urls(&base, &org.id, &user.id, version.as_deref()),
        "active": user.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": fmt_api_ms(user.updated_at),
        "is_app_installed": true,
    });
    let pretty = headers
        .get("x-prettyprint")
        .is_some_and(|v| v.as_bytes() == b"1");
    let text = if pretty {
        serde_json::to_string_pretty(&body)
    } else {
        serde_json::to_string(&body)
    }
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        )],
        text,
    )
        .into_response()
}
