//! Sessions (R-L10) after login: checking one on every API call, logout and OAuth revocation.
//!
//! A session id is `<15-character org id>!<32 base62 characters>` (190 random bits); an OAuth
//! access token is a session id, as in Salesforce. Only digests are stored. Every check reads
//! the database — the shared state of all nodes — unless this node read it less than
//! `session_cache.ttl_ms` ago (`service::cache`; at most a second): a logout, revocation or
//! deactivation on this node is seen at the next call, on another node within that time. The
//! idle timeout moves forward as a session is used; to keep a check a read, the move is written
//! at most once a minute per session. Every check also applies the org's timeout and absolute
//! lifetime as they are now (`OrgPolicy::session_ends_at`), so lowering either ends the
//! sessions already open; an OAuth refresh token is not bound by the lifetime (each access token
//! it mints is).

use super::views::policy_of;
use super::views::{Org, User};
use super::{Result, Services};
use crate::clock::{from_ms, ms};
use crate::crypto::{digest, random_base62};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::domain::login::Channel;
use crate::store::Conn;
use crate::store::orgs::OrgRow;
use crate::store::sessions::{self, SessionRow};
use std::sync::Arc;

const SESSION_RANDOM_LEN: usize = 32;
/// A refresh token: Salesforce's look (`5Aep861…`) with 80 base62 characters (476 bits).
const REFRESH_PREFIX: &str = "5Aep861";
const REFRESH_RANDOM_LEN: usize = 80;
/// How stale `last_seen_at` may get before a check writes it.
pub const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A session id or OAuth access token (R-L10). Shown once, to the client that logged in;
/// stored only as a digest. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub(crate) fn generate(org_id15: &str) -> SessionId {
        SessionId(format!("{org_id15}!{}", random_base62(SESSION_RANDOM_LEN)))
    }

    /// Accepts only the shape keyward issues, so junk costs no database query.
    pub fn parse(value: &str) -> Option<SessionId> {
        let (org, random) = value.split_once('!')?;
        let shaped = SfId::parse_as(org, KeyPrefix::Org).is_ok_and(|id| id.as_15() == org)
            && random.len() == SESSION_RANDOM_LEN
            && random.bytes().all(|b| b.is_ascii_alphanumeric());
        shaped.then(|| SessionId(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An OAuth refresh token. Shown once; stored only as a digest. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub(crate) fn generate() -> RefreshToken {
        RefreshToken(format!(
            "{REFRESH_PREFIX}{}",
            random_base62(REFRESH_RANDOM_LEN)
        ))
    }

    pub fn parse(value: &str) -> Option<RefreshToken> {
        let random = value.strip_prefix(REFRESH_PREFIX)?;
        (random.len() == REFRESH_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| RefreshToken(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A live session with the user and org it belongs to, as the database held them at most
/// `session_cache.ttl_ms` ago: what a change made on this node does to a session, its user or
/// its org shows at once (`Services::sessions_changed`), but the counters a login attempt
/// updates (`failed_logins`, `locked_until`, `last_login_at`) and the password hash may be that
/// old. Code that decides on those reads the user row itself.
/// The user and org are views, made once when the session is read (the check is on every
/// request). No `Debug`: the session row holds a digest that must not reach a log.
#[derive(Clone)]
pub struct ActiveSession {
    pub(super) session: SessionRow,
    pub(super) user: User,
    pub(super) org: Org,
}

impl ActiveSession {
    /// Names the session where a page or the API lists or ends sessions (its id's digest: it
    /// cannot be used to log in).
    pub fn handle(&self) -> &str {
        &self.session.digest
    }

    /// The password expired (R-L6): the session may do nothing but change it.
    pub fn password_expired(&self) -> bool {
        self.session.password_expired
    }

    /// `Application` for a web session; the API kinds otherwise (`Channel::login_type`).
    pub fn login_type(&self) -> &str {
        &self.session.login_type
    }

    /// When the session began (epoch milliseconds).
    pub fn created_at(&self) -> i64 {
        self.session.created_at
    }

    pub fn user_id(&self) -> &str {
        &self.user.id
    }

    pub fn org_id(&self) -> &str {
        &self.org.id
    }

    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn org(&self) -> &Org {
        &self.org
    }

    /// When the session ends if it is not used again.
    pub fn expires_at(&self) -> i64 {
        self.session.expires_at
    }
}

/// Whether a session is live by the org's timeout and lifetime as they are now — lowering
/// either ends the sessions already open at their next use (the stored expiry was computed
/// with the old values); its expiry is brought in to the earlier end.
pub(crate) fn still_live(org: &OrgRow, session: &mut SessionRow, now: i64) -> bool {
    let ends =
        ms(policy_of(org)
            .session_ends_at(from_ms(session.created_at), from_ms(session.last_seen_at)));
    session.expires_at = session.expires_at.min(ends);
    session.expires_at > now
}

/// The live session with this digest, its user active and in the org the session names.
pub(crate) async fn load_active(
    c: &mut Conn<'_>,
    digest: &str,
    now: i64,
) -> Result<Option<ActiveSession>> {
    // Deactivation deletes the sessions in the same transaction; reading the user with the
    // session keeps that true even for a session row written by a login that raced it.
    let Some(sessions::LiveSession {
        mut session,
        user,
        org,
    }) = sessions::get_live_with_user(c, digest, now).await?
    else {
        return Ok(None);
    };
    if !user.active {
        return Ok(None);
    }
    if !still_live(&org, &mut session, now) {
        return Ok(None);
    }
    Ok(Some(ActiveSession {
        session,
        user: user.into(),
        org: org.into(),
    }))
}

impl Services {
    /// The session behind a session id or access token, or `None` when it is malformed,
    /// unknown, logged out, revoked, expired or its user deactivated.
    pub async fn check_session(&self, id: &str) -> Result<Option<Arc<ActiveSession>>> {
        let Some(id) = SessionId::parse(id) else {
            return Ok(None);
        };
        let digest = id.digest();
        let now = self.now_ms();
        if let Some(hit) = self.session_cache.get(&digest, now)
            && hit.session.expires_at > now
        {
            return Ok(Some(hit));
        }
        let generation = self.session_cache.generation();
        let mut c = self.db.conn().await?;
        let Some(mut active) = load_active(&mut c.as_conn(), &digest, now).await? else {
            return Ok(None);
        };
        if now - active.session.last_seen_at >= TOUCH_INTERVAL_MS {
            let expires = ms(active
                .org
                .policy
                .session_ends_at(from_ms(active.session.created_at), self.now()));
            sessions::touch(&mut c.as_conn(), &digest, now, expires).await?;
            active.session.last_seen_at = now;
            active.session.expires_at = expires;
        }
        let active = Arc::new(active);
        self.session_cache
            .put(&digest, active.clone(), now, generation);
        Ok(Some(active))
    }

    /// A session the API surfaces accept (SOAP calls, the admin API, the identity URL,
    /// UserInfo, introspection): any but a web UI session. A web session lives in an HttpOnly
    /// cookie behind CSRF checks; taken as an API session it would let a user whose profile
    /// has no API access use the API (R-L8), and a stolen cookie act without a browser.
    pub async fn check_api_session(&self, id: &str) -> Result<Option<Arc<ActiveSession>>> {
        Ok(self
            .check_session(id)
            .await?
            .filter(|s| s.session.login_type != Channel::Ui.login_type()))
    }

    /// The web UI's logout: ends the session, whatever its kind.
    pub async fn logout(&self, id: &str) -> Result<bool> {
        self.end_session_by_id(id, sessions::Which::Any).await
    }

    /// SOAP `logout()`, or OAuth revocation of an access token: ends the session — an API
    /// session only, as the API surfaces accept no web session — and the refresh token it was
    /// issued with, if any, with every access token of that refresh token
    /// (`store::sessions::end`). False when it was not live.
    pub async fn logout_api(&self, id: &str) -> Result<bool> {
        let web = Channel::Ui.login_type();
        self.end_session_by_id(id, sessions::Which::NotOfType(web))
            .await
    }

    async fn end_session_by_id(&self, id: &str, which: sessions::Which<'_>) -> Result<bool> {
        let Some(id) = SessionId::parse(id) else {
            return Ok(false);
        };
        let mut tx = self.db.begin().await?;
        let ended = sessions::end(&mut tx.as_conn(), &id.digest(), which).await?;
        self.commit_session_change(tx).await?;
        Ok(ended)
    }

    /// OAuth revocation: an access token ends its session and its refresh token (as `logout`); a
    /// refresh token ends itself and every access token issued with it. False when the token was
    /// not live.
    pub async fn revoke_token(&self, token: &str) -> Result<bool> {
        if SessionId::parse(token).is_some() {
            return self.logout_api(token).await;
        }
        if let Some(rt) = RefreshToken::parse(token) {
            let mut tx = self.db.begin().await?;
            let existed = sessions::delete_refresh(&mut tx.as_conn(), &rt.digest()).await?;
            self.commit_session_change(tx).await?;
            return Ok(existed);
        }
        Ok(false)
    }

    /// Removes expired sessions and identity-verification challenges (housekeeping; a check
    /// never relies on it).
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let mut c = self.db.conn().await?;
        let now = self.now_ms();
        crate::store::verification::delete_expired_challenges(&mut c.as_conn(), now).await?;
        Ok(sessions::delete_expired(&mut c.as_conn(), now).await?)
    }
}

impl Services {
    /// Who acts with this session: its user, an admin of the org when the user's profile has
    /// "manage users" (read now, so a profile change takes effect at the next request).
    pub async fn actor_for(&self, s: &ActiveSession) -> Result<super::Actor> {
        let mut c = self.db.conn().await?;
        let admin =
            crate::store::profiles::get(&mut c.as_conn(), &s.user.org_id, &s.user.profile_id)
                .await?
                .is_some_and(|p| p.manage_users);
        Ok(super::Actor::User {
            org_id: s.user.org_id.clone(),
            user_id: s.user.id.clone(),
            username: s.user.username.clone(),
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_l10_session_ids_have_the_stated_form_and_never_print() {
        let org = SfId::generate(KeyPrefix::Org, &mut rand::thread_rng());
        let id = SessionId::generate(org.as_15());
        let (prefix, random) = id.expose().split_once('!').unwrap();
        assert_eq!(prefix, org.as_15());
        assert_eq!(random.len(), 32);
        assert!(SessionId::parse(id.expose()).is_some());
        assert_eq!(format!("{id:?}"), "***");
        for bad in [
            "",
            "!",
            prefix,
            &format!("{prefix}!short"),
            &format!("{}!{random}", org.to_18()),
            &format!("{prefix}!{}", &random.replace(|_| true, "-")),
            &format!("005000000000001!{random}"),
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad}");
        }
        let rt = RefreshToken::generate();
        assert!(RefreshToken::parse(rt.expose()).is_some());
        assert!(SessionId::parse(rt.expose()).is_none());
        assert_eq!(format!("{rt:?}"), "***");
    }
}
