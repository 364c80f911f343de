//! The steps every way of logging in shares — loading what the decision needs about a user,
//! counting a failure, creating a session, recording the attempt — so that the password login,
//! the OAuth grants, identity verification and user administration use them without depending
//! on each other.

use super::network::parse_ranges;
use super::outbox::enqueue;
use super::sessions::{RefreshToken, SessionId};
use super::tokens::recipient;
use super::views::permissions_of;
use super::views::policy_of;
use super::views::{Org, User};
use super::{Result, ServiceError, fmt_time, new_id};
use crate::clock::{from_ms, ms};
use crate::domain::ids::KeyPrefix;
use crate::domain::login::{self, Channel, LOCKED_FOREVER, Lockout, LoginStatus, LoginSubject};
use crate::mail;
use crate::store::login_history::{self, LoginHistoryRow};
use crate::store::orgs::{self, OrgRow};
use crate::store::sessions::{self, RefreshTokenRow, SessionRow};
use crate::store::users::{self, FailureRecorded, UserRow};
use crate::store::{Conn, profiles, ranges};
use std::net::IpAddr;
use time::Duration;

/// The OAuth client a session is issued to.
#[derive(Debug, Clone)]
pub struct OAuthIssue {
    /// The client's row id (`0H4…`).
    pub id: String,
    /// Issue a refresh token with the access token.
    pub refresh_tokens: bool,
}

pub struct LoginSession {
    pub id: SessionId,
    pub org: Org,
    pub user: User,
    pub seconds_valid: u32,
    pub password_expired: bool,
    pub refresh_token: Option<RefreshToken>,
    /// When the session was created (epoch milliseconds).
    pub issued_at: i64,
}

/// Everything the decision needs about a known user.
pub(crate) struct Known {
    pub org: OrgRow,
    pub user: UserRow,
    pub permissions: crate::domain::profile::Permissions,
    pub login_ranges: Vec<crate::domain::ip::IpRange>,
    pub trusted_ranges: Vec<crate::domain::ip::IpRange>,
    /// The browser logging in was verified for this user (R-U1).
    pub browser_verified: bool,
}

/// What the decision needs about this user: org, profile permissions and IP ranges.
pub(crate) async fn load_user(c: &mut Conn<'_>, user: UserRow) -> Result<Known> {
    let org = orgs::get(c, &user.org_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
    let profile = profiles::get(c, &user.org_id, &user.profile_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("user without profile".into()))?;
    with_ranges(c, user, org, &profile).await
}

/// The user, org and profile with the org's trusted ranges and the profile's login ranges
/// (read in one statement).
async fn with_ranges(
    c: &mut Conn<'_>,
    user: UserRow,
    org: OrgRow,
    profile: &crate::store::profiles::ProfileRow,
) -> Result<Known> {
    let ranges = ranges::list_for_login(c, &org.id, &profile.id).await?;
    Ok(known_from(user, org, profile, ranges))
}

/// What the decision needs, from the rows: `ranges` holds the org's trusted ranges
/// (`profile_id` None) and the profile's login ranges.
pub(super) fn known_from(
    user: UserRow,
    org: OrgRow,
    profile: &crate::store::profiles::ProfileRow,
    ranges: Vec<crate::store::ranges::IpRangeRow>,
) -> Known {
    let (trusted, login): (Vec<_>, Vec<_>) =
        ranges.into_iter().partition(|r| r.profile_id.is_none());
    Known {
        permissions: permissions_of(profile),
        org,
        user,
        login_ranges: parse_ranges(&login),
        trusted_ranges: parse_ranges(&trusted),
        browser_verified: false,
    }
}

pub(crate) fn subject_of<'a>(k: &'a Known, user: &UserRow) -> LoginSubject<'a> {
    LoginSubject {
        active: user.active,
        has_password: user.password_hash.is_some(),
        lockout: lockout_of(user),
        password_changed_at: user.password_changed_at.map(from_ms),
        permissions: k.permissions,
        login_ranges: &k.login_ranges,
    }
}

