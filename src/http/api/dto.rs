//! What the admin API reads and writes. Ids are the 18-character form; instants are RFC 3339
//! in UTC; nothing secret is ever in an answer but a new OAuth client's secret, once.

pub use crate::clock::rfc3339;
use crate::domain::profile::Permissions;
use crate::service::history::HourCount;
use crate::service::id18;
use crate::service::views;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// A field of a merge patch (RFC 7396) that cannot be removed: absent leaves it as it is, a value
/// sets it, and `null` — "remove" in a merge patch — is refused rather than read as "unchanged".
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "null removes nothing here: leave the field out to keep its value",
        )),
    }
}

/// A field of a merge patch that may be removed: absent leaves it, `null` clears it
/// (`Some(None)`), a value sets it.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A field that must be present and may be `null` (serde would read a missing `Option` as
/// `null`; with this, a missing field is an error).
fn nullable_present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// `not_found`, `invalid`, `conflict`, `refused`, `unauthorized`, `not_admin`, …
    pub error: String,
    pub message: String,
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub profile_id: String,
    pub profile: String,
    pub active: bool,
    /// Locked out after too many failed logins (R-L5).
    pub locked: bool,
    pub last_login: Option<String>,
    pub password_changed_at: Option<String>,
    /// When the current security token was issued (the token itself is never shown).
    pub token_issued_at: Option<String>,
    pub created_at: String,
}

impl User {
    pub fn of(u: &views::User, profile: &str, now_ms: i64) -> User {
        User {
            id: id18(&u.id),
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            profile_id: id18(&u.profile_id),
            profile: profile.to_string(),
            active: u.active,
            locked: u.locked_at(now_ms),
            last_login: opt_time(u.last_login_at),
            password_changed_at: opt_time(u.password_changed_at),
            token_issued_at: opt_time(u.token_issued_at),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Profile name or id; `Standard User` when absent.
    pub profile: Option<String>,
    /// The first password; with it the first security token is emailed (R-T7).
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub first_name: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub last_name: Option<Option<String>>,
    /// A notice goes to the old address.
    #[serde(default, deserialize_with = "not_null")]
    pub email: Option<String>,
    /// Profile name or id.
    #[serde(default, deserialize_with = "not_null")]
    pub profile: Option<String>,
    /// Needed only to change your own email.
    pub current_password: Option<String>,
}

/// `PATCH /api/v1/profiles/{id}`: a merge patch of the profile (RFC 7396) — only the
/// permissions it names change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "not_null")]
    pub permissions: Option<PermissionsPatch>,
}

/// Some of a profile's permissions; those left out keep their values.
#[derive(Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct PermissionsPatch {
    #[serde(default, deserialize_with = "not_null")]
    pub api_enabled: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub api_only: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub password_never_expires: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub sso_enabled: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub manage_users: Option<bool>,
}

