//! Identity verification for browser logins (R-U1, R-U2): the challenge a login from an
//! unverified browser outside the trusted ranges gets, the second step that answers it, the
//! browsers a user has verified, and TOTP enrolment with recovery codes.
//!
//! A browser holds two random cookies: its browser id (long-lived; verified per user) and, while
//! a challenge is pending, the challenge id. The store keeps digests of both. The emailed code
//! is stored as a digest keyed by the challenge id, so the database alone does not give it away
//! even to someone who tries all million codes.

use super::attempt::{
    Attempt, Known, LoginSession, count_failure, create_session, load_user, record_attempt,
    subject_of,
};
use super::outbox::enqueue;
use super::tokens::recipient;
use super::views::policy_of;
use super::views::{VerifiedBrowser, all};
use super::{Actor, Result, ServiceError, Services, audit, fmt_time, resolve};
use crate::clock::ms;
use crate::crypto::{ct_eq, digest, random_base62};
use crate::domain::login::{self, Channel, LoginContext, LoginOutcome, LoginStatus};
use crate::domain::secret::Password;
use crate::domain::verification::{self as rules, MAX_ATTEMPTS, Method};
use crate::mail;
use crate::store::users::FailureRecorded;
use crate::store::verification::{self as store, ChallengeRow, TotpRow, VerifiedBrowserRow};
use crate::store::{Conn, users};
use std::net::IpAddr;

const COOKIE_RANDOM_LEN: usize = 32;

fn parse_random(value: &str) -> Option<String> {
    (value.len() == COOKIE_RANDOM_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| value.to_string())
}

/// The browser cookie (R-U1): random, meaningless on its own; verified per user.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserId(String);

impl BrowserId {
    pub fn generate() -> BrowserId {
        BrowserId(random_base62(COOKIE_RANDOM_LEN))
    }

    pub fn parse(value: &str) -> Option<BrowserId> {
        parse_random(value).map(BrowserId)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Bound to the user: the same cookie proves nothing for anyone else.
    pub fn digest_for(&self, user_id: &str) -> String {
        digest(&format!("browser:{user_id}:{}", self.0))
    }
}

impl std::fmt::Debug for BrowserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The pending-challenge cookie. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeId(String);

impl ChallengeId {
    fn generate() -> ChallengeId {
        ChallengeId(random_base62(COOKIE_RANDOM_LEN))
    }

