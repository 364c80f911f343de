//! The one login service: SOAP `login()`, the OAuth password grant and the web UI all call
//! [`Services::login`]. It loads what the store knows, asks the pure decision which credential
//! check to run, runs exactly one check of password-hash cost, applies the decision — lockout
//! counter, session, login history, lockout mail — in one transaction, and says what to answer.

use super::network::{parse_ranges, permissions_of};
use super::orgs::policy_of;
use super::outbox::enqueue;
use super::tokens::recipient;
use super::users::lockout_of;
use super::{Result, ServiceError, Services, fmt_time, new_id};
use crate::crypto::{ct_eq, digest, random_base62, token_digest};
use crate::domain::ids::KeyPrefix;
use crate::domain::login::{
    self, Channel, CheckResults, CredentialCheck, DelegatedCheck, LOCKED_FOREVER, LockoutEffect,
    LoginContext, LoginDecision, LoginOutcome, LoginStatus, LoginSubject, PasswordCheck,
    TokenCheck,
};
use crate::domain::token::SuppliedSecret;
use crate::domain::validate;
use crate::mail;
use crate::store::login_history::{self, LoginHistoryRow};
use crate::store::orgs::{self, OrgRow};
use crate::store::sessions::{self, SessionRow};
use crate::store::users::{self, FailureRecorded, UserRow};
use crate::store::{Conn, from_ms, ms, profiles, ranges};
use std::net::IpAddr;
use time::Duration;

/// One login attempt as an interface received it.
pub struct LoginRequest<'a> {
    pub username: &'a str,
    /// What was sent, split into password and token by the interface (R-L3).
    pub secret: SuppliedSecret,
    pub channel: Channel,
    pub source_ip: IpAddr,
    /// SOAP `CallOptions` client, OAuth client id or User-Agent (R-L9).
    pub client: &'a str,
    pub api_version: &'a str,
    pub login_url: &'a str,
    /// Web UI only: the browser was verified for this user before (R-U1).
    pub device_verified: bool,
}

/// A session id (R-L10): `<15-character org id>!<32 base62 characters>` (190 random bits).
/// Shown once, to the client that logged in; stored only as a digest. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    fn generate(org_id15: &str) -> SessionId {
        SessionId(format!("{org_id15}!{}", random_base62(32)))
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

pub struct LoginSession {
    pub id: SessionId,
    pub org: OrgRow,
    pub user: UserRow,
    pub seconds_valid: u32,
    pub password_expired: bool,
}

pub struct LoginResponse {
    pub outcome: LoginOutcome,
    pub status: LoginStatus,
    /// Present exactly when `outcome` is `Success`.
    pub session: Option<LoginSession>,
}

/// Everything the decision needs about a known user.
struct Known {
    org: OrgRow,
    user: UserRow,
    permissions: crate::domain::profile::Permissions,
    login_ranges: Vec<crate::domain::ip::IpRange>,
    trusted_ranges: Vec<crate::domain::ip::IpRange>,
}

