//! The one login service: SOAP `login()`, the OAuth password grant and the web UI all call
//! [`Services::login`]. It loads what the store knows, asks the pure decision which credential
//! check to run, runs exactly one check of password-hash cost, applies the decision — lockout
//! counter, session, login history, lockout mail — in one transaction, and says what to answer.
//! A plain API success on a user row nobody changed during the hash is written in one step
//! (`store::logins`); everything else, and a success whose row changed, takes the general path
//! on the row as it is now.

use super::attempt::{
    Attempt, Known, Via, count_failure, create_session, credential, history_row, known_from,
    new_session, record_attempt, subject_of,
};
pub use super::attempt::{LoginSession, OAuthIssue};
use super::views::policy_of;
use super::{Result, ServiceError, Services};
use crate::clock::ms;
use crate::crypto::{ct_eq, token_digest};
use crate::domain::login::{
    self, Channel, CheckResults, CredentialCheck, DelegatedCheck, LockoutEffect, LoginContext,
    LoginOutcome, LoginStatus, PasswordCheck, TokenCheck,
};
use crate::domain::token::SuppliedSecret;
use crate::domain::validate;
use crate::store::users::{self, FailureRecorded, UserRow};
use crate::store::{Db, NO_ID, verification};
use std::net::IpAddr;
use std::sync::Arc;

/// One login attempt as an interface received it.
pub struct LoginRequest {
    pub username: String,
    /// What was sent, split into password and token by the interface (R-L3).
    pub secret: SuppliedSecret,
    pub channel: Channel,
    pub source_ip: IpAddr,
    /// SOAP `CallOptions` client, OAuth client id or User-Agent (R-L9).
    pub client: String,
    pub api_version: String,
    pub login_url: String,
    /// Web UI only: the browser's identity cookie, checked against the browsers this user has
    /// verified (R-U1).
    pub browser: Option<super::verification::BrowserId>,
    /// SOAP `LoginScopeHeader`: the org (15-character id) the user must belong to; a user of
    /// another org is treated as unknown.
    pub org_scope: Option<String>,
    /// OAuth: the authenticated client the session is issued to.
    pub oauth_client: Option<OAuthIssue>,
}

impl LoginRequest {
    /// What login history records about this attempt, once its status is decided.
    pub(super) fn attempt(&self, status: LoginStatus) -> Attempt<'_> {
        Attempt {
            channel: self.channel,
            source_ip: self.source_ip,
            status,
            client: &self.client,
            api_version: &self.api_version,
            login_url: &self.login_url,
            credential: "",
        }
    }

    /// An attempt with no client, version or URL recorded; interfaces fill in what they know.
    pub fn new(
        username: impl Into<String>,
        secret: SuppliedSecret,
        channel: Channel,
        source_ip: IpAddr,
    ) -> LoginRequest {
        LoginRequest {
            username: username.into(),
            secret,
            channel,
            source_ip,
            client: String::new(),
            api_version: String::new(),
            login_url: String::new(),
            browser: None,
            org_scope: None,
            oauth_client: None,
        }
    }
}

pub struct LoginResponse {
    pub outcome: LoginOutcome,
    pub status: LoginStatus,
    /// Present exactly when `outcome` is `Success`.
    pub session: Option<LoginSession>,
    /// Present exactly when `outcome` is `IdentityVerificationRequired` (R-U1).
    pub challenge: Option<super::verification::ChallengeIssued>,
    /// Present exactly when `outcome` is `AddressLimited`: how long until the address may try
    /// again.
    pub retry_after: Option<time::Duration>,
}

/// The username a login looks up: a name that is not a valid username is still looked up (and
/// not found), so it costs the same query as an unknown valid one (R-L4).
fn lookup_name(username: &str) -> String {
    validate::username(username).unwrap_or_else(|_| {
        // Control characters cannot be in a username, and PostgreSQL refuses NUL in text.
        username
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect::<String>()
            .to_lowercase()
    })
}