    pub fn parse(value: &str) -> Option<ChallengeId> {
        parse_random(value).map(ChallengeId)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> String {
        digest(&format!("challenge:{}", self.0))
    }

    fn code_digest(&self, code: &str) -> String {
        digest(&format!("code:{}:{code}", self.0))
    }
}

impl std::fmt::Debug for ChallengeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A challenge just issued by a login.
#[derive(Debug)]
pub struct ChallengeIssued {
    pub id: ChallengeId,
    pub method: Method,
}

/// Issues the challenge of a login that needs verification, replacing the user's earlier ones:
/// a TOTP challenge when the user has a confirmed authenticator (R-U2), else a code emailed with
/// subject `Verify your identity` (R-U1). In the login's transaction.
pub(crate) async fn issue_challenge(
    c: &mut Conn<'_>,
    now: time::OffsetDateTime,
    k: &Known,
    source_ip: IpAddr,
) -> Result<ChallengeIssued> {
    let now_ms = ms(now);
    store::delete_challenges_of(c, &k.org.id, &k.user.id).await?;
    let totp = store::get_totp(c, &k.org.id, &k.user.id)
        .await?
        .is_some_and(|t| t.confirmed);
    let id = ChallengeId::generate();
    let method = if totp { Method::Totp } else { Method::Email };
    let code = (method == Method::Email).then(|| rules::email_code(&mut rand::rngs::OsRng));
    store::insert_challenge(
        c,
        &ChallengeRow {
            digest: id.digest(),
            org_id: k.org.id.clone(),
            user_id: k.user.id.clone(),
            method: method.as_str().into(),
            code_digest: code.as_deref().map(|code| id.code_digest(code)),
            attempts: 0,
            source_ip: source_ip.to_string(),
            created_at: now_ms,
            expires_at: ms(now + rules::CODE_VALIDITY),
        },
    )
    .await?;
    if let Some(code) = code {
        let email = mail::verify_identity(
            &recipient(&k.user),
            &code,
            &source_ip.to_string(),
            &fmt_time(now),
        );
        enqueue(c, now_ms, Some(&k.org.id), email).await?;
    }
    Ok(ChallengeIssued { id, method })
}

/// The second step of a browser login.
pub struct VerifyRequest {
    pub challenge: ChallengeId,
    pub code: String,
    pub source_ip: IpAddr,
    pub user_agent: String,
    pub login_url: String,
}

pub enum VerifyOutcome {
    /// Logged in; the browser (with this id) is verified for the user from now on.
    Verified {
        session: Box<LoginSession>,
        browser: BrowserId,
    },
    /// Wrong code; the challenge takes `attempts_left` more.
    WrongCode { attempts_left: i64 },
    /// Unknown, expired, used up, or from another address: log in again.
    Expired,
    /// The code was right but the user may no longer log in (deactivated, locked, …).
    Refused(LoginStatus),
    /// The source address is over its failed-login limit: nothing was checked. Try again after
    /// this long.
    AddressLimited { retry_after: time::Duration },
}

/// What the verification page shows about a pending challenge.
pub struct ChallengeInfo {
    pub method: Method,
    /// The address the code went to, masked: `a***@example.com`.
    pub masked_email: String,
}

pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// TOTP enrolment in progress: what the user scans or types into the authenticator.
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

#[derive(Debug, Clone)]
pub struct TotpStatus {
    pub enrolled: bool,
    pub recovery_codes_left: i64,
}

impl Services {
    pub async fn challenge_info(&self, challenge: &ChallengeId) -> Result<Option<ChallengeInfo>> {
        let mut c = self.db.conn().await?;
        let Some(ch) =
            store::get_challenge(&mut c.as_conn(), &challenge.digest(), self.now_ms()).await?
        else {
            return Ok(None);
        };
        let Some(user) = users::get(&mut c.as_conn(), &ch.org_id, &ch.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(ChallengeInfo {
            method: Method::parse(&ch.method),
            masked_email: mask_email(&user.email),
        }))
    }

    /// Answers a challenge (R-U1, R-U2). Every answer that reaches a user writes a login-history
    /// row: `Success` when verified, `Failed: Verification code invalid` for a wrong code or an
    /// answer from another address. A wrong code counts as a failed login (R-L5): a new login
    /// gives a new challenge, but not a new budget of guesses, so the lockout bounds them.
    /// [`Services::verify_identity`] on its own task, as [`Services::login_detached`]: an
    /// answer that reached the server is counted — history, lockout, address — even when the
    /// client stops waiting.
    pub async fn verify_identity_detached(
        self: &std::sync::Arc<Self>,
        req: VerifyRequest,
    ) -> Result<VerifyOutcome> {
        let services = self.clone();
        tokio::spawn(async move { services.verify_identity(req).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("verification task failed: {e}")))?
    }