async fn load(c: &mut Conn<'_>, username: &str) -> Result<Option<Known>> {
    let Ok(username) = validate::username(username) else {
        return Ok(None);
    };
    let Some(user) = users::find_by_username(c, &username).await? else {
        return Ok(None);
    };
    let org = orgs::get(c, &user.org_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
    let profile = profiles::get(c, &user.org_id, &user.profile_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("user without profile".into()))?;
    let login_ranges = parse_ranges(&ranges::list(c, &org.id, Some(&profile.id)).await?);
    let trusted_ranges = parse_ranges(&ranges::list(c, &org.id, None).await?);
    Ok(Some(Known {
        permissions: permissions_of(&profile),
        org,
        user,
        login_ranges,
        trusted_ranges,
    }))
}

impl Services {
    pub async fn login(&self, req: LoginRequest<'_>) -> Result<LoginResponse> {
        let known = {
            let mut c = self.db.conn().await?;
            load(&mut c.c(), req.username).await?
        };
        let now = self.now();
        let policy = known
            .as_ref()
            .map(|k| policy_of(&k.org))
            .unwrap_or_default();
        let subject = known.as_ref().map(|k| LoginSubject {
            active: k.user.active,
            has_password: k.user.password_hash.is_some(),
            lockout: lockout_of(&k.user),
            password_changed_at: k.user.password_changed_at.map(from_ms),
            permissions: k.permissions,
            login_ranges: &k.login_ranges,
        });
        let no_ranges = Vec::new();
        let ctx = LoginContext {
            channel: req.channel,
            source_ip: req.source_ip,
            now,
            trusted_ranges: known.as_ref().map_or(&no_ranges, |k| &k.trusted_ranges),
            policy: &policy,
            device_verified: req.device_verified,
        };

        let mut checks = CheckResults {
            password: PasswordCheck::NotChecked,
            token: match &req.secret.token {
                None => TokenCheck::NotSupplied,
                Some(_) => TokenCheck::Invalid,
            },
            delegated: DelegatedCheck::NotAsked,
        };
        match (login::plan(subject.as_ref(), &ctx), &known) {
            (CredentialCheck::VerifyPassword, Some(k)) => {
                if let (Some(token), Some(current)) = (&req.secret.token, &k.user.token_digest) {
                    if ct_eq(&token_digest(token), current) {
                        checks.token = TokenCheck::Valid;
                    }
                }
                let ok = self
                    .hasher
                    .verify(&req.secret.password, k.user.password_hash.as_deref())
                    .await?;
                checks.password = if ok {
                    PasswordCheck::Correct
                } else {
                    PasswordCheck::Wrong
                };
            }
            (CredentialCheck::DelegatedAuth, Some(_)) => {
                // The delegated-authentication call arrives with the HTTP client (SOAP/OAuth
                // issue); until then the endpoint counts as unreachable, which fails closed.
                checks.delegated = DelegatedCheck::Unavailable;
            }
            _ => self.hasher.dummy_verify(&req.secret.password).await?,
        }
        let decision = login::decide(subject.as_ref(), &ctx, &checks);
        let response = self.apply(&req, known, decision).await?;
        tracing::info!(
            login_type = req.channel.login_type(),
            status = response.status.as_str(),
            source_ip = %req.source_ip,
            "login attempt"
        );
        Ok(response)
    }

    /// Writes what the decision says, in one transaction.
    async fn apply(
        &self,
        req: &LoginRequest<'_>,
        known: Option<Known>,
        mut decision: LoginDecision,
    ) -> Result<LoginResponse> {
        let now = self.now();
        let now_ms = ms(now);
        let mut tx = self.db.begin().await?;
        let mut session = None;
        if let Some(k) = &known {
            match decision.lockout {
                LockoutEffect::Unchanged => {}
                LockoutEffect::RecordFailure {
                    max_attempts,
                    lock_until,
                } => {
                    let recorded = users::record_failure(
                        &mut tx.c(),
                        &k.org.id,
                        &k.user.id,
                        i64::from(max_attempts),
                        ms(lock_until),
                        now_ms,
                    )
                    .await?;
                    if recorded == FailureRecorded::AlreadyLocked {
                        // A parallel attempt locked the user first: this one met the lock.
                        decision.status = LoginStatus::PasswordLockout;
                    }
                    if recorded == FailureRecorded::LockEngaged {
                        tracing::warn!(user_id = %k.user.id, "user locked out after repeated login failures");
                        let until = (lock_until != LOCKED_FOREVER).then(|| fmt_time(lock_until));
                        let email = mail::account_locked(
                            &recipient(&k.user),
                            &fmt_time(now),
                            max_attempts,
                            until.as_deref(),
                        );
                        enqueue(&mut tx.c(), now_ms, Some(&k.org.id), email).await?;
                    }
                }
                LockoutEffect::Reset => {
                    // A parallel attempt may have locked the user since the decision was made:
                    // then this success does not count (R-L5).
                    if !users::record_success(&mut tx.c(), &k.org.id, &k.user.id, now_ms).await? {
                        decision.outcome = LoginOutcome::InvalidLogin;
                        decision.status = LoginStatus::PasswordLockout;
                    }
                }
            }
            if let LoginOutcome::Success { password_expired } = decision.outcome {
                let policy = policy_of(&k.org);
                let id = SessionId::generate(&k.org.id);
                let seconds = policy.session_seconds;
                sessions::insert(
                    &mut tx.c(),
                    &SessionRow {
                        digest: id.digest(),
                        org_id: k.org.id.clone(),
                        user_id: k.user.id.clone(),
                        created_at: now_ms,
                        last_seen_at: now_ms,
                        expires_at: ms(now + Duration::seconds(i64::from(seconds))),
                        login_type: req.channel.login_type().to_string(),
                        source_ip: req.source_ip.to_string(),
                        password_expired,
                        oauth_client_id: None,
                    },
                )
                .await?;
                session = Some((id, seconds, password_expired));
            }
        }
        login_history::insert(
            &mut tx.c(),
            &LoginHistoryRow {
                id: new_id(KeyPrefix::LoginHistory),
                org_id: known.as_ref().map(|k| k.org.id.clone()),
                user_id: known.as_ref().map(|k| k.user.id.clone()),
                login_at: now_ms,
                source_ip: req.source_ip.to_string(),
                login_type: req.channel.login_type().to_string(),
                status: decision.status.as_str().to_string(),
                client: clip(req.client, 255),
                api_version: clip(req.api_version, 16),
                login_url: clip(req.login_url, 1000),
            },
        )
        .await?;
        tx.commit().await?;
        if decision.lockout != LockoutEffect::Unchanged {
            self.outbox.wake();
        }
        let session = match (session, known) {
            (Some((id, seconds_valid, password_expired)), Some(k)) => {
                self.upgrade_hash(&k.user, &req.secret).await;
                Some(LoginSession {
                    id,
                    org: k.org,
                    user: k.user,
                    seconds_valid,
                    password_expired,
                })
            }
            _ => None,
        };
        Ok(LoginResponse {
            outcome: decision.outcome,
            status: decision.status,
            session,
        })
    }

    /// SPEC §7: a hash made with older parameters is replaced on the next successful login.
    async fn upgrade_hash(&self, user: &UserRow, secret: &SuppliedSecret) {
        let Some(old) = &user.password_hash else {
            return;
        };
        if !self.hasher.needs_rehash(old) {
            return;
        }
        let result: Result<()> = async {
            let new = self.hasher.hash(&secret.password).await?;
            let mut c = self.db.conn().await?;
            users::rehash_password(&mut c.c(), &user.org_id, &user.id, old, &new).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(user_id = %user.id, error = %e, "could not upgrade a password hash");
        }
    }
}

/// Client-supplied text is stored bounded (and without control characters).
fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
