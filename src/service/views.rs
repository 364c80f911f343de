//! What the service layer hands the CLI, the web pages and the APIs: the fields a caller may
//! see. Storage rows stay behind it, so no interface can print a password hash or a digest.

use super::id18;
use crate::clock::rfc3339;
use crate::domain::policy::{Complexity, OrgPolicy};
use crate::domain::profile::Permissions;
use crate::store::audit::AuditRow;
use crate::store::login_history::LoginHistoryView;
use crate::store::oauth::OAuthClientRow;
use crate::store::orgs::OrgRow;
use crate::store::outbox::OutboxRow;
use crate::store::profiles::ProfileRow;
use crate::store::ranges::IpRangeRow;
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;
use crate::store::verification::VerifiedBrowserRow;
use serde::Serialize;

/// Instants are epoch milliseconds, ids 15 characters, as stored; each interface formats them.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub profile_id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
    /// A password is set (its hash never leaves the service layer).
    pub has_password: bool,
    pub password_changed_at: Option<i64>,
    /// When the current security token was issued (the token itself is only mailed).
    pub token_issued_at: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }

    /// How pages name the user: the full name, or the username when there is none.
    pub fn display_name(&self) -> String {
        let n = self.full_name();
        if n.is_empty() {
            self.username.clone()
        } else {
            n
        }
    }

    /// Locked out after too many failed logins (R-L5), at `now_ms`.
    pub fn locked_at(&self, now_ms: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now_ms)
    }
}

impl From<&UserRow> for User {
    fn from(u: &UserRow) -> User {
        User {
            id: u.id.clone(),
            org_id: u.org_id.clone(),
            profile_id: u.profile_id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            active: u.active,
            has_password: u.password_hash.is_some(),
            password_changed_at: u.password_changed_at,
            token_issued_at: u.token_issued_at,
            failed_logins: u.failed_logins,
            locked_until: u.locked_until,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> User {
        User::from(&u)
    }
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    pub name: String,
    /// The delegated-authentication endpoint (R-L7), if the org has one.
    pub delegated_auth_url: Option<String>,
    pub policy: OrgPolicy,
    pub created_at: i64,
}

impl From<&OrgRow> for Org {
    fn from(o: &OrgRow) -> Org {
        Org {
            id: o.id.clone(),
            name: o.name.clone(),
            delegated_auth_url: o.delegated_auth_url.clone(),
            policy: policy_of(o),
            created_at: o.created_at,
        }
    }
}

impl From<OrgRow> for Org {
    fn from(o: OrgRow) -> Org {
        Org::from(&o)
    }
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub permissions: Permissions,
    pub created_at: i64,
}

impl From<ProfileRow> for Profile {
    fn from(p: ProfileRow) -> Profile {
        Profile {
            permissions: permissions_of(&p),
            id: p.id,
            org_id: p.org_id,
            name: p.name,
            created_at: p.created_at,
        }
    }
}

/// A trusted IP range of the org (`profile_id` None) or a login IP range of a profile.
#[derive(Debug, Clone)]
pub struct IpRange {
    pub id: String,
    pub org_id: String,
    pub profile_id: Option<String>,
    pub start_ip: String,
    pub end_ip: String,
    pub description: String,
    pub created_at: i64,
}

impl From<IpRangeRow> for IpRange {
    fn from(r: IpRangeRow) -> IpRange {
        IpRange {
            id: r.id,
            org_id: r.org_id,
            profile_id: r.profile_id,
            start_ip: r.start_ip,
            end_ip: r.end_ip,
            description: r.description,
            created_at: r.created_at,
        }
    }
}

/// An OAuth client (connected app); its secret is shown once, when made, and never again.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The row id (`0H4…`).
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// The consumer key clients send as `client_id`.
    pub client_id: String,
    pub issue_refresh_tokens: bool,
    /// The user `client_credentials` acts as.
    pub run_as_user_id: Option<String>,
    pub created_at: i64,
    pub enabled: bool,
}

impl From<&OAuthClientRow> for OAuthClient {
    fn from(c: &OAuthClientRow) -> OAuthClient {
        OAuthClient {
            id: c.id.clone(),
            org_id: c.org_id.clone(),
            name: c.name.clone(),
            client_id: c.client_id.clone(),
            issue_refresh_tokens: c.issue_refresh_tokens,
            run_as_user_id: c.run_as_user_id.clone(),
            created_at: c.created_at,
            enabled: c.enabled,
        }
    }
}

impl From<OAuthClientRow> for OAuthClient {
    fn from(c: OAuthClientRow) -> OAuthClient {
        OAuthClient::from(&c)
    }
}

/// One open session of a user, named by a handle that cannot be used to log in.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id's digest: `DELETE …/sessions/{handle}` and the web forms name it.
    pub handle: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub login_type: String,
    pub source_ip: String,
    pub oauth_client_id: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(s: SessionRow) -> Session {
        Session {
            handle: s.digest,
            user_id: s.user_id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            login_type: s.login_type,
            source_ip: s.source_ip,
            oauth_client_id: s.oauth_client_id,
        }
    }
}