    pub async fn verify_identity(&self, req: VerifyRequest) -> Result<VerifyOutcome> {
        let _admitted = match self.admit_address(req.source_ip).await? {
            super::throttle::Admission::Admitted(a) => a,
            super::throttle::Admission::Refused(until) => {
                self.metrics
                    .count_login(Channel::Ui, LoginStatus::LoginRateExceeded);
                return Ok(VerifyOutcome::AddressLimited {
                    retry_after: until - self.now(),
                });
            }
        };
        let now = self.now();
        let now_ms = ms(now);
        let mut tx = self.db.begin().await?;
        let ch_digest = req.challenge.digest();
        // The user's row first, then the challenge's: the order a login takes them in.
        let Some(peek) = store::get_challenge(&mut tx.as_conn(), &ch_digest, now_ms).await? else {
            return Ok(VerifyOutcome::Expired);
        };
        let Some(user) =
            users::get_for_update(&mut tx.as_conn(), &peek.org_id, &peek.user_id).await?
        else {
            return Ok(VerifyOutcome::Expired);
        };
        let Some(ch) =
            store::get_challenge_for_update(&mut tx.as_conn(), &ch_digest, now_ms).await?
        else {
            return Ok(VerifyOutcome::Expired);
        };
        let attempt = |status| Attempt {
            channel: Channel::Ui,
            source_ip: req.source_ip,
            status,
            client: &req.user_agent,
            api_version: "",
            login_url: &req.login_url,
            credential: super::attempt::credential::PASSWORD,
        };
        let known = load_user(&mut tx.as_conn(), user).await?;
        let policy = policy_of(&known.org);
        let ctx = LoginContext {
            channel: Channel::Ui,
            source_ip: req.source_ip,
            now,
            trusted_ranges: &known.trusted_ranges,
            policy: &policy,
            device_verified: true,
        };
        // When the user may no longer log in at all (deactivated, locked — by these very
        // guesses —, outside the login ranges now), no code is checked: the answer is the
        // refusal, whatever was typed.
        let decision = login::decide_verified(Some(&subject_of(&known, &known.user)), &ctx);
        let refused = decision.outcome == LoginOutcome::InvalidLogin;
        let elsewhere = ch.source_ip != req.source_ip.to_string();
        // A refusal skips the code check: it goes straight to the answer below.
        let right = refused
            || (!elsewhere
                && ch.attempts < MAX_ATTEMPTS
                && match Method::parse(&ch.method) {
                    Method::Email => {
                        match (rules::normalise_code(&req.code), ch.code_digest.as_deref()) {
                            (Some(code), Some(want)) => {
                                ct_eq(&req.challenge.code_digest(&code), want)
                            }
                            _ => false,
                        }
                    }
                    Method::Totp => {
                        check_totp(&mut tx.as_conn(), now, &known.user, &req.code).await?
                    }
                });
        if !right {
            let attempts_left = if elsewhere {
                0
            } else {
                MAX_ATTEMPTS - ch.attempts - 1
            };
            if attempts_left <= 0 {
                store::delete_challenge(&mut tx.as_conn(), &ch_digest).await?;
            } else {
                store::count_challenge_attempt(&mut tx.as_conn(), &ch_digest).await?;
            }
            let recorded = count_failure(&mut tx.as_conn(), now, &known.org, &known.user).await?;
            record_attempt(
                &mut tx.as_conn(),
                now_ms,
                Some(&known.user),
                &attempt(LoginStatus::VerificationFailed),
            )
            .await?;
            self.count_address_failure(&mut tx.as_conn(), req.source_ip)
                .await?;
            tx.commit().await?;
            if recorded == FailureRecorded::LockEngaged {
                self.outbox.wake();
            }
            self.metrics
                .count_login(Channel::Ui, LoginStatus::VerificationFailed);
            return Ok(if attempts_left <= 0 {
                VerifyOutcome::Expired
            } else {
                VerifyOutcome::WrongCode { attempts_left }
            });
        }
        store::delete_challenge(&mut tx.as_conn(), &ch_digest).await?;
        record_attempt(
            &mut tx.as_conn(),
            now_ms,
            Some(&known.user),
            &attempt(decision.status),
        )
        .await?;
        self.metrics.count_login(Channel::Ui, decision.status);
        let LoginOutcome::Success { password_expired } = decision.outcome else {
            tx.commit().await?;
            return Ok(VerifyOutcome::Refused(decision.status));
        };
        users::record_success(&mut tx.as_conn(), &known.org.id, &known.user.id, now_ms).await?;
        let issued = create_session(
            &mut tx.as_conn(),
            now,
            &known,
            Channel::Ui,
            req.source_ip,
            password_expired,
            super::attempt::Via::default(),
        )
        .await?;
        // Always a new browser id: a value planted in the browser beforehand (a cookie set by a
        // sibling site) must not become verified.
        let browser = BrowserId::generate();
        store::insert_browser(
            &mut tx.as_conn(),
            &VerifiedBrowserRow {
                digest: browser.digest_for(&known.user.id),
                org_id: known.org.id.clone(),
                user_id: known.user.id.clone(),
                source_ip: req.source_ip.to_string(),
                user_agent: req.user_agent.chars().take(255).collect(),
                created_at: now_ms,
                last_used_at: now_ms,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(VerifyOutcome::Verified {
            session: Box::new(issued.into_session(known.org, known.user)),
            browser,
        })
    }

    pub async fn verified_browsers(&self, actor: &Actor) -> Result<Vec<VerifiedBrowser>> {
        let (org_id, user_id) = actor.own()?;
        let mut c = self.db.conn().await?;
        Ok(all(
            store::list_browsers(&mut c.as_conn(), org_id, user_id).await?
        ))
    }

    /// Forgets every browser the user verified: the next login from each is challenged again.
    pub async fn forget_browsers(&self, actor: &Actor) -> Result<u64> {
        let (org_id, user_id) = actor.own()?;
        let mut c = self.db.conn().await?;
        Ok(store::delete_browsers(&mut c.as_conn(), org_id, user_id).await?)
    }

    pub async fn totp_status(&self, actor: &Actor, user_input: &str) -> Result<TotpStatus> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let enrolled = store::get_totp(&mut c.as_conn(), &user.org_id, &user.id)
            .await?
            .is_some_and(|t| t.confirmed);
        Ok(TotpStatus {
            enrolled,
            recovery_codes_left: store::count_recovery_codes(
                &mut c.as_conn(),
                &user.org_id,
                &user.id,
            )
            .await?,
        })
    }

    /// Starts TOTP enrolment (R-U2): a new secret, not yet used for logins until the user
    /// confirms it with a first code. Refused while an authenticator is enrolled. The password
    /// confirms it is the user: a session thief must not enrol their own authenticator — so the
    /// enrolment belongs to `session` (the digest of the session that proved it), and only that
    /// session sees its secret and confirms it.
    pub async fn start_totp(
        &self,
        actor: &Actor,
        issuer: &str,
        password: Option<&Password>,
        session: &str,
    ) -> Result<TotpEnrolment> {
        let (org_id, user_id) = actor.own()?;
        {
            let mut c = self.db.conn().await?;
            let user = resolve::user_seen(&mut c.as_conn(), actor, user_id).await?;
            let org = resolve::org(&mut c.as_conn(), org_id).await?;
            drop(c);
            self.confirm_own_password(&org, &user, password).await?;
        }
        let mut tx = self.db.begin().await?;
        // Locked, so a confirmation running meanwhile sees either the old secret or the new.
        let user = users::get_for_update(&mut tx.as_conn(), org_id, user_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("no such user".into()))?;
        if store::get_totp(&mut tx.as_conn(), org_id, user_id)
            .await?
            .is_some_and(|t| t.confirmed)
        {
            return Err(ServiceError::Conflict(
                "an authenticator is already enrolled: remove it first".into(),
            ));
        }
        let secret = rules::base32(&rules::totp_secret(&mut rand::rngs::OsRng));
        store::put_totp(
            &mut tx.as_conn(),
            &TotpRow {
                org_id: org_id.into(),
                user_id: user_id.into(),
                secret: secret.clone(),
                confirmed: false,
                last_step: 0,
                created_at: self.now_ms(),
                started_by: Some(session.to_string()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(TotpEnrolment {
            otpauth_uri: rules::otpauth_uri(issuer, &user.username, &secret),
            secret_base32: secret,
        })
    }

    /// The secret of an enrolment in progress started by `session` (the page shows it again
    /// after a wrong code); another session of the user sees none.
    pub async fn pending_totp(
        &self,
        actor: &Actor,
        issuer: &str,
        session: &str,
    ) -> Result<Option<TotpEnrolment>> {
        let (org_id, user_id) = actor.own()?;
        let mut c = self.db.conn().await?;
        let Some(user) = users::get(&mut c.as_conn(), org_id, user_id).await? else {
            return Ok(None);
        };
        Ok(store::get_totp(&mut c.as_conn(), org_id, user_id)
            .await?
            .filter(|t| !t.confirmed && t.started_by.as_deref() == Some(session))
            .map(|t| TotpEnrolment {
                otpauth_uri: rules::otpauth_uri(issuer, &user.username, &t.secret),
                secret_base32: t.secret,
            }))
    }

    /// Confirms the enrolment `session` started with the authenticator's current code; returns
    /// the recovery codes, shown once (only their digests are kept).
    pub async fn confirm_totp(
        &self,
        actor: &Actor,
        code: &str,
        session: &str,
    ) -> Result<Vec<String>> {
        let (org_id, user_id) = actor.own()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let user = users::get_for_update(&mut tx.as_conn(), org_id, user_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("no such user".into()))?;
        let Some(factor) = store::get_totp(&mut tx.as_conn(), org_id, user_id)
            .await?
            .filter(|t| !t.confirmed && t.started_by.as_deref() == Some(session))
        else {
            return Err(ServiceError::Conflict(
                "no enrolment in progress in this session: start again".into(),
            ));
        };
        let secret = rules::from_base32(&factor.secret)
            .ok_or_else(|| ServiceError::Internal("stored TOTP secret unreadable".into()))?;
        let Some(step) = rules::verify_totp(&secret, code, now, factor.last_step) else {
            return Err(ServiceError::Invalid(
                "that code is not the authenticator's current code; check the device's clock and \
                 try the next code"
                    .into(),
            ));
        };
        store::use_totp_step(&mut tx.as_conn(), org_id, user_id, step).await?;
        let codes: Vec<String> = (0..rules::RECOVERY_CODES)
            .map(|_| rules::recovery_code(&mut rand::rngs::OsRng))
            .collect();
        let digests: Vec<String> = codes.iter().map(|c| recovery_digest(user_id, c)).collect();
        store::replace_recovery_codes(&mut tx.as_conn(), org_id, user_id, &digests, ms(now))
            .await?;
        audit::user_event(
            &mut tx.as_conn(),
            ms(now),
            actor,
            &user,
            "totp.enrolled",
            format!("Enrolled an authenticator app for {}", user.username),
        )
        .await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Removes the user's authenticator and recovery codes. The user proves it is them with the
    /// password; an admin of the org may do it for a user who lost the device (audited).
    pub async fn remove_totp(
        &self,
        actor: &Actor,
        user_input: &str,
        password: Option<&Password>,
    ) -> Result<bool> {
        let user = {
            let mut c = self.db.conn().await?;
            resolve::user_seen(&mut c.as_conn(), actor, user_input).await?
        };
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let own = actor.is_user(&user.id);
        if own {
            let org = resolve::org(&mut self.db.conn().await?.as_conn(), &user.org_id).await?;
            self.confirm_own_password(&org, &user, password).await?;
        }
        let mut tx = self.db.begin().await?;
        let removed = store::delete_totp(&mut tx.as_conn(), &user.org_id, &user.id).await?;
        if removed {
            audit::user_event(
                &mut tx.as_conn(),
                self.now_ms(),
                actor,
                &user,
                "totp.removed",
                if own {
                    format!("Removed own authenticator app ({})", user.username)
                } else {
                    format!("Removed the authenticator app of user {}", user.username)
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

fn recovery_digest(user_id: &str, code: &str) -> String {
    digest(&format!("recovery:{user_id}:{code}"))
}

/// A TOTP challenge's answer: the authenticator's code (each step once) or a recovery code
/// (each once).
async fn check_totp(
    c: &mut Conn<'_>,
    now: time::OffsetDateTime,
    user: &crate::store::users::UserRow,
    code: &str,
) -> Result<bool> {
    let Some(factor) = store::get_totp(c, &user.org_id, &user.id)
        .await?
        .filter(|t| t.confirmed)
    else {
        return Ok(false);
    };
    if let Some(secret) = rules::from_base32(&factor.secret)
        && let Some(step) = rules::verify_totp(&secret, code, now, factor.last_step)
    {
        return Ok(store::use_totp_step(c, &user.org_id, &user.id, step).await?);
    }
    match rules::normalise_recovery_code(code) {
        Some(rc) => Ok(store::use_recovery_code(
            c,
            &user.org_id,
            &user.id,
            &recovery_digest(&user.id, &rc),
        )
        .await?),
        None => Ok(false),
    }
}
