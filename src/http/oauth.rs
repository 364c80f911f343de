//! OAuth 2.0 at `/services/oauth2/…` (docs/wire.md §2): `token` (grants `password`,
//! `refresh_token`, `client_credentials`), `revoke`, `introspect` (RFC 7662) and `userinfo`.
//! Requests are `application/x-www-form-urlencoded` (or `multipart/form-data` of text fields,
//! as the Salesforce CLI sends some); answers are JSON; errors are HTTP 400
//! `{"error", "error_description"}` with Salesforce's codes and texts.

use super::AppState;
use super::BodyWithRequestId;
use super::extract::{BaseUrl, ClientIp, LoginCall, read_body, user_agent};
use super::identity::{self, bearer};
use super::multipart;
use crate::domain::login::{LoginOutcome, LoginStatus};
use crate::domain::secret::Password;
use crate::domain::token::SuppliedSecret;
use crate::service::ServiceError;
use crate::service::id18;
use crate::service::login::{LoginRequest, LoginSession};
use crate::service::oauth::{
    ClientRefusal, GrantOutcome, GrantRequest, Introspection, RefusalRecorded, issue_to,
};
use crate::service::views::OAuthClient;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke).get(revoke_get))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/userinfo", get(userinfo).post(userinfo))
}

/// An OAuth error answer: `{"error", "error_description"}`, HTTP 400 unless said otherwise.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// keyward's addition: the SOAP exception code where it says more than `invalid_grant`.
    code: Option<&'static str>,
    /// `Retry-After`, for the per-address failed-login limit.
    retry_after: Option<time::Duration>,
    /// The description ends with `(request id …)`.
    quote_request_id: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            code: None,
            retry_after: None,
            quote_request_id: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    fn authentication_failure() -> OAuthError {
        OAuthError::new("invalid_grant", "authentication failure")
    }
}

/// The server's own trouble: logged (in the request's span, which names the request id), and
/// answered with the request id to quote.
impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> OAuthError {
        // Input the services refuse (a value the database cannot store, say) is the client's.
        if let ServiceError::Invalid(m) = e {
            return OAuthError::invalid_request(m);
        }
        let (status, error, description) = match e {
            ServiceError::Unavailable(_) => {
                tracing::warn!(error = %e, "OAuth request: temporarily unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the server is temporarily unavailable",
                )
            }
            _ => {
                tracing::error!(error = %e, "OAuth request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "unexpected error",
                )
            }
        };
        OAuthError {
            status,
            quote_request_id: true,
            ..OAuthError::new(error, description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "error_description": self.description});
        if let Some(code) = self.code {
            body["error_code"] = json!(code);
        }
        let response = (self.status, Json(&body)).into_response();
        let response = if self.quote_request_id {
            BodyWithRequestId::attach(response, move |id| {
                let mut body = body.clone();
                body["error_description"] =
                    json!(format!("{} (request id {id})", self.description));
                body.to_string()
            })
        } else {
            response
        };
        crate::http::with_retry_after(response, self.retry_after)
    }
}

/// A form body, each parameter at most once (RFC 6749 §3.2: "MUST NOT be included more than
/// once").
pub(crate) struct Form(BTreeMap<String, String>);

/// Names only: the values include passwords and secrets.
impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Form {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

pub(crate) fn parse_pairs(raw: &[u8]) -> Result<Form, OAuthError> {
    form_of(form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())))
}

/// The fields of a request, each named once.
fn form_of(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Form, OAuthError> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {} is repeated",
                k.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(Form(map))
}

async fn read_form(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form_encoded = content_type.split(';').next().is_some_and(|v| {
        v.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    let multipart = multipart::boundary(content_type);
    let raw = read_body(body, headers, app.http.max_body_bytes)
        .await
        .map_err(|e| OAuthError {
            status: e.status(),
            ..OAuthError::invalid_request(e.to_string())
        })?;
    match multipart {
        _ if form_encoded => parse_pairs(&raw),
        Some(boundary) => boundary
            .and_then(|b| multipart::fields(&raw, &b))
            .map_err(|e| OAuthError::invalid_request(e.to_string()))
            .and_then(form_of),
        // Salesforce's answer to a body that is not form-encoded.
        None => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    }
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1) or the form; not both.
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<(String, String), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    match (basic, form.get("client_id")) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "client credentials in both the Authorization header and the body: use one",
        )),
        (Some(b64), None) => {
            let decoded = BASE64
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::invalid_request("malformed Basic authorization"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_request("malformed Basic authorization"))?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok((unescape(id), unescape(secret)))
        }
        (None, Some(id)) => Ok((
            id.to_string(),
            form.get("client_secret").unwrap_or("").to_string(),
        )),
        // No client named: authenticated as the unknown client it is, so the attempt still
        // lands in login history.
        (None, None) => Ok((String::new(), String::new())),
    }
}

