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
    LoginContext, LoginOutcome, LoginStatus, LoginSubject, PasswordCheck, TokenCheck,
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
    // A name that is not a valid username is still looked up (and not found), so it costs the
    // same query as an unknown valid one (R-L4).
    let username = validate::username(username).unwrap_or_else(|_| {
        username
            .chars()
            .take(100)
            .collect::<String>()
            .to_lowercase()
    });
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

/// The result of the one credential check, made before the transaction against the row as it
/// was then; `apply` re-validates it against the row as it is under the lock.
struct Checked {
    password: PasswordCheck,
    /// The hash the password was verified against.
    verified_hash: Option<String>,
    /// Digest of the token the client sent, if any.
    token_digest: Option<String>,
    delegated: DelegatedCheck,
}

impl Services {
    pub async fn login(&self, req: LoginRequest<'_>) -> Result<LoginResponse> {
        let known = {
            let mut c = self.db.conn().await?;
            load(&mut c.c(), req.username).await?
        };
        let plan = {
            let policy = known
                .as_ref()
                .map(|k| policy_of(&k.org))
                .unwrap_or_default();
            let subject = known.as_ref().map(|k| subject_of(k, &k.user));
            let ctx = context(&req, self.now(), &policy, known.as_ref());
            login::plan(subject.as_ref(), &ctx)
        };
        let mut checked = Checked {
            password: PasswordCheck::NotChecked,
            verified_hash: None,
            token_digest: req.secret.token.as_ref().map(token_digest),
            delegated: DelegatedCheck::NotAsked,
        };
        match (plan, &known) {
            (CredentialCheck::VerifyPassword, Some(k)) => {
                let ok = self
                    .hasher
                    .verify(&req.secret.password, k.user.password_hash.as_deref())
                    .await?;
                checked.password = if ok {
                    PasswordCheck::Correct
                } else {
                    PasswordCheck::Wrong
                };
                checked.verified_hash = k.user.password_hash.clone();
            }
            (CredentialCheck::DelegatedAuth, Some(_)) => {
                // The delegated-authentication call arrives with the HTTP client (SOAP/OAuth
                // issue); until then the endpoint counts as unreachable, which fails closed.
                checked.delegated = DelegatedCheck::Unavailable;
            }
            _ => self.hasher.dummy_verify(&req.secret.password).await?,
        }
        let response = self.apply(&req, known, checked).await?;
        tracing::info!(
            login_type = req.channel.login_type(),
            status = response.status.as_str(),
            source_ip = %req.source_ip,
            "login attempt"
        );
        Ok(response)
    }

    /// Decides and writes, in one transaction, on the user's row as it is now and locked: a
    /// deactivation, lockout, password change or token reset that committed while the hash ran
    /// counts, so no login in flight slips past it (R-L5, R-T5, R-T8). On SQLite the write
    /// transaction excludes other writers; on PostgreSQL the row is locked `FOR UPDATE`.
    async fn apply(
        &self,
        req: &LoginRequest<'_>,
        known: Option<Known>,
        checked: Checked,
    ) -> Result<LoginResponse> {
        let now = self.now();
        let now_ms = ms(now);
        let mut tx = self.db.begin().await?;
        let known = match known {
            Some(mut k) => match users::get_for_update(&mut tx.c(), &k.org.id, &k.user.id).await? {
                Some(fresh) => {
                    k.user = fresh;
                    Some(k)
                }
                None => None,
            },
            None => None,
        };
        let current_token = known.as_ref().and_then(|k| k.user.token_digest.as_ref());
        let checks = CheckResults {
            // A password verified against a hash that has since been replaced proves nothing.
            password: match &known {
                Some(k)
                    if checked.password == PasswordCheck::Correct
                        && k.user.password_hash != checked.verified_hash =>
                {
                    PasswordCheck::Wrong
                }
                _ => checked.password,
            },
            token: match (&checked.token_digest, current_token) {
                (None, _) => TokenCheck::NotSupplied,
                (Some(sent), Some(current)) if ct_eq(sent, current) => TokenCheck::Valid,
                (Some(_), _) => TokenCheck::Invalid,
            },
            delegated: checked.delegated,
        };
        let policy = known
            .as_ref()
            .map(|k| policy_of(&k.org))
            .unwrap_or_default();
        let ctx = context(req, now, &policy, known.as_ref());
        let subject = known.as_ref().map(|k| subject_of(k, &k.user));
        let mut decision = login::decide(subject.as_ref(), &ctx, &checks);
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
                        // Cannot happen under the row lock (the decision saw the lock); kept
                        // so that the statement's own guard and the status always agree.
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
                    // The statement re-checks the lock itself (R-L5); under the row lock it
                    // always succeeds.
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

fn subject_of<'a>(k: &'a Known, user: &UserRow) -> LoginSubject<'a> {
    LoginSubject {
        active: user.active,
        has_password: user.password_hash.is_some(),
        lockout: lockout_of(user),
        password_changed_at: user.password_changed_at.map(from_ms),
        permissions: k.permissions,
        login_ranges: &k.login_ranges,
    }
}

fn context<'a>(
    req: &LoginRequest<'_>,
    now: time::OffsetDateTime,
    policy: &'a crate::domain::policy::OrgPolicy,
    known: Option<&'a Known>,
) -> LoginContext<'a> {
    LoginContext {
        channel: req.channel,
        source_ip: req.source_ip,
        now,
        trusted_ranges: known.map_or(&[], |k| k.trusted_ranges.as_slice()),
        policy,
        device_verified: req.device_verified,
    }
}

/// Client-supplied text is stored bounded (and without control characters).
fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