/// A browser that passed identity verification for a user (R-U1).
#[derive(Debug, Clone)]
pub struct VerifiedBrowser {
    /// The browser id's digest, which names it in the form that forgets it.
    pub handle: String,
    pub source_ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

impl From<VerifiedBrowserRow> for VerifiedBrowser {
    fn from(b: VerifiedBrowserRow) -> VerifiedBrowser {
        VerifiedBrowser {
            handle: b.digest,
            source_ip: b.source_ip,
            user_agent: b.user_agent,
            created_at: b.created_at,
            last_used_at: b.last_used_at,
        }
    }
}

/// An audit-trail entry (Setup → View Setup Audit Trail).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub org_id: String,
    pub created_at: i64,
    pub actor: String,
    pub action: String,
    pub section: String,
    pub display: String,
    pub target_id: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(a: AuditRow) -> AuditEntry {
        AuditEntry {
            id: a.id,
            org_id: a.org_id,
            created_at: a.created_at,
            actor: a.actor,
            action: a.action,
            section: a.section,
            display: a.display,
            target_id: a.target_id,
        }
    }
}

/// A mail as the outbox holds it: a token or code in it is redacted (R-T2).
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: String,
    pub org_id: Option<String>,
    pub created_at: i64,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    /// `queued`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

impl From<OutboxRow> for Mail {
    fn from(m: OutboxRow) -> Mail {
        Mail {
            id: m.id,
            org_id: m.org_id,
            created_at: m.created_at,
            kind: m.kind,
            to_addr: m.to_addr,
            subject: m.subject,
            body: m.body,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            sent_at: m.sent_at,
        }
    }
}

/// One login attempt (R-L9), as every interface shows it: the API's JSON, `keyward
/// login-history` and Setup's CSV export have these columns, in this order.
#[derive(Debug, Clone, Serialize)]
// ToSchema: the admin API documents this very type, so its JSON and its schema cannot drift.
#[derive(utoipa::ToSchema)]
pub struct LoginAttempt {
    /// 18 characters.
    pub id: String,
    /// RFC 3339.
    pub login_time: String,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub source_ip: String,
    pub login_type: String,
    pub status: String,
    pub client: String,
    pub api_version: String,
    pub login_url: String,
    /// Which credential the attempt used: `Password`, `Password + security token`,
    /// `Password + previous security token (grace)`, `Integration token: NAME` (with
    /// ` (predecessor in grace)` for a rotated one), `Refresh token`, `Client credentials`; empty
    /// when none was identified.
    pub credential: String,
    /// Epoch milliseconds, for the pages that format the time their own way.
    #[serde(skip)]
    pub login_at: i64,
}

/// The columns of a login-history listing, as [`LoginAttempt`] serialises.
pub const LOGIN_ATTEMPT_COLUMNS: [&str; 12] = [
    "id",
    "login_time",
    "username",
    "user_id",
    "org_id",
    "source_ip",
    "login_type",
    "status",
    "client",
    "api_version",
    "login_url",
    "credential",
];

impl From<LoginHistoryView> for LoginAttempt {
    fn from(r: LoginHistoryView) -> LoginAttempt {
        LoginAttempt {
            id: id18(&r.id),
            login_time: rfc3339(r.login_at),
            username: r.username,
            user_id: r.user_id.as_deref().map(id18),
            org_id: r.org_id.as_deref().map(id18),
            source_ip: r.source_ip,
            login_type: r.login_type,
            status: r.status,
            client: r.client,
            api_version: r.api_version,
            login_url: r.login_url,
            credential: r.credential,
            login_at: r.login_at,
        }
    }
}

/// The org's password policy and session settings, from its row.
pub(crate) fn policy_of(org: &OrgRow) -> OrgPolicy {
    let u = |v: i64| u32::try_from(v).unwrap_or(0);
    OrgPolicy {
        min_password_length: u(org.min_password_length),
        complexity: Complexity::parse(&org.complexity).unwrap_or(Complexity::AlphaNumeric),
        password_history: u(org.password_history),
        password_expiry_days: u(org.password_expiry_days),
        lockout_attempts: u(org.lockout_attempts),
        lockout_minutes: u(org.lockout_minutes),
        session_seconds: u(org.session_seconds),
        session_max_seconds: u(org.session_max_seconds),
        integration_max_days: u(org.integration_max_days),
        integration_grace_hours: u(org.integration_grace_hours),
        integration_reminder_days: crate::domain::integration::ReminderDays::parse(
            &org.integration_reminder_days,
        )
        .unwrap_or_default(),
        token_grace_hours: u(org.token_grace_hours),
    }
}

/// A profile's permissions, from its row.
pub(crate) fn permissions_of(p: &ProfileRow) -> Permissions {
    Permissions {
        api_enabled: p.api_enabled,
        api_only: p.api_only,
        password_never_expires: p.password_never_expires,
        sso_enabled: p.sso_enabled,
        manage_users: p.manage_users,
    }
}

/// Rows as their views.
pub(crate) fn all<R, V: From<R>>(rows: Vec<R>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}