impl From<PermissionsPatch> for crate::domain::profile::PermissionsChange {
    fn from(p: PermissionsPatch) -> Self {
        crate::domain::profile::PermissionsChange {
            api_enabled: p.api_enabled,
            api_only: p.api_only,
            password_never_expires: p.password_never_expires,
            sso_enabled: p.sso_enabled,
            manage_users: p.manage_users,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// Ends every session of the user and emails a new security token (R-T6, R-L10).
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    /// Names the session for `DELETE …/sessions/{handle}` (a digest: it cannot be used to log in).
    pub handle: String,
    pub login_type: String,
    pub source_ip: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
}

impl From<views::Session> for Session {
    fn from(r: views::Session) -> Session {
        Session {
            handle: r.handle,
            login_type: r.login_type,
            source_ip: r.source_ip,
            created_at: rfc3339(r.created_at),
            last_used_at: rfc3339(r.last_seen_at),
            expires_at: rfc3339(r.expires_at),
        }
    }
}

/// An OAuth refresh token of a user (never the token itself).
#[derive(Serialize, ToSchema)]
pub struct RefreshToken {
    /// Names the token for `DELETE …/refresh-tokens/{handle}` (a digest: it cannot be used to
    /// get access tokens).
    pub handle: String,
    /// The OAuth client it was issued to (`0H4…`).
    pub client_id: String,
    /// The client's name; empty when the client was deleted.
    pub client_name: String,
    pub created_at: String,
    pub last_used_at: String,
}

impl From<crate::service::account::RefreshTokenView> for RefreshToken {
    fn from(r: crate::service::account::RefreshTokenView) -> RefreshToken {
        RefreshToken {
            handle: r.handle,
            client_id: r.client_id,
            client_name: r.client_name,
            created_at: rfc3339(r.created_at),
            last_used_at: rfc3339(r.last_used_at),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct ProfilePermissions {
    #[serde(default)]
    pub api_enabled: bool,
    #[serde(default)]
    pub api_only: bool,
    #[serde(default)]
    pub password_never_expires: bool,
    #[serde(default)]
    pub sso_enabled: bool,
    #[serde(default)]
    pub manage_users: bool,
}

impl From<ProfilePermissions> for Permissions {
    fn from(p: ProfilePermissions) -> Permissions {
        Permissions {
            api_enabled: p.api_enabled,
            api_only: p.api_only,
            password_never_expires: p.password_never_expires,
            sso_enabled: p.sso_enabled,
            manage_users: p.manage_users,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub permissions: ProfilePermissions,
    pub created_at: String,
}

impl From<Permissions> for ProfilePermissions {
    fn from(p: Permissions) -> ProfilePermissions {
        ProfilePermissions {
            api_enabled: p.api_enabled,
            api_only: p.api_only,
            password_never_expires: p.password_never_expires,
            sso_enabled: p.sso_enabled,
            manage_users: p.manage_users,
        }
    }
}

impl From<views::Profile> for Profile {
    fn from(p: views::Profile) -> Profile {
        Profile {
            id: id18(&p.id),
            permissions: p.permissions.into(),
            name: p.name,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    pub name: String,
    #[serde(default)]
    pub permissions: ProfilePermissions,
}

#[derive(Serialize, ToSchema)]
pub struct IpRange {
    pub id: String,
    pub start: String,
    pub end: String,
    pub description: String,
    pub created_at: String,
}

impl From<views::IpRange> for IpRange {
    fn from(r: views::IpRange) -> IpRange {
        IpRange {
            id: id18(&r.id),
            start: r.start_ip,
            end: r.end_ip,
            description: r.description,
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIpRange {
    /// An IPv4 or IPv6 address, or a CIDR (then without `end`).
    pub start: String,
    pub end: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// The org's password policy and session settings.
#[derive(Serialize, ToSchema)]
pub struct Policy {
    pub min_password_length: u32,
    /// `none`, `alpha_numeric`, `alpha_numeric_special`, `upper_lower_numeric`,
    /// `upper_lower_numeric_special`.
    pub complexity: String,
    pub password_history: u32,
    /// 0: passwords never expire.
    pub password_expiry_days: u32,
    /// 0: no lockout.
    pub lockout_attempts: u32,
    /// 0: locked until an admin unlocks.
    pub lockout_minutes: u32,
    /// Idle timeout.
    pub session_seconds: u32,
    /// Absolute lifetime: a session ends this long after it began, however much it is used.
    pub session_max_seconds: u32,
    /// The longest lifetime an integration token may get, in days.
    pub integration_max_days: u32,
    /// How long a rotated integration token keeps working beside its successor.
    pub integration_grace_hours: u32,
    /// Days before expiry that integration-token reminders go out, largest first.
    pub integration_reminder_days: Vec<u32>,
    /// How long a reset security token keeps working beside the new one; 0: not at all.
    pub token_grace_hours: u32,
}

impl From<crate::domain::policy::OrgPolicy> for Policy {
    fn from(p: crate::domain::policy::OrgPolicy) -> Policy {
        Policy {
            min_password_length: p.min_password_length,
            complexity: p.complexity.as_str().to_string(),
            password_history: p.password_history,
            password_expiry_days: p.password_expiry_days,
            lockout_attempts: p.lockout_attempts,
            lockout_minutes: p.lockout_minutes,
            session_seconds: p.session_seconds,
            session_max_seconds: p.session_max_seconds,
            integration_max_days: p.integration_max_days,
            integration_grace_hours: p.integration_grace_hours,
            integration_reminder_days: p.integration_reminder_days.into(),
            token_grace_hours: p.token_grace_hours,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    #[serde(default, deserialize_with = "not_null")]
    pub min_password_length: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub complexity: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub password_history: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub password_expiry_days: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub lockout_attempts: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub lockout_minutes: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub session_seconds: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub session_max_seconds: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub integration_max_days: Option<u32>,
    #[serde(default, deserialize_with = "not_null")]
    pub integration_grace_hours: Option<u32>,
    /// Each 1-365, at most five; `[]`: no reminders.
    #[serde(default, deserialize_with = "not_null")]
    pub integration_reminder_days: Option<Vec<u32>>,
    #[serde(default, deserialize_with = "not_null")]
    pub token_grace_hours: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegatedAuth {
    /// The endpoint single sign-on users' credentials are checked at (R-L7); null: off. Required
    /// in a `PUT`: a body without it is a mistake, not a request to turn SSO off.
    #[serde(deserialize_with = "nullable_present")]
    pub url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub client_id: String,
    pub refresh_tokens: bool,
    pub run_as_user_id: Option<String>,
    pub created_at: String,
    /// A disabled client authenticates nowhere; its refresh tokens wait until it is enabled.
    pub enabled: bool,
}

impl From<views::OAuthClient> for OAuthClient {
    fn from(c: views::OAuthClient) -> OAuthClient {
        OAuthClient {
            id: id18(&c.id),
            name: c.name,
            client_id: c.client_id,
            refresh_tokens: c.issue_refresh_tokens,
            run_as_user_id: c.run_as_user_id.as_deref().map(id18),
            created_at: rfc3339(c.created_at),
            enabled: c.enabled,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedOAuthClient {
    #[serde(flatten)]
    pub client: OAuthClient,
    /// Shown only in this answer: keyward keeps a digest.
    pub client_secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOAuthClient {
    pub name: String,
    #[serde(default)]
    pub refresh_tokens: bool,
    /// Username or id of the user `client_credentials` tokens act as.
    pub run_as: Option<String>,
    /// Your password, needed when `run_as` is you: a session alone mints no credential for its
    /// own account.
    pub current_password: Option<String>,
}

/// `POST /api/v1/oauth-clients/{id}/rotate-secret`'s optional body.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Your password, needed when the client acts as you.
    pub current_password: Option<String>,
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Username or user id.
    pub user: Option<String>,
    /// Exact status text, e.g. `Success`, `Invalid password`.
    pub status: Option<String>,
    /// `Application`, `SOAP Partner`, `SOAP Enterprise` or `Remote Access 2.0`.
    #[serde(alias = "type")]
    pub login_type: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// 1 to 10000 (default 100).
    pub limit: Option<i64>,
}

/// One login attempt: the service's own listing view, which the CLI and Setup's CSV share.
pub use crate::service::views::LoginAttempt;

/// An integration token's record and one (client, address) of a credential's usage: the
/// service's own views, which `keyward integration list` and `… usage` show as columns.
pub use crate::service::integration::{CredentialUse, IntegrationTokenInfo};

/// `POST /api/v1/users/{id}/integration-tokens`: the token itself is emailed to the user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntegrationToken {
    /// What it is for (at most 80 characters), unique among the user's live tokens.
    pub name: String,
    /// Days until it expires, 1 to the org's `integration_max_days` (the default).
    pub expires_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct HourBucket {
    /// The start of the hour.
    pub hour: String,
    pub success: i64,
    pub failure: i64,
}

impl From<HourCount> for HourBucket {
    fn from(h: HourCount) -> HourBucket {
        HourBucket {
            hour: rfc3339(h.hour),
            success: h.success,
            failure: h.failure,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Only users whose username, email or name contains this (case-insensitive).
    pub q: Option<String>,
    /// The next page: users whose username sorts after this one.
    pub after: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// 1 to 10000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub created_at: String,
    pub actor: String,
    pub action: String,
    pub section: String,
    pub display: String,
    pub target_id: Option<String>,
}

impl From<views::AuditEntry> for AuditEntry {
    fn from(r: views::AuditEntry) -> AuditEntry {
        AuditEntry {
            id: id18(&r.id),
            created_at: rfc3339(r.created_at),
            actor: r.actor,
            action: r.action,
            section: r.section,
            display: r.display,
            target_id: r.target_id.as_deref().map(id18),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailParams {
    /// `queued`, `sent` or `dead`.
    pub status: Option<String>,
    /// 1 to 10000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Mail {
    pub id: String,
    pub created_at: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// As stored: a token or code is redacted (R-T2).
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

impl From<views::Mail> for Mail {
    fn from(m: views::Mail) -> Mail {
        Mail {
            id: id18(&m.id),
            created_at: rfc3339(m.created_at),
            kind: m.kind,
            to: m.to_addr,
            subject: m.subject,
            body: m.body,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            sent_at: opt_time(m.sent_at),
        }
    }
}
