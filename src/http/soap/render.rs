//! SOAP answers, from templates in `templates/soap/`, in the exact shape and element order of
//! docs/wire.md §1.3–1.5: a default namespace and no prefixes on results, no SOAP Header, and
//! faults with the `sf` prefix, HTTP 500 and a typed `detail`.

use super::envelope::Api;
use crate::http::BodyWithRequestId;
use crate::service::ServiceError;
use crate::service::id18;
use crate::service::login::LoginSession;
use crate::service::views::{Org, User};
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// `getUserInfoResult`, also `loginResult.userInfo`.
pub struct UserInfo {
    pub organization_id: String,
    pub organization_name: String,
    pub profile_id: String,
    pub session_seconds_valid: i64,
    pub user_email: String,
    pub user_full_name: String,
    pub user_id: String,
    pub user_name: String,
}

impl UserInfo {
    pub fn of(org: &Org, user: &User, session_seconds_valid: i64) -> UserInfo {
        UserInfo {
            organization_id: id18(&org.id),
            organization_name: org.name.clone(),
            profile_id: id18(&user.profile_id),
            session_seconds_valid,
            user_email: user.email.clone(),
            user_full_name: user.full_name(),
            user_id: id18(&user.id),
            user_name: user.username.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "soap/login.xml")]
struct LoginXml<'a> {
    ns: &'a str,
    metadata_server_url: &'a str,
    password_expired: bool,
    server_url: &'a str,
    session_id: &'a str,
    info: &'a UserInfo,
}

#[derive(Template)]
#[template(path = "soap/get_user_info.xml")]
struct GetUserInfoXml<'a> {
    ns: &'a str,
    info: &'a UserInfo,
}

#[derive(Template)]
#[template(path = "soap/empty.xml")]
struct EmptyXml<'a> {
    ns: &'a str,
    element: &'a str,
    with_result: bool,
}

struct Detail {
    kind: &'static str,
    code: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "soap/fault.xml")]
struct FaultXml<'a> {
    fault_ns: &'a str,
    faultcode: &'a str,
    faultstring: &'a str,
    detail: Option<&'a Detail>,
}