struct TokenCtx<'a> {
    app: &'a AppState,
    base: &'a str,
}

async fn token(State(app): State<AppState>, call: LoginCall) -> Response {
    let ctx = TokenCtx {
        app: &app,
        base: &call.base,
    };
    let grant = GrantRequest {
        source_ip: call.ip,
        user_agent: user_agent(&call.headers),
        login_url: &call.login_url,
    };
    match ctx.token(&call.headers, call.body, &grant).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

impl TokenCtx<'_> {
    async fn token(
        &self,
        headers: &HeaderMap,
        body: Body,
        grant: &GrantRequest<'_>,
    ) -> Result<Response, OAuthError> {
        let form = read_form(self.app, headers, body).await?;
        let grant_type = form.get("grant_type").unwrap_or("");
        if !matches!(
            grant_type,
            "password" | "refresh_token" | "client_credentials"
        ) {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant type not supported",
            ));
        }
        let username = form.get("username");
        let (client_id, secret) = client_credentials(headers, &form)?;
        let s = &self.app.services;
        // A grant that proves no password must not tell a refused address that its guessed
        // client secret is right: the limit first. (A password grant's login checks it before
        // anything, and answers a refused address the same whatever the secret.)
        if grant_type != "password"
            && let Some(until) = s.address_refused(grant.source_ip).await?
        {
            return Err(rate_limited(Some(until - s.now())));
        }
        let client = self.client(&client_id, &secret, grant).await?;
        match grant_type {
            "password" => {
                let (Some(username), Some(password)) = (username, form.0.get("password")) else {
                    return Err(OAuthError::invalid_request(
                        "the password grant needs username and password",
                    ));
                };
                let password = Password::new(password.as_str());
                let supplied = match form.0.get("security_token") {
                    Some(t) => SuppliedSecret::separate(password, t),
                    None => SuppliedSecret::split(&password),
                };
                let mut req = LoginRequest::new(
                    username.to_string(),
                    supplied,
                    crate::domain::login::Channel::OAuth,
                    grant.source_ip,
                );
                req.client = client.client_id.clone();
                req.login_url = grant.login_url.to_string();
                // A client logs in users of its own org only (R-M1); anyone else is unknown
                // to it, at the cost of a wrong password (R-L4).
                req.org_scope = Some(client.org_id.clone());
                req.oauth_client = Some(issue_to(&client));
                let response = s.login_detached(req).await?;
                match (response.outcome, response.session) {
                    (LoginOutcome::Success { .. }, Some(session)) => {
                        Ok(self.issued(&session, &secret))
                    }
                    (LoginOutcome::AddressLimited, _) => Err(rate_limited(response.retry_after)),
                    // R-L4: a password grant's refusals say nothing the password did not.
                    (outcome, _) => Err(refused(outcome, None)),
                }
            }
            "refresh_token" => {
                let Some(rt) = form.get("refresh_token") else {
                    return Err(OAuthError::invalid_request(
                        "the refresh_token grant needs refresh_token",
                    ));
                };
                let outcome = s.oauth_refresh(&client, rt, grant).await?;
                self.grant_outcome(outcome, &secret)
            }
            _ => {
                let outcome = s.oauth_client_credentials(&client, grant).await?;
                self.grant_outcome(outcome, &secret)
            }
        }
    }

    /// Authenticates the client; a refusal counts against the source address, is a
    /// login-history row and Salesforce's error.
    async fn client(
        &self,
        client_id: &str,
        secret: &str,
        grant: &GrantRequest<'_>,
    ) -> Result<OAuthClient, OAuthError> {
        let s = &self.app.services;
        let refusal = match s.authenticate_client(client_id, secret).await? {
            Ok(c) => return Ok(c),
            Err(refusal) => refusal,
        };
        if let RefusalRecorded::AddressLimited(until) =
            s.record_client_refusal(&refusal, client_id, grant).await?
        {
            return Err(rate_limited(Some(until - s.now())));
        }
        Err(match refusal {
            ClientRefusal::UnknownClient => {
                OAuthError::new("invalid_client_id", "client identifier invalid")
            }
            ClientRefusal::BadSecret { .. } => {
                OAuthError::new("invalid_client", "invalid client credentials")
            }
            ClientRefusal::Disabled { .. } => {
                OAuthError::new("invalid_client", "this client is disabled")
            }
        })
    }

    fn grant_outcome(&self, outcome: GrantOutcome, secret: &str) -> Result<Response, OAuthError> {
        match outcome {
            GrantOutcome::Issued(session) => Ok(self.issued(&session, secret)),
            GrantOutcome::Refused(outcome, status) => Err(refused(outcome, Some(status))),
            GrantOutcome::InvalidRefreshToken => Err(OAuthError::new(
                "invalid_grant",
                "expired access/refresh token",
            )),
            GrantOutcome::NoRunAsUser => Err(OAuthError::new(
                "invalid_grant",
                "no client credentials user enabled",
            )),
        }
    }

    /// The token answer of docs/wire.md §2.1.
    fn issued(&self, session: &LoginSession, client_secret: &str) -> Response {
        let id = identity::identity_url(self.base, &session.org.id, &session.user.id);
        let issued_at = session.issued_at.to_string();
        let mut body = json!({
            "access_token": session.id.expose(),
            "signature": signature(client_secret, &id, &issued_at),
            "scope": "api",
            "instance_url": self.base,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
        });
        if let Some(rt) = &session.refresh_token {
            body["refresh_token"] = json!(rt.expose());
            body["scope"] = json!("refresh_token api");
        }
        Json(body).into_response()
    }
}