/// The rest of what the decision needs once the address is admitted, from the user found by
/// [`users::find_for_login`]: for a browser login, whether the browser was verified for the
/// user (a read; an API login reads nothing more). `found` is None for a username that matched
/// no user.
async fn load(
    db: &Db,
    req: &LoginRequest,
    found: Option<users::UserForLogin>,
) -> Result<Option<Known>> {
    // A user of another org than the SOAP `LoginScopeHeader` names is unknown here.
    let org_scope = req.org_scope.as_deref();
    let found = found.filter(|f| org_scope.is_none_or(|o| o == f.user.org_id));
    let mut known = found.map(|f| known_from(f.user, f.org, &f.profile, f.ranges));
    if let (Channel::Ui, Some(browser)) = (req.channel, &req.browser) {
        // With no user, the same statement on the same index, finding nothing: without it an
        // unknown username answered measurably faster than a wrong password (docs/security.md,
        // R-L4).
        let (org_id, user_id) = match &known {
            Some(k) => (k.org.id.as_str(), k.user.id.as_str()),
            None => (NO_ID, NO_ID),
        };
        let mut c = db.conn().await?;
        let verified = verification::browser_verified(
            &mut c.as_conn(),
            org_id,
            user_id,
            &browser.digest_for(user_id),
        )
        .await?;
        if let Some(k) = &mut known {
            k.browser_verified = verified;
        }
    }
    Ok(known)
}