fn xml(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(b) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            b,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "SOAP template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `loginResponse` (§1.3). `base` is `scheme://host[:port]`.
pub fn login(api: Api, base: &str, version: &str, s: &LoginSession) -> Response {
    let org15 = &s.org.id;
    let server_url = format!("{base}/services/Soap/{}/{version}/{org15}", api.letter());
    let metadata_server_url = format!("{base}/services/Soap/m/{version}/{org15}");
    let info = UserInfo::of(&s.org, &s.user, i64::from(s.seconds_valid));
    let body = LoginXml {
        ns: api.namespace(),
        metadata_server_url: &metadata_server_url,
        password_expired: s.password_expired,
        server_url: &server_url,
        session_id: s.id.expose(),
        info: &info,
    }
    .render();
    xml(StatusCode::OK, body)
}

pub fn get_user_info(api: Api, info: &UserInfo) -> Response {
    let body = GetUserInfoXml {
        ns: api.namespace(),
        info,
    }
    .render();
    xml(StatusCode::OK, body)
}

/// `logoutResponse` (empty), `setPasswordResponse` and `changeOwnPasswordResponse` (an empty
/// `result`).
pub fn empty(api: Api, element: &str, with_result: bool) -> Response {
    let body = EmptyXml {
        ns: api.namespace(),
        element,
        with_result,
    }
    .render();
    xml(StatusCode::OK, body)
}

/// A SOAP fault (§1.4).
#[derive(Debug)]
pub struct Fault {
    api: Api,
    status: StatusCode,
    faultcode: String,
    faultstring: String,
    detail: Option<(&'static str, &'static str, String)>,
    /// The message quotes the request id: `message(id)`.
    quoting_request_id: Option<fn(&str) -> String>,
}

pub const INVALID_LOGIN: &str = "Invalid username, password, security token; or user locked out.";
pub const MUST_USE_SECURITY_TOKEN: &str = "Invalid username, password, security token; or user \
locked out. Are you at a new location? When accessing Salesforce--either via a desktop client or \
the API--from outside of your company\u{2019}s trusted networks, you must add a security token to \
your password to log in. To get your new security token, log in to Salesforce. From your personal \
settings, enter Reset My Security Token in the Quick Find box, then select Reset My Security Token.";
pub const API_DISABLED: &str = "API is disabled for this User";
/// keyward's per-address failed-login limit (docs/security.md); Salesforce's login-history
/// words for a rate refusal.
pub const LOGIN_RATE_EXCEEDED: &str =
    "Login rate exceeded: too many failed logins from this address; try again later";
pub const INVALID_SESSION: &str = "Invalid Session ID found in SessionHeader: Illegal Session";
/// Salesforce's text names `SetPassword`; keyward's setPassword sets other users' passwords only,
/// so the text names the call that works.
pub const EXPIRED_PASSWORD: &str = "The users password has expired, you must call \
changeOwnPassword before attempting any other API operations";

impl Fault {
    /// A `LoginFault`: `sf:CODE`, `CODE: message`.
    pub fn login(api: Api, code: &'static str, message: &str) -> Fault {
        Fault::typed(api, "LoginFault", code, message)
    }

    /// An `UnexpectedErrorFault` (session, password and access errors).
    pub fn unexpected(api: Api, code: &'static str, message: &str) -> Fault {
        Fault::typed(api, "UnexpectedErrorFault", code, message)
    }

    /// `changeOwnPassword`'s refusal of the current password (the WSDL's
    /// `InvalidOldPasswordFault`).
    pub fn invalid_old_password(api: Api, message: &str) -> Fault {
        Fault::typed(
            api,
            "InvalidOldPasswordFault",
            "INVALID_OLD_PASSWORD",
            message,
        )
    }

    /// A new password the policy refuses (the WSDL's `InvalidNewPasswordFault`).
    pub fn invalid_new_password(api: Api, message: &str) -> Fault {
        Fault::typed(
            api,
            "InvalidNewPasswordFault",
            "INVALID_NEW_PASSWORD",
            message,
        )
    }

    fn typed(api: Api, kind: &'static str, code: &'static str, message: &str) -> Fault {
        Fault {
            api,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            faultcode: format!("sf:{code}"),
            faultstring: format!("{code}: {message}"),
            detail: Some((kind, code, message.to_string())),
            quoting_request_id: None,
        }
    }

    /// A request the server cannot read: `soapenv:Client`, as Salesforce answers malformed XML.
    pub fn client(api: Api, message: &str) -> Fault {
        Fault {
            api,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            faultcode: "soapenv:Client".into(),
            faultstring: message.to_string(),
            detail: None,
            quoting_request_id: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Fault {
        self.status = status;
        self
    }

    /// The server's own trouble, which a service error is unless the caller maps it to a fault
    /// of its own: logged (in the request's span, which names the request id), and answered with
    /// the request id to quote. The one conversion of a service error to a fault; it takes the
    /// endpoint's API because the fault's namespace depends on it.
    pub fn service(api: Api, e: &ServiceError) -> Fault {
        let (code, message): (&'static str, fn(&str) -> String) = match e {
            ServiceError::Unavailable(_) => {
                tracing::warn!(error = %e, "SOAP request: temporarily unavailable");
                ("SERVER_UNAVAILABLE", |id| {
                    format!(
                        "The server is temporarily unavailable; try again shortly (request id {id})"
                    )
                })
            }
            _ => {
                tracing::error!(error = %e, "SOAP request failed");
                ("UNKNOWN_EXCEPTION", |id| {
                    format!(
                        "An unexpected error occurred. Please include this ErrorId if you contact \
                         support: {id}"
                    )
                })
            }
        };
        let status = match e {
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Fault {
            quoting_request_id: Some(message),
            ..Fault::unexpected(api, code, &message("-")).with_status(status)
        }
    }

    pub fn invalid_session(api: Api) -> Fault {
        Fault::unexpected(api, "INVALID_SESSION_ID", INVALID_SESSION)
    }
}

impl Fault {
    fn xml(&self) -> Result<String, askama::Error> {
        let detail = self.detail.as_ref().map(|(kind, code, message)| Detail {
            kind,
            code,
            message: message.clone(),
        });
        FaultXml {
            fault_ns: self.api.fault_namespace(),
            faultcode: &self.faultcode,
            faultstring: &self.faultstring,
            detail: detail.as_ref(),
        }
        .render()
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let response = xml(self.status, self.xml());
        match self.quoting_request_id {
            None => response,
            Some(message) => BodyWithRequestId::attach(response, move |id| {
                let (kind, code) = self
                    .detail
                    .as_ref()
                    .map_or(("UnexpectedErrorFault", "UNKNOWN_EXCEPTION"), |d| {
                        (d.0, d.1)
                    });
                Fault::typed(self.api, kind, code, &message(id))
                    .xml()
                    .unwrap_or_default()
            }),
        }
    }
}
