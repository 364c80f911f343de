//! SOAP at `/services/Soap/u/{version}[/{orgId}]` (partner) and `/services/Soap/c/…` (enterprise):
//! `login`, `logout`, `getUserInfo`, `setPassword`, `changeOwnPassword`. The handler reads the body
//! (limited, gzip accepted), parses the envelope, calls the service, and renders the answer or a
//! fault; every rule lives in `service` and `domain`.

pub mod envelope;
pub mod render;

use super::AppState;
use super::extract::{LoginCall, read_body, user_agent};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::domain::login::{Channel, LoginOutcome};
use crate::domain::secret::Password;
use crate::domain::token::SuppliedSecret;
use crate::service::ServiceError;
use crate::service::login::LoginRequest;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use envelope::{Api, Operation};
use render::{Fault, UserInfo};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/Soap/{api}/{version}", post(soap))
        .route("/services/Soap/{api}/{version}/{org_id}", post(soap))
}

/// `NN.N`: the API versions Salesforce has used, and any later one.
fn valid_version(v: &str) -> bool {
    matches!(v.split_once('.'), Some((major, minor))
        if (1..=3).contains(&major.len())
            && minor.len() == 1
            && major.bytes().chain(minor.bytes()).all(|b| b.is_ascii_digit()))
}

async fn soap(
    State(app): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    call: LoginCall,
) -> Response {
    let LoginCall {
        ip,
        base,
        login_url,
        headers,
        body,
    } = call;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let api = match param("api") {
        "u" => Api::Partner,
        "c" => Api::Enterprise,
        _ => return (StatusCode::NOT_FOUND, "Not found\n").into_response(),
    };
    let version = param("version");
    if !valid_version(version) {
        return Fault::unexpected(
            api,
            "UNSUPPORTED_API_VERSION",
            "Invalid Api version specified on URL",
        )
        .into_response();
    }
    let bytes = match read_body(body, &headers, app.http.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return Fault::client(api, &e.to_string())
                .with_status(e.status())
                .into_response();
        }
    };
    let request = match envelope::parse(&bytes, api) {
        Ok(r) => r,
        Err(e) => return Fault::client(api, &e.to_string()).into_response(),
    };
    let ctx = Ctx {
        app: &app,
        api,
        version,
    };
    let result = match request.operation {
        Operation::Login { username, password } => {
            // CallOptions, else Data Loader's `Sforce-Call-Options: client=…`, else the
            // User-Agent.
            let client = request
                .call_client
                .clone()
                .or_else(|| call_options_header(&headers))
                .unwrap_or_else(|| user_agent(&headers).to_string());
            let mut req = LoginRequest::new(
                username,
                SuppliedSecret::split(&Password::new(password.map(|p| p.0).unwrap_or_default())),
                match api {
                    Api::Partner => Channel::SoapPartner,
                    Api::Enterprise => Channel::SoapEnterprise,
                },
                ip,
            );
            req.client = client;
            req.api_version = version.to_string();
            req.login_url = login_url;
            req.org_scope = request.org_scope.clone();
            ctx.login(req, &base).await
        }
        op => match request.session_id.as_deref() {
            None => Err(Fault::unexpected(
                api,
                "INVALID_SESSION_ID",
                "Invalid Session ID found in SessionHeader: no SessionHeader in the request",
            )),
            Some(sid) => ctx.with_session(op, sid).await,
        },
    };
    match result {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

struct Ctx<'a> {
    app: &'a AppState,
    api: Api,
    version: &'a str,
}