/// Which decoy row a username that matches no user meets: always the same one for the same
/// name, as a user's attempts always meet the user's row.
fn decoy_pick(username: &str) -> u32 {
    let d = crate::crypto::digest(&lookup_name(username));
    u32::from_str_radix(&d[..8], 16).unwrap_or(0)
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
    /// [`Services::login`] on its own task: it runs to completion even when the caller stops
    /// waiting (the client disconnects, the request times out), so every attempt that reached
    /// the server writes its login-history row (R-L9) and counts towards the lockout (R-L5).
    pub async fn login_detached(self: &Arc<Self>, req: LoginRequest) -> Result<LoginResponse> {
        let services = self.clone();
        tokio::spawn(async move { services.login(req).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("login task failed: {e}")))?
    }

    pub async fn login(&self, req: LoginRequest) -> Result<LoginResponse> {
        let started = tokio::time::Instant::now();
        // The address's limit and the user are read in one statement, after the attempt is
        // registered; a refused address goes no further (no hash, no history row).
        let registered = self.register_attempt(req.source_ip);
        // Every password field that starts like an integration token is one (no password may
        // start so): a mistyped token is refused as a wrong token, never counted as a wrong
        // password towards the user's lockout. Its digest is looked up with the user.
        let whole = req.secret.whole().expose();
        let integration = crate::domain::integration::meant_as_integration_token(whole)
            .then(|| crate::crypto::digest(whole));
        let lookup = {
            let mut c = self.db.conn().await?;
            users::find_for_login(
                &mut c.as_conn(),
                &lookup_name(&req.username),
                registered.key(),
                integration.as_deref(),
            )
            .await?
        };
        let _admitted = match self.admission(registered, lookup.address_window).await {
            super::throttle::Admission::Admitted(a) => a,
            super::throttle::Admission::Refused(until) => {
                self.metrics
                    .count_login(req.channel, LoginStatus::LoginRateExceeded);
                return Ok(LoginResponse {
                    outcome: LoginOutcome::AddressLimited,
                    status: LoginStatus::LoginRateExceeded,
                    session: None,
                    challenge: None,
                    retry_after: Some(until - self.now()),
                });
            }
        };
        if let Some(sent) = &integration {
            return self
                .integration_login(&req, lookup.user, lookup.integration_token, sent, started)
                .await;
        }
        let known = load(&self.db, &req, lookup.user).await?;
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
        // Hash work waits in its source address's lane, so a flood from some addresses does
        // not starve the others.
        let lane = crate::domain::throttle::address_key(req.source_ip);
        match (plan, &known) {
            (CredentialCheck::VerifyPassword, Some(k)) => {
                // A right password earns the lane credit only if it lets the login in.
                let credit = {
                    let policy = policy_of(&k.org);
                    let ctx = context(&req, self.now(), &policy, Some(k));
                    let checks = check_results(&checked, Some(k), ms(self.now()));
                    login::right_password_lets_in(Some(&subject_of(k, &k.user)), &ctx, &checks)
                };
                let ok = self
                    .hasher
                    .verify_from(
                        &lane,
                        &req.secret.password,
                        k.user.password_hash.as_deref(),
                        credit,
                    )
                    .await?;
                checked.password = if ok {
                    PasswordCheck::Correct
                } else {
                    PasswordCheck::Wrong
                };
                checked.verified_hash = k.user.password_hash.clone();
            }
            (CredentialCheck::DelegatedAuth, Some(k)) => {
                // R-L7: the whole string the client sent is the password the endpoint checks;
                // SSO users have no token.
                checked.delegated = self
                    .delegated
                    .check(
                        k.org.delegated_auth_url.as_deref(),
                        &k.user.username,
                        req.secret.whole(),
                        req.source_ip,
                    )
                    .await;
            }
            _ => {
                self.hasher
                    .dummy_verify_from(&lane, &req.secret.password)
                    .await?
            }
        }
        let response = self.apply(&req, known, checked).await?;
        self.metrics.count_login(req.channel, response.status);
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
        req: &LoginRequest,
        known: Option<Known>,
        checked: Checked,
    ) -> Result<LoginResponse> {
        if let Some(k) = &known
            && let Some(done) = self.apply_unchanged(req, k, &checked).await?
        {
            return Ok(done);
        }
        let now = self.now();
        let now_ms = ms(now);
        let mut tx = self.db.begin().await?;
        let known = match known {
            Some(mut k) => {
                match users::get_for_update(&mut tx.as_conn(), &k.org.id, &k.user.id).await? {
                    Some(fresh) => {
                        k.user = fresh;
                        Some(k)
                    }
                    None => None,
                }
            }
            None => {
                // The statements a known user's refusal runs — lock the row, count the failure
                // — on a decoy row, so they write as much (R-L4).
                users::decoy_failure(&mut tx.as_conn(), decoy_pick(&req.username), now_ms).await?;
                None
            }
        };
        let checks = check_results(&checked, known.as_ref(), now_ms);
        let policy = known
            .as_ref()
            .map(|k| policy_of(&k.org))
            .unwrap_or_default();
        let ctx = context(req, now, &policy, known.as_ref());
        let subject = known.as_ref().map(|k| subject_of(k, &k.user));
        let mut decision = login::decide(subject.as_ref(), &ctx, &checks);
        let mut session = None;
        let mut challenge = None;
        if let (Some(k), LoginOutcome::IdentityVerificationRequired) = (&known, decision.outcome) {
            challenge = Some(
                super::verification::issue_challenge(&mut tx.as_conn(), now, k, req.source_ip)
                    .await?,
            );
        }
        let mut lock_mailed = false;
        if let Some(k) = &known {
            match decision.lockout {
                // A refusal that changes no counter (a locked, inactive or restricted user)
                // writes the row as a counted failure does, so it costs the same.
                LockoutEffect::Unchanged
                    if !matches!(decision.outcome, LoginOutcome::Success { .. }) =>
                {
                    users::rewrite_unchanged(&mut tx.as_conn(), &k.org.id, &k.user.id).await?;
                }
                LockoutEffect::Unchanged => {}
                LockoutEffect::RecordFailure { .. } => {
                    let recorded = count_failure(&mut tx.as_conn(), now, &k.org, &k.user).await?;
                    lock_mailed = recorded == FailureRecorded::LockEngaged;
                    if recorded == FailureRecorded::AlreadyLocked {
                        // Cannot happen under the row lock (the decision saw the lock); kept
                        // so that the statement's own guard and the status always agree.
                        decision.status = LoginStatus::PasswordLockout;
                    }
                }
                LockoutEffect::Reset => {
                    // The statement re-checks the lock itself (R-L5); under the row lock it
                    // always succeeds.
                    if !users::record_success(&mut tx.as_conn(), &k.org.id, &k.user.id, now_ms)
                        .await?
                    {
                        decision.outcome = LoginOutcome::InvalidLogin;
                        decision.status = LoginStatus::PasswordLockout;
                    }
                }
            }
            if let (LoginOutcome::Success { .. }, Some(browser), true) =
                (decision.outcome, &req.browser, k.browser_verified)
            {
                verification::touch_browser(
                    &mut tx.as_conn(),
                    &browser.digest_for(&k.user.id),
                    &req.source_ip.to_string(),
                    now_ms,
                )
                .await?;
            }
            if let LoginOutcome::Success { password_expired } = decision.outcome {
                session = Some(
                    create_session(
                        &mut tx.as_conn(),
                        now,
                        k,
                        req.channel,
                        req.source_ip,
                        password_expired,
                        Via {
                            oauth: req.oauth_client.as_ref(),
                            ..Via::default()
                        },
                    )
                    .await?,
                );
            }
        }
        let used = token_match(&checked, known.as_ref(), now_ms);
        if let (Some(k), Some(_), LoginOutcome::Success { .. }) =
            (&known, used.usage(), decision.outcome)
        {
            crate::store::integration::record_usage(
                &mut tx.as_conn(),
                &k.org.id,
                &k.user.id,
                crate::store::integration::SECURITY_TOKEN,
                &req.client,
                &req.source_ip.to_string(),
                now_ms,
            )
            .await?;
        }
        let attempt = Attempt {
            credential: if known.is_some() { used.label() } else { "" },
            ..req.attempt(decision.status)
        };
        record_attempt(
            &mut tx.as_conn(),
            now_ms,
            known.as_ref().map(|k| &k.user),
            &attempt,
        )
        .await?;
        if decision.counts_against_address(&checks) {
            self.count_address_failure(&mut tx.as_conn(), req.source_ip)
                .await?;
        }
        tx.commit().await?;
        // Only when mail was queued: waking the worker for every counted failure made a wrong
        // password do work an unknown username did not (R-L4).
        if lock_mailed || challenge.is_some() {
            self.outbox.wake();
        }
        let session = match (session, known) {
            (Some(issued), Some(k)) => {
                // Only a password keyward itself verified may be re-hashed: an SSO user's
                // password belongs to the delegated-authentication service (R-L7).
                if checks.password == PasswordCheck::Correct {
                    self.upgrade_hash(&k.user, &req.secret).await;
                }
                Some(issued.into_session(k.org, k.user))
            }
            _ => None,
        };
        let response = LoginResponse {
            outcome: decision.outcome,
            status: decision.status,
            session,
            challenge,
            retry_after: None,
        };
        Ok(response)
    }

    /// The common case in one step: an API login the decision finds successful on the row it
    /// read before the hash is written with one statement (PostgreSQL) or one batch (SQLite),
    /// on the condition that the row is still as read (`store::logins`). `None` — nothing
    /// written — when the decision is anything but a plain success or the row changed
    /// meanwhile: then [`Self::apply`] decides again on the row as it is now, under its lock.
    /// The web UI (verified browsers, challenges) and refresh tokens take the general path.
    async fn apply_unchanged(
        &self,
        req: &LoginRequest,
        k: &Known,
        checked: &Checked,
    ) -> Result<Option<LoginResponse>> {
        let refresh = req.oauth_client.as_ref().is_some_and(|c| c.refresh_tokens);
        if !req.channel.is_api() || req.browser.is_some() || refresh {
            return Ok(None);
        }
        let now = self.now();
        let checks = check_results(checked, Some(k), ms(now));
        let policy = policy_of(&k.org);
        let ctx = context(req, now, &policy, Some(k));
        let decision = login::decide(Some(&subject_of(k, &k.user)), &ctx, &checks);
        let LoginOutcome::Success { password_expired } = decision.outcome else {
            return Ok(None);
        };
        if decision.lockout != LockoutEffect::Reset {
            return Ok(None);
        }
        let oauth_client_id = req.oauth_client.as_ref().map(|o| o.id.clone());
        let (issued, session) = new_session(
            now,
            k,
            req.channel,
            req.source_ip,
            password_expired,
            oauth_client_id,
            None,
        );
        let used = token_match(checked, Some(k), ms(now));
        let attempt = Attempt {
            credential: used.label(),
            ..req.attempt(decision.status)
        };
        let history = history_row(ms(now), Some(&k.user), &attempt);
        if !crate::store::logins::record_success_if_unchanged(
            &self.db,
            &k.user,
            ms(now),
            &session,
            &history,
            used.usage(),
        )
        .await?
        {
            return Ok(None);
        }
        if checks.password == PasswordCheck::Correct {
            self.upgrade_hash(&k.user, &req.secret).await;
        }
        Ok(Some(LoginResponse {
            outcome: decision.outcome,
            status: decision.status,
            session: Some(issued.into_session(k.org.clone(), k.user.clone())),
            challenge: None,
            retry_after: None,
        }))
    }

    /// docs/rules.md, Non-functional: a hash made with older parameters is replaced on the next successful login.
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
            users::rehash_password(&mut c.as_conn(), &user.org_id, &user.id, old, &new).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(user_id = %user.id, error = %e, "could not upgrade a password hash");
        }
    }
}