/// The per-address failed-login limit's refusal: 429, as RFC 6585 says; the OAuth error stays
/// a grant refusal.
fn rate_limited(retry_after: Option<time::Duration>) -> OAuthError {
    OAuthError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: Some("LOGIN_RATE_EXCEEDED"),
        retry_after,
        ..OAuthError::new(
            "invalid_grant",
            "login rate exceeded: too many failed logins from this address",
        )
    }
}

/// Base64 HMAC-SHA256 over `id + issued_at`, keyed by the consumer secret (docs/wire.md §2.1).
fn signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Refused logins, in Salesforce's OAuth words. `authentication failure` covers every
/// credential failure (R-L4); keyward adds `error_code` where SOAP would say more, so a script
/// can tell a missing security token from a wrong password without reading login history.
/// `status` is given only for grants that prove no password (`refresh_token`,
/// `client_credentials`): the client authenticated itself, so it may learn that its user is
/// inactive or outside the login IP ranges; a password grant never says so (R-L4).
fn refused(outcome: LoginOutcome, status: Option<LoginStatus>) -> OAuthError {
    match (outcome, status) {
        (LoginOutcome::MustUseSecurityToken, _) => OAuthError {
            code: Some("LOGIN_MUST_USE_SECURITY_TOKEN"),
            ..OAuthError::authentication_failure()
        },
        (LoginOutcome::PasswordExpired, _) => OAuthError::new("invalid_grant", "password expired"),
        (LoginOutcome::ApiDisabled, _) => OAuthError {
            code: Some("API_CURRENTLY_DISABLED"),
            ..OAuthError::new("invalid_grant", "API is disabled for this User")
        },
        // Grants without a password: the client authenticated, so it may know why.
        (_, Some(LoginStatus::UserInactive)) => OAuthError::new("invalid_grant", "inactive user"),
        (_, Some(LoginStatus::RestrictedIp)) => OAuthError::new("invalid_grant", "ip restricted"),
        _ => OAuthError::authentication_failure(),
    }
}

async fn revoke(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_form(&app, &headers, body).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let from_query = query
        .as_deref()
        .and_then(|q| parse_pairs(q.as_bytes()).ok());
    let token = form
        .get("token")
        .map(str::to_string)
        .or_else(|| from_query.and_then(|q| q.get("token").map(str::to_string)));
    do_revoke(&app, token.as_deref()).await
}

/// `GET /services/oauth2/revoke?token=…`, as Salesforce also accepts.
async fn revoke_get(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let form = match parse_pairs(query.unwrap_or_default().as_bytes()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    do_revoke(&app, form.get("token")).await
}

async fn do_revoke(app: &AppState, token: Option<&str>) -> Response {
    let Some(token) = token else {
        return OAuthError::new("unsupported_token_type", "token is required").into_response();
    };
    match app.services.revoke_token(token).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => OAuthError::new("invalid_token", "invalid token").into_response(),
        Err(e) => OAuthError::from(e).into_response(),
    }
}