/// A session created in a transaction, before the rows it belongs to are handed over.
pub(crate) struct Issued {
    id: SessionId,
    seconds_valid: u32,
    password_expired: bool,
    refresh_token: Option<RefreshToken>,
    issued_at: i64,
}

impl Issued {
    pub(crate) fn into_session(self, org: OrgRow, user: UserRow) -> LoginSession {
        LoginSession {
            id: self.id,
            org: org.into(),
            user: user.into(),
            seconds_valid: self.seconds_valid,
            password_expired: self.password_expired,
            refresh_token: self.refresh_token,
            issued_at: self.issued_at,
        }
    }
}

/// Counts one credential failure against the user (R-L5) — a wrong password, or a wrong
/// identity-verification code — and, when it engages the lock, mails the user. In the caller's
/// transaction, on the user's locked row.
pub(crate) async fn count_failure(
    c: &mut Conn<'_>,
    now: time::OffsetDateTime,
    org: &OrgRow,
    user: &UserRow,
) -> Result<FailureRecorded> {
    let policy = policy_of(org);
    let lock_until = login::lock_until(&policy, now);
    let now_ms = ms(now);
    let recorded = users::record_failure(
        c,
        &org.id,
        &user.id,
        i64::from(policy.lockout_attempts),
        ms(lock_until),
        now_ms,
    )
    .await?;
    if recorded == FailureRecorded::LockEngaged {
        tracing::warn!(user_id = %user.id, "user locked out after repeated login failures");
        let until = (lock_until != LOCKED_FOREVER).then(|| fmt_time(lock_until));
        let email = mail::account_locked(
            &recipient(user),
            &fmt_time(now),
            policy.lockout_attempts,
            until.as_deref(),
        );
        enqueue(c, now_ms, Some(&org.id), email).await?;
    }
    Ok(recorded)
}

/// What a session is issued through besides its channel: the OAuth client (which may issue a
/// refresh token with it) and the integration token the login used (whose revocation ends both).
#[derive(Default, Clone, Copy)]
pub(crate) struct Via<'a> {
    pub oauth: Option<&'a OAuthIssue>,
    pub integration_token_id: Option<&'a str>,
}

/// Creates a session (R-L10) for a user who may log in, with a refresh token when the OAuth
/// client is configured to issue them.
pub(crate) async fn create_session(
    c: &mut Conn<'_>,
    now: time::OffsetDateTime,
    k: &Known,
    channel: Channel,
    source_ip: IpAddr,
    password_expired: bool,
    via: Via<'_>,
) -> Result<Issued> {
    let (oauth, integration_token_id) = (via.oauth, via.integration_token_id.map(str::to_string));
    let now_ms = ms(now);
    let refresh_token = match oauth {
        Some(client) if client.refresh_tokens => {
            let rt = RefreshToken::generate();
            sessions::insert_refresh(
                c,
                &RefreshTokenRow {
                    digest: rt.digest(),
                    org_id: k.org.id.clone(),
                    user_id: k.user.id.clone(),
                    oauth_client_id: client.id.clone(),
                    created_at: now_ms,
                    last_used_at: now_ms,
                    integration_token_id: integration_token_id.clone(),
                },
            )
            .await?;
            Some(rt)
        }
        _ => None,
    };
    let (issued, mut row) = new_session(
        now,
        k,
        channel,
        source_ip,
        password_expired,
        oauth.map(|o| o.id.clone()),
        refresh_token.as_ref().map(RefreshToken::digest),
    );
    row.integration_token_id = integration_token_id;
    sessions::insert(c, &row).await?;
    Ok(Issued {
        refresh_token,
        ..issued
    })
}