impl Ctx<'_> {
    async fn login(&self, req: LoginRequest, base: &str) -> Result<Response, Fault> {
        let response = self
            .app
            .services
            .login_detached(req)
            .await
            .map_err(|e| Fault::service(self.api, &e))?;
        let api = self.api;
        match (response.outcome, response.session) {
            (LoginOutcome::Success { .. }, Some(s)) => {
                Ok(render::login(api, base, self.version, &s))
            }
            (LoginOutcome::MustUseSecurityToken, _) => Err(Fault::login(
                api,
                "LOGIN_MUST_USE_SECURITY_TOKEN",
                render::MUST_USE_SECURITY_TOKEN,
            )),
            (LoginOutcome::ApiDisabled, _) => Err(Fault::login(
                api,
                "API_CURRENTLY_DISABLED",
                render::API_DISABLED,
            )),
            (LoginOutcome::AddressLimited, _) => Ok(crate::http::with_retry_after(
                Fault::login(api, "LOGIN_RATE_EXCEEDED", render::LOGIN_RATE_EXCEEDED)
                    .into_response(),
                response.retry_after,
            )),
            _ => Err(Fault::login(api, "INVALID_LOGIN", render::INVALID_LOGIN)),
        }
    }

    async fn with_session(&self, op: Operation, sid: &str) -> Result<Response, Fault> {
        let s = &self.app.services;
        let api = self.api;
        if op == Operation::Logout {
            // Logging out an expired-password session is allowed, and a second logout is not
            // an error worth a fault: the session is gone either way.
            s.logout_api(sid)
                .await
                .map_err(|e| Fault::service(self.api, &e))?;
            return Ok(render::empty(api, "logoutResponse", false));
        }
        let session = s
            .check_api_session(sid)
            .await
            .map_err(|e| Fault::service(self.api, &e))?
            .ok_or_else(|| Fault::invalid_session(api))?;
        // R-L6: an expired password's session may only replace the password (setPassword then
        // explains that one's own password takes changeOwnPassword).
        let password_call = matches!(
            op,
            Operation::SetPassword { .. } | Operation::ChangeOwnPassword { .. }
        );
        if session.password_expired() && !password_call {
            return Err(Fault::unexpected(
                api,
                "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
                render::EXPIRED_PASSWORD,
            ));
        }
        match op {
            Operation::GetUserInfo => {
                let org = session.org();
                let seconds = i64::from(org.policy.session_seconds);
                let info = UserInfo::of(org, session.user(), seconds);
                Ok(render::get_user_info(api, &info))
            }
            Operation::SetPassword { user_id, password } => {
                SfId::parse_as(user_id.trim(), KeyPrefix::User).map_err(|e| {
                    Fault::unexpected(api, "INVALID_ID_FIELD", &format!("userId: {e}"))
                })?;
                s.set_password_with_session(&session, &user_id, &Password::new(password.0))
                    .await
                    .map_err(|e| self.set_password_fault(&e))?;
                Ok(render::empty(api, "setPasswordResponse", true))
            }
            Operation::ChangeOwnPassword {
                old_password,
                new_password,
            } => {
                let actor = s
                    .actor_for(&session)
                    .await
                    .map_err(|e| Fault::service(self.api, &e))?;
                s.change_own_password(
                    &actor,
                    &Password::new(old_password.0),
                    &Password::new(new_password.0),
                    Some(session.handle()),
                )
                .await
                .map_err(|e| match e {
                    // The current password was not proved: wrong, missing, or the user is
                    // locked (a wrong one counts as a failed login, R-L5).
                    ServiceError::Refused(m) => Fault::invalid_old_password(api, &m),
                    other => self.set_password_fault(&other),
                })?;
                Ok(render::empty(api, "changeOwnPasswordResponse", true))
            }
            Operation::Login { .. } | Operation::Logout => Err(Fault::invalid_session(api)),
        }
    }

    fn set_password_fault(&self, e: &ServiceError) -> Fault {
        match e {
            ServiceError::Invalid(m) | ServiceError::Conflict(m) => {
                Fault::invalid_new_password(self.api, m)
            }
            ServiceError::NotFound(_) => {
                Fault::unexpected(self.api, "INVALID_ID_FIELD", "invalid user id")
            }
            ServiceError::Refused(m) => Fault::unexpected(self.api, "INSUFFICIENT_ACCESS", m),
            other => Fault::service(self.api, other),
        }
    }
}

/// `Sforce-Call-Options: client=DataLoaderPartnerUI/67.0.0, defaultNamespace=…`.
fn call_options_header(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("sforce-call-options")?.to_str().ok()?;
    v.split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("client"))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        for ok in ["36.0", "59.0", "64.0", "1.0", "100.5"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in [
            "", "59", "59.", "59.00", "v59.0", "5x.0", "1000.0", "59.0.1",
        ] {
            assert!(!valid_version(bad), "{bad}");
        }
    }

    #[test]
    fn data_loader_call_options_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "sforce-call-options",
            "client=DataLoaderPartnerUI/67.0.0, defaultNamespace=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            call_options_header(&h).as_deref(),
            Some("DataLoaderPartnerUI/67.0.0")
        );
    }
}