/// RFC 7662. The caller authenticates as an OAuth client of the token's org; any other token
/// is `{"active": false}`.
async fn introspect(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: Result<Value, OAuthError> = async {
        let form = read_form(&app, &headers, body).await?;
        let (client_id, secret) = client_credentials(&headers, &form)?;
        let s = &app.services;
        // A wrong client secret counts against the address, and a refused address is told so.
        // (No check before a right secret: introspection is a resource server's hot path, and
        // a 381-bit secret is not guessed; the token endpoint's grants do check first.)
        let client = match s.authenticate_client(&client_id, &secret).await? {
            Ok(c) => c,
            Err(refusal) => {
                if let Some(until) = s.count_introspection_refusal(&refusal, ip).await? {
                    return Err(rate_limited(Some(until - s.now())));
                }
                return Err(OAuthError {
                    status: StatusCode::UNAUTHORIZED,
                    ..OAuthError::new("invalid_client", "invalid client credentials")
                });
            }
        };
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok(match s.introspect(&client, token).await? {
            Introspection::Inactive => json!({"active": false}),
            Introspection::Access(a, issued_to) => json!({
                "active": true,
                "scope": "api",
                "client_id": issued_to.map(|c| c.client_id),
                "username": a.user().username,
                "sub": identity::identity_url(&base, a.org_id(), a.user_id()),
                "token_type": "access_token",
                "exp": a.expires_at() / 1000,
                "iat": a.created_at() / 1000,
                "nbf": a.created_at() / 1000,
            }),
            Introspection::Refresh {
                user,
                client,
                issued_at,
            } => json!({
                "active": true,
                "scope": "refresh_token api",
                "client_id": client.client_id,
                "username": user.username,
                "sub": identity::identity_url(&base, &user.org_id, &user.id),
                "token_type": "refresh_token",
                "iat": issued_at / 1000,
                "nbf": issued_at / 1000,
            }),
        })
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// OpenID Connect UserInfo for the token's own user.
async fn userinfo(
    State(app): State<AppState>,
    BaseUrl(base): BaseUrl,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(token) = bearer(&headers, query.as_deref()) else {
        return identity::bad_token();
    };
    let session = match app.services.check_api_session(&token).await {
        Ok(Some(s)) => s,
        Ok(None) => return identity::bad_token(),
        Err(e) => return OAuthError::from(e).into_response(),
    };
    if session.password_expired() {
        return identity::bad_token();
    }
    let (org, user) = (session.org(), session.user());
    Json(json!({
        "sub": identity::identity_url(&base, &org.id, &user.id),
        "user_id": id18(&user.id),
        "organization_id": id18(&org.id),
        "preferred_username": user.username,
        "nickname": identity::nickname(&user.username),
        "name": user.full_name(),
        "email": user.email,
        "email_verified": true,
        "given_name": user.first_name,
        "family_name": user.last_name,
        "zoneinfo": "GMT",
        "urls": identity::urls(&base, &org.id, &user.id, None),
        "active": user.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": crate::service::fmt_api_ms(user.updated_at),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256_of_id_and_issued_at() {
        // Computed independently: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'secret', b'https://x/id/a/b1278448832702',
        // hashlib.sha256).digest()).decode())"
        assert_eq!(
            signature("secret", "https://x/id/a/b", "1278448832702"),
            "9GciExsh5IScUoxhDKPU07Y43ZT+OTqa9Eqky5auPcY="
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parse_pairs(b"a=1&b=2").is_ok());
        let e = parse_pairs(b"grant_type=password&grant_type=client_credentials").unwrap_err();
        assert_eq!(e.error, "invalid_request");
        assert!(e.description.contains("grant_type"));
    }

    #[test]
    fn basic_client_credentials_are_form_unescaped() {
        let mut h = HeaderMap::new();
        let creds = BASE64.encode("my%20id:s%3Acret");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {creds}").parse().unwrap(),
        );
        let form = parse_pairs(b"").unwrap();
        assert_eq!(
            client_credentials(&h, &form).unwrap(),
            ("my id".to_string(), "s:cret".to_string())
        );
        let both = parse_pairs(b"client_id=x").unwrap();
        assert!(client_credentials(&h, &both).is_err());
    }
}