/// A new session for this user: what the client is given, and the row that stores its digest
/// (the caller inserts it, in its transaction or in one step with the rest).
pub(crate) fn new_session(
    now: time::OffsetDateTime,
    k: &Known,
    channel: Channel,
    source_ip: IpAddr,
    password_expired: bool,
    oauth_client_id: Option<String>,
    refresh_digest: Option<String>,
) -> (Issued, SessionRow) {
    let now_ms = ms(now);
    let seconds = policy_of(&k.org).session_seconds;
    let id = SessionId::generate(&k.org.id);
    let row = SessionRow {
        digest: id.digest(),
        org_id: k.org.id.clone(),
        user_id: k.user.id.clone(),
        created_at: now_ms,
        last_seen_at: now_ms,
        expires_at: ms(now + Duration::seconds(i64::from(seconds))),
        login_type: channel.login_type().to_string(),
        source_ip: source_ip.to_string(),
        password_expired,
        oauth_client_id,
        refresh_digest,
        integration_token_id: None,
    };
    let issued = Issued {
        id,
        seconds_valid: seconds,
        password_expired,
        refresh_token: None,
        issued_at: now_ms,
    };
    (issued, row)
}

/// What login history records about an attempt besides its user (R-L9).
pub(crate) struct Attempt<'a> {
    pub channel: Channel,
    pub source_ip: IpAddr,
    pub status: LoginStatus,
    pub client: &'a str,
    pub api_version: &'a str,
    pub login_url: &'a str,
    /// Which credential the attempt used ([`credential`] labels), empty when none was.
    pub credential: &'a str,
}

/// The credential labels of login history.
pub(crate) mod credential {
    pub const PASSWORD: &str = "Password";
    pub const PASSWORD_TOKEN: &str = "Password + security token";
    pub const PASSWORD_PREVIOUS_TOKEN: &str = "Password + previous security token (grace)";
    pub const REFRESH_TOKEN: &str = "Refresh token";
    pub const CLIENT_CREDENTIALS: &str = "Client credentials";

    /// `Integration token: NAME`, with ` (predecessor in grace)` for a rotated one.
    pub fn integration(name: &str, in_grace: bool) -> String {
        if in_grace {
            format!("Integration token: {name} (predecessor in grace)")
        } else {
            format!("Integration token: {name}")
        }
    }
}

/// Writes the login-history row of one attempt (R-L9).
pub(crate) async fn record_attempt(
    c: &mut Conn<'_>,
    now_ms: i64,
    user: Option<&UserRow>,
    a: &Attempt<'_>,
) -> Result<()> {
    login_history::insert(c, &history_row(now_ms, user, a)).await?;
    Ok(())
}

/// Writes the login-history row of an attempt that reached no user: in `org_id`'s history
/// when it was made against that org (its OAuth client), else in no org's (R-L9).
pub(crate) async fn record_org_attempt(
    c: &mut Conn<'_>,
    now_ms: i64,
    org_id: Option<&str>,
    a: &Attempt<'_>,
) -> Result<()> {
    let mut row = history_row(now_ms, None, a);
    row.org_id = org_id.map(str::to_string);
    login_history::insert(c, &row).await?;
    Ok(())
}

/// The login-history row of one attempt (R-L9).
pub(super) fn history_row(now_ms: i64, user: Option<&UserRow>, a: &Attempt<'_>) -> LoginHistoryRow {
    LoginHistoryRow {
        id: new_id(KeyPrefix::LoginHistory),
        org_id: user.map(|u| u.org_id.clone()),
        user_id: user.map(|u| u.id.clone()),
        login_at: now_ms,
        source_ip: a.source_ip.to_string(),
        login_type: a.channel.login_type().to_string(),
        status: a.status.as_str().to_string(),
        client: clip(a.client, 255),
        api_version: clip(a.api_version, 16),
        login_url: clip(a.login_url, 1000),
        credential: clip(a.credential, 255),
    }
}

/// Client-supplied text is stored bounded (and without control characters).
fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

pub(crate) fn lockout_of(u: &UserRow) -> Lockout {
    Lockout {
        failed_attempts: u32::try_from(u.failed_logins).unwrap_or(0),
        locked_until: u.locked_until.map(from_ms),
    }
}