pub(super) fn context<'a>(
    req: &LoginRequest,
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
        device_verified: known.is_some_and(|k| k.browser_verified),
    }
}

/// Which security token the login sent, against the user's row as it is where it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenMatch {
    NotSupplied,
    Current,
    /// The token a reset replaced, within the org's `token_grace_hours`.
    PreviousInGrace,
    Invalid,
}

impl TokenMatch {
    /// The login-history credential of a login by a known user.
    fn label(self) -> &'static str {
        match self {
            TokenMatch::Current => credential::PASSWORD_TOKEN,
            TokenMatch::PreviousInGrace => credential::PASSWORD_PREVIOUS_TOKEN,
            TokenMatch::NotSupplied | TokenMatch::Invalid => credential::PASSWORD,
        }
    }

    /// The usage inventory's credential, when a success used a security token.
    fn usage(self) -> Option<&'static str> {
        matches!(self, TokenMatch::Current | TokenMatch::PreviousInGrace)
            .then_some(crate::store::integration::SECURITY_TOKEN)
    }
}

fn token_match(checked: &Checked, known: Option<&Known>, now_ms: i64) -> TokenMatch {
    let Some(sent) = &checked.token_digest else {
        return TokenMatch::NotSupplied;
    };
    let Some(k) = known else {
        return TokenMatch::Invalid;
    };
    let u = &k.user;
    if u.token_digest.as_ref().is_some_and(|t| ct_eq(sent, t)) {
        return TokenMatch::Current;
    }
    // The window fixed at the reset, or the org's current one if it is shorter now.
    let grace_ms = policy_of(&k.org).token_grace_ms();
    let in_grace = match (u.previous_token_until, u.token_issued_at) {
        (Some(until), Some(issued)) => now_ms < until.min(issued.saturating_add(grace_ms)),
        _ => false,
    };
    match &u.previous_token_digest {
        Some(previous) if in_grace && ct_eq(sent, previous) => TokenMatch::PreviousInGrace,
        _ => TokenMatch::Invalid,
    }
}

/// The check results the decision takes, against the user's row as it is where it is called
/// (before the hash for the one-step path, under the lock for the general one).
fn check_results(checked: &Checked, known: Option<&Known>, now_ms: i64) -> CheckResults {
    let user = known.map(|k| &k.user);
    CheckResults {
        // A password verified against a hash that has since been replaced proves nothing.
        password: match user {
            Some(u)
                if checked.password == PasswordCheck::Correct
                    && u.password_hash != checked.verified_hash =>
            {
                PasswordCheck::Wrong
            }
            _ => checked.password,
        },
        token: match token_match(checked, known, now_ms) {
            TokenMatch::NotSupplied => TokenCheck::NotSupplied,
            TokenMatch::Current | TokenMatch::PreviousInGrace => TokenCheck::Valid,
            TokenMatch::Invalid => TokenCheck::Invalid,
        },
        delegated: checked.delegated,
    }
}
