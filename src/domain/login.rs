//! The login decision (R-L1…R-L8, R-T8, R-U1): one pure function that every interface — SOAP,
//! OAuth, the web UI — reaches through the one login service. It takes what the store knows about
//! the user, where the attempt comes from, and the results of the credential checks, and returns
//! what the client is told, what login history records, and how the lockout counter changes.
//!
//! A login runs in two steps because the credential checks are I/O (a password hash on the
//! blocking pool, a call to a delegated-authentication endpoint): [`plan`] says which check to
//! run, the service runs it, and [`decide`] applies the rules. Every path runs exactly one check
//! of password-hash cost, so response times do not tell an unknown, locked or inactive user from
//! a wrong password (R-L4).

use super::ip::{IpRange, any_contains};
use super::policy::OrgPolicy;
use super::profile::Permissions;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime, macros::datetime};

/// Where a login comes from; decides the login type in login history (R-L9) and whether the
/// API or the UI rules apply (R-L8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The web UI login page.
    Ui,
    SoapPartner,
    SoapEnterprise,
    /// OAuth 2.0 username-password flow.
    OAuth,
}

impl Channel {
    pub fn is_api(self) -> bool {
        !matches!(self, Channel::Ui)
    }

    /// The login type as Salesforce writes it in login history.
    pub fn login_type(self) -> &'static str {
        match self {
            Channel::Ui => "Application",
            Channel::SoapPartner => "SOAP Partner",
            Channel::SoapEnterprise => "SOAP Enterprise",
            Channel::OAuth => "Remote Access 2.0",
        }
    }
}

/// "Locked until an admin unlocks" (`lockout_minutes = 0`) is stored as this instant.
pub const LOCKED_FOREVER: OffsetDateTime = datetime!(9999-12-31 0:00 UTC);

/// The lockout counter of one user (R-L5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lockout {
    pub failed_attempts: u32,
    pub locked_until: Option<OffsetDateTime>,
}

impl Lockout {
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }
}

/// When a lock that engages now ends under this policy.
pub fn lock_until(policy: &OrgPolicy, now: OffsetDateTime) -> OffsetDateTime {
    if policy.lockout_minutes == 0 {
        LOCKED_FOREVER
    } else {
        now + Duration::minutes(i64::from(policy.lockout_minutes))
    }
}

/// Is the password older than the policy allows (R-L6)?
pub fn password_expired(
    policy: &OrgPolicy,
    permissions: &Permissions,
    password_changed_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    if permissions.password_never_expires || policy.password_expiry_days == 0 {
        return false;
    }
    password_changed_at
        .is_some_and(|t| now >= t + Duration::days(i64::from(policy.password_expiry_days)))
}

/// What the store knows about the user who is logging in.
#[derive(Debug, Clone)]
pub struct LoginSubject<'a> {
    pub active: bool,
    pub has_password: bool,
    pub lockout: Lockout,
    pub password_changed_at: Option<OffsetDateTime>,
    pub permissions: Permissions,
    /// The profile's login IP ranges (R-L1); empty = no restriction.
    pub login_ranges: &'a [IpRange],
}

/// Where and when the attempt happens.
#[derive(Debug, Clone)]
pub struct LoginContext<'a> {
    pub channel: Channel,
    pub source_ip: IpAddr,
    pub now: OffsetDateTime,
    /// The org's trusted IP ranges (Network Access, R-L2).
    pub trusted_ranges: &'a [IpRange],
    pub policy: &'a OrgPolicy,
    /// UI only: this browser and IP were verified for this user before (R-U1).
    pub device_verified: bool,
}

/// The one credential check of password-hash cost the service must run before [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialCheck {
    /// The attempt fails whatever the credentials; hash against the dummy hash so the answer
    /// takes as long as a wrong password (R-L4). The user's own hash is never computed, so a
    /// locked account is not a password oracle (R-L5).
    DummyHash,
    /// Verify the password part of what was sent against the user's hash.
    VerifyPassword,
    /// Ask the org's delegated-authentication endpoint (R-L7).
    DelegatedAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    NotChecked,
    Correct,
    Wrong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Nothing in the token position: no token-shaped suffix, no `security_token` field.
    NotSupplied,
    /// The user's current token.
    Valid,
    /// A token was sent but it is not the current one (stale, another user's, malformed).
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegatedCheck {
    NotAsked,
    Accepted,
    Rejected,
    /// The endpoint could not be reached or answered nonsense.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResults {
    pub password: PasswordCheck,
    pub token: TokenCheck,
    pub delegated: DelegatedCheck,
}

impl CheckResults {
    /// An attempt that proved no password — unknown user, wrong password, a user whose password
    /// was not checked because they are locked, inactive or outside their login IP ranges —
    /// counts against its source address's limit (`domain::throttle`). One that proved the
    /// password alone (an expired password) does not, nor does an unreachable
    /// delegated-authentication endpoint; the right password without the token it needed does,
    /// by its decision ([`LoginDecision::counts_against_address`]).
    pub fn counts_against_address(&self) -> bool {
        self.password != PasswordCheck::Correct
            && !matches!(
                self.delegated,
                DelegatedCheck::Accepted | DelegatedCheck::Unavailable
            )
    }
}

/// What the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A session may be created; with `password_expired` it allows only `setPassword` (R-L6).
    Success { password_expired: bool },
    /// The one generic answer for every credential failure (R-L4): `INVALID_LOGIN`.
    InvalidLogin,
    /// R-L3: `LOGIN_MUST_USE_SECURITY_TOKEN`.
    MustUseSecurityToken,
    /// R-L8: the profile lacks "API enabled": `API_CURRENTLY_DISABLED`.
    ApiDisabled,
    /// R-L8: an API-only user tried the web UI.
    ApiOnlyUser,
    /// R-U1: a browser login from outside the trusted ranges on an unverified browser.
    IdentityVerificationRequired,
    /// R-L6, OAuth only: the credentials are right but the password has expired, and OAuth has
    /// no `setPassword`, so no token is issued (`invalid_grant` / `password expired`).
    PasswordExpired,
    /// The source address made too many failed logins in its window (`domain::throttle`):
    /// refused before any password, token or code was checked.
    AddressLimited,
}

/// The login history status: Salesforce's texts (R-L9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStatus {
    Success,
    /// Unknown username.
    InvalidLogin,
    InvalidPassword,
    PasswordLockout,
    UserInactive,
    RestrictedIp,
    SecurityTokenRequired,
    ComputerActivationRequired,
    ApiOnlyUser,
    ApiDisabled,
    SsoServiceDown,
    PasswordExpired,
    /// OAuth: the request named an unknown client or the wrong client secret.
    InvalidClient,
    /// R-U1: the identity-verification code was wrong, expired or used up.
    VerificationFailed,
    /// An integration token that is no token of this user's, revoked, or past its grace window.
    IntegrationTokenInvalid,
    /// An integration token past its expiry.
    IntegrationTokenExpired,
    /// An integration token typed into the web UI's login page: they are API credentials.
    IntegrationTokenNotForUi,
    /// The source address is over its failed-login limit. Counted in `/metrics`, never written
    /// to login history (see docs/security.md), so it is not in [`LoginStatus::ALL`].
    LoginRateExceeded,
}

impl LoginStatus {
    /// The statuses login history records.
    pub const ALL: [LoginStatus; 17] = [
        LoginStatus::Success,
        LoginStatus::InvalidLogin,
        LoginStatus::InvalidPassword,
        LoginStatus::PasswordLockout,
        LoginStatus::UserInactive,
        LoginStatus::RestrictedIp,
        LoginStatus::SecurityTokenRequired,
        LoginStatus::ComputerActivationRequired,
        LoginStatus::ApiOnlyUser,
        LoginStatus::ApiDisabled,
        LoginStatus::SsoServiceDown,
        LoginStatus::PasswordExpired,
        LoginStatus::InvalidClient,
        LoginStatus::VerificationFailed,
        LoginStatus::IntegrationTokenInvalid,
        LoginStatus::IntegrationTokenExpired,
        LoginStatus::IntegrationTokenNotForUi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginStatus::Success => "Success",
            LoginStatus::InvalidLogin => "Invalid login",
            LoginStatus::InvalidPassword => "Invalid password",
            LoginStatus::PasswordLockout => "Password lockout",
            LoginStatus::UserInactive => "User is inactive",
            LoginStatus::RestrictedIp => "Restricted IP",
            LoginStatus::SecurityTokenRequired => "Failed: API security token required",
            LoginStatus::ComputerActivationRequired => "Failed: Computer activation required",
            LoginStatus::ApiOnlyUser => "Failed: API-only user",
            LoginStatus::ApiDisabled => "Failed: API access disabled",
            LoginStatus::SsoServiceDown => "Your company's authentication service is down",
            LoginStatus::PasswordExpired => "Failed: Password expired",
            LoginStatus::InvalidClient => "Failed: Invalid OAuth client credentials",
            LoginStatus::VerificationFailed => "Failed: Verification code invalid",
            LoginStatus::IntegrationTokenInvalid => "Failed: integration token invalid",
            LoginStatus::IntegrationTokenExpired => "Failed: integration token expired",
            LoginStatus::IntegrationTokenNotForUi => "Failed: integration token in the web UI",
            LoginStatus::LoginRateExceeded => "Login rate exceeded",
        }
    }
}

/// How the user's lockout counter changes (R-L5). The store applies it in one atomic statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutEffect {
    Unchanged,
    /// One more consecutive failure; at `max_attempts` (0 = no limit) the user is locked until
    /// `lock_until` and the counter starts again.
    RecordFailure {
        max_attempts: u32,
        lock_until: OffsetDateTime,
    },
    /// A success: the counter goes back to zero.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDecision {
    pub outcome: LoginOutcome,
    pub status: LoginStatus,
    pub lockout: LockoutEffect,
}

impl LoginDecision {
    /// Whether the attempt counts against its source address's limit: every attempt that
    /// proved no password, and the right password without the second factor it needed — the
    /// security token (R-L3), or, in the browser, an identity verification (R-U1) — else
    /// whoever holds one password could send it without end, each attempt a hash (and, in the
    /// browser, a code mailed to the owner). Neither counts towards the user's lockout.
    pub fn counts_against_address(&self, checks: &CheckResults) -> bool {
        checks.counts_against_address()
            || matches!(
                self.outcome,
                LoginOutcome::MustUseSecurityToken | LoginOutcome::IdentityVerificationRequired
            )
    }

    fn fail(outcome: LoginOutcome, status: LoginStatus) -> LoginDecision {
        LoginDecision {
            outcome,
            status,
            lockout: LockoutEffect::Unchanged,
        }
    }
}

/// The denials that do not depend on the credentials, in the order they apply.
fn precheck(subject: Option<&LoginSubject>, ctx: &LoginContext) -> Option<LoginDecision> {
    use {LoginOutcome as O, LoginStatus as S};
    let Some(user) = subject else {
        return Some(LoginDecision::fail(O::InvalidLogin, S::InvalidLogin));
    };
    if !user.active {
        // R-T8
        return Some(LoginDecision::fail(O::InvalidLogin, S::UserInactive));
    }
    if user.lockout.is_locked(ctx.now) {
        // R-L5
        return Some(LoginDecision::fail(O::InvalidLogin, S::PasswordLockout));
    }
    if !user.login_ranges.is_empty() && !any_contains(user.login_ranges, ctx.source_ip) {
        // R-L1: whatever the credentials.
        return Some(LoginDecision::fail(O::InvalidLogin, S::RestrictedIp));
    }
    if !user.has_password && !user.permissions.sso_enabled {
        return Some(LoginDecision::fail(O::InvalidLogin, S::InvalidPassword));
    }
    None
}

/// Which credential check to run for this attempt.
pub fn plan(subject: Option<&LoginSubject>, ctx: &LoginContext) -> CredentialCheck {
    match (precheck(subject, ctx), subject) {
        (None, Some(user)) if user.permissions.sso_enabled => CredentialCheck::DelegatedAuth,
        (None, Some(_)) => CredentialCheck::VerifyPassword,
        _ => CredentialCheck::DummyHash,
    }
}

/// The login decision.
pub fn decide(
    subject: Option<&LoginSubject>,
    ctx: &LoginContext,
    checks: &CheckResults,
) -> LoginDecision {
    use {LoginOutcome as O, LoginStatus as S};
    if let Some(denied) = precheck(subject, ctx) {
        return denied;
    }
    let Some(user) = subject else {
        return LoginDecision::fail(O::InvalidLogin, S::InvalidLogin);
    };
    let failure = LockoutEffect::RecordFailure {
        max_attempts: ctx.policy.lockout_attempts,
        lock_until: lock_until(ctx.policy, ctx.now),
    };
    let credential_failure = |status| LoginDecision {
        outcome: O::InvalidLogin,
        status,
        lockout: failure,
    };

    let sso = user.permissions.sso_enabled;
    // R-L1 already refused an address outside the login ranges, so being inside them or inside
    // the org's trusted ranges makes the address trusted (R-L2).
    let trusted = any_contains(user.login_ranges, ctx.source_ip)
        || any_contains(ctx.trusted_ranges, ctx.source_ip);
    if sso {
        // R-L7: the endpoint's yes/no decides; no token, and R-L2/R-L3 do not apply.
        match checks.delegated {
            DelegatedCheck::Accepted => {}
            DelegatedCheck::Rejected => return credential_failure(S::InvalidPassword),
            DelegatedCheck::Unavailable | DelegatedCheck::NotAsked => {
                return LoginDecision::fail(O::InvalidLogin, S::SsoServiceDown);
            }
        }
    } else {
        match checks.password {
            PasswordCheck::Correct => {}
            PasswordCheck::Wrong => return credential_failure(S::InvalidPassword),
            // The plan said no check was needed (say the user was locked), but the state has
            // changed since (the lock expired): refuse without counting a failure nobody made.
            PasswordCheck::NotChecked => {
                return LoginDecision::fail(O::InvalidLogin, S::InvalidPassword);
            }
        }
    }
    // R-L8 for the web UI, before any identity verification: an API-only user is never sent a
    // verification code for a login that cannot succeed.
    if !ctx.channel.is_api() && user.permissions.api_only {
        return LoginDecision::fail(O::ApiOnlyUser, S::ApiOnlyUser);
    }
    let token = if sso {
        TokenCheck::NotSupplied
    } else {
        checks.token
    };
    match (token, ctx.channel.is_api(), trusted) {
        (TokenCheck::Valid, _, _) => {}
        // R-L3: a correct password with a stale or wrong token is "without a valid token". It is
        // not a credential failure, so it never locks the user out: a forgotten integration with
        // an old token cannot lock its owner out of keyward.
        (TokenCheck::Invalid, _, _) | (TokenCheck::NotSupplied, true, false) if !sso => {
            return LoginDecision::fail(O::MustUseSecurityToken, S::SecurityTokenRequired);
        }
        // R-U1, for SSO users too: the delegated check proves the password, not the browser.
        (TokenCheck::NotSupplied, false, false) if !ctx.device_verified => {
            return LoginDecision::fail(
                O::IdentityVerificationRequired,
                S::ComputerActivationRequired,
            );
        }
        _ => {}
    }

    // R-L8, checked only once the credentials are right so that it reveals nothing to a guesser.
    if ctx.channel.is_api() && !user.permissions.api_enabled {
        return LoginDecision::fail(O::ApiDisabled, S::ApiDisabled);
    }
    if !ctx.channel.is_api() && user.permissions.api_only {
        return LoginDecision::fail(O::ApiOnlyUser, S::ApiOnlyUser);
    }
    let expired = !sso
        && password_expired(
            ctx.policy,
            &user.permissions,
            user.password_changed_at,
            ctx.now,
        );
    if expired && ctx.channel == Channel::OAuth {
        // The credentials were right, so the failure counter resets; but OAuth cannot change
        // a password, so it gets no token.
        return LoginDecision {
            outcome: O::PasswordExpired,
            status: S::PasswordExpired,
            lockout: LockoutEffect::Reset,
        };
    }
    LoginDecision {
        outcome: O::Success {
            password_expired: expired,
        },
        status: S::Success,
        lockout: LockoutEffect::Reset,
    }
}

/// Whether the right password would let this attempt in, with the token it sent, from where it
/// comes: only then does its hash earn the source address the hash pool's credit, so the right
/// password without its token ranks in the pool like a guess (docs/security.md).
pub fn right_password_lets_in(
    subject: Option<&LoginSubject>,
    ctx: &LoginContext,
    checks: &CheckResults,
) -> bool {
    let with_password = CheckResults {
        password: PasswordCheck::Correct,
        ..*checks
    };
    matches!(
        decide(subject, ctx, &with_password).outcome,
        LoginOutcome::Success { .. }
    )
}

/// The second step of a browser login (R-U1, R-U2): the password was right when the challenge
/// was issued and the code is right now. The user must still be allowed in as things are now —
/// not deactivated, locked or outside the login IP ranges meanwhile (R-T8, R-L5, R-L1).
pub fn decide_verified(subject: Option<&LoginSubject>, ctx: &LoginContext) -> LoginDecision {
    use {LoginOutcome as O, LoginStatus as S};
    if let Some(denied) = precheck(subject, ctx) {
        return denied;
    }
    let Some(user) = subject else {
        return LoginDecision::fail(O::InvalidLogin, S::InvalidLogin);
    };
    if user.permissions.api_only {
        return LoginDecision::fail(O::ApiOnlyUser, S::ApiOnlyUser);
    }
    LoginDecision {
        outcome: O::Success {
            password_expired: !user.permissions.sso_enabled
                && password_expired(
                    ctx.policy,
                    &user.permissions,
                    user.password_changed_at,
                    ctx.now,
                ),
        },
        status: S::Success,
        lockout: LockoutEffect::Reset,
    }
}

/// An OAuth grant that proves no password — `refresh_token` (the user logged in before) and
/// `client_credentials` (the client's configured user) — is still refused when the user may not
/// log in now: deactivated (R-T8), outside the profile's login IP ranges (R-L1), or without API
/// access (R-L8). A lockout does not stop it, as a lockout does not end sessions that already
/// exist. Token rules (R-L2, R-L3) do not apply: no password is involved.
pub fn decide_grant(subject: Option<&LoginSubject>, ctx: &LoginContext) -> LoginDecision {
    use {LoginOutcome as O, LoginStatus as S};
    let Some(user) = subject else {
        return LoginDecision::fail(O::InvalidLogin, S::InvalidLogin);
    };
    if !user.active {
        return LoginDecision::fail(O::InvalidLogin, S::UserInactive);
    }
    if !user.login_ranges.is_empty() && !any_contains(user.login_ranges, ctx.source_ip) {
        return LoginDecision::fail(O::InvalidLogin, S::RestrictedIp);
    }
    if !user.permissions.api_enabled {
        return LoginDecision::fail(O::ApiDisabled, S::ApiDisabled);
    }
    LoginDecision {
        outcome: O::Success {
            password_expired: false,
        },
        status: S::Success,
        lockout: LockoutEffect::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);
    const UNTRUSTED: &str = "203.0.113.7";
    const TRUSTED: &str = "10.1.2.3";

    fn trusted_ranges() -> Vec<IpRange> {
        vec![IpRange::parse("10.0.0.0/8", None).unwrap()]
    }

    fn office() -> Vec<IpRange> {
        vec![IpRange::parse("192.168.1.0/24", None).unwrap()]
    }

    fn api_user() -> Permissions {
        Permissions {
            api_enabled: true,
            ..Permissions::default()
        }
    }

    type Tweak = Box<dyn Fn(&mut LoginSubject)>;

    struct Row {
        rule: &'static str,
        user: Option<Tweak>,
        known: bool,
        channel: Channel,
        ip: &'static str,
        checks: (PasswordCheck, TokenCheck, DelegatedCheck),
        device_verified: bool,
        expect_plan: CredentialCheck,
        expect: (LoginOutcome, LoginStatus, &'static str),
    }

    fn row(rule: &'static str) -> Row {
        Row {
            rule,
            user: None,
            known: true,
            channel: Channel::SoapPartner,
            ip: UNTRUSTED,
            checks: (
                PasswordCheck::Correct,
                TokenCheck::Valid,
                DelegatedCheck::NotAsked,
            ),
            device_verified: false,
            expect_plan: CredentialCheck::VerifyPassword,
            expect: (
                LoginOutcome::Success {
                    password_expired: false,
                },
                LoginStatus::Success,
                "reset",
            ),
        }
    }

    impl Row {
        fn user(mut self, f: impl Fn(&mut LoginSubject) + 'static) -> Row {
            self.user = Some(Box::new(f));
            self
        }
        fn unknown(mut self) -> Row {
            self.known = false;
            self
        }
        fn channel(mut self, c: Channel) -> Row {
            self.channel = c;
            self
        }
        fn ip(mut self, ip: &'static str) -> Row {
            self.ip = ip;
            self
        }
        fn checks(mut self, p: PasswordCheck, t: TokenCheck) -> Row {
            self.checks = (p, t, DelegatedCheck::NotAsked);
            self
        }
        fn delegated(mut self, d: DelegatedCheck) -> Row {
            self.checks = (PasswordCheck::NotChecked, TokenCheck::NotSupplied, d);
            self
        }
        fn verified(mut self) -> Row {
            self.device_verified = true;
            self
        }
        fn plan(mut self, p: CredentialCheck) -> Row {
            self.expect_plan = p;
            self
        }
        fn expect(mut self, o: LoginOutcome, s: LoginStatus, lockout: &'static str) -> Row {
            self.expect = (o, s, lockout);
            self
        }
    }

    fn table() -> Vec<Row> {
        use CredentialCheck as C;
        use LoginOutcome as O;
        use LoginStatus as S;
        use PasswordCheck as P;
        use TokenCheck as T;
        vec![
            row("R-L3 untrusted IP, password+token: success"),
            row("R-L3 untrusted IP, password alone: must use security token")
                .checks(P::Correct, T::NotSupplied)
                .expect(O::MustUseSecurityToken, S::SecurityTokenRequired, "unchanged"),
            row("R-L3 untrusted IP, password + stale token: must use security token, no lockout count")
                .checks(P::Correct, T::Invalid)
                .expect(O::MustUseSecurityToken, S::SecurityTokenRequired, "unchanged"),
            row("R-L3 OAuth, password alone from untrusted IP")
                .channel(Channel::OAuth)
                .checks(P::Correct, T::NotSupplied)
                .expect(O::MustUseSecurityToken, S::SecurityTokenRequired, "unchanged"),
            row("R-L3 wrong password with the right token: invalid login")
                .checks(P::Wrong, T::Valid)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-L2 trusted IP, password alone: success")
                .ip(TRUSTED)
                .checks(P::Correct, T::NotSupplied),
            row("R-L2 trusted IP, password+token also accepted").ip(TRUSTED),
            row("R-L2 trusted IP, IPv4-mapped IPv6 peer").ip("::ffff:10.9.9.9").checks(P::Correct, T::NotSupplied),
            row("R-L2 trusted IP, password + wrong token: refused")
                .ip(TRUSTED)
                .checks(P::Correct, T::Invalid)
                .expect(O::MustUseSecurityToken, S::SecurityTokenRequired, "unchanged"),
            row("R-L2 trusted IP, wrong password: invalid login")
                .ip(TRUSTED)
                .checks(P::Wrong, T::NotSupplied)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-L2 inside the profile's login ranges, password alone: success")
                .user(|u| u.login_ranges = Box::leak(office().into_boxed_slice()))
                .ip("192.168.1.20")
                .checks(P::Correct, T::NotSupplied),
            row("R-L1 outside the profile's login ranges: restricted whatever the credentials")
                .user(|u| u.login_ranges = Box::leak(office().into_boxed_slice()))
                .ip(UNTRUSTED)
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::Valid)
                .expect(O::InvalidLogin, S::RestrictedIp, "unchanged"),
            row("R-L1 login ranges win over org trusted ranges")
                .user(|u| u.login_ranges = Box::leak(office().into_boxed_slice()))
                .ip(TRUSTED)
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::NotSupplied)
                .expect(O::InvalidLogin, S::RestrictedIp, "unchanged"),
            row("R-L4 unknown username: generic answer, dummy hash")
                .unknown()
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::NotSupplied)
                .expect(O::InvalidLogin, S::InvalidLogin, "unchanged"),
            row("R-L4 wrong password: generic answer, failure counted")
                .checks(P::Wrong, T::NotSupplied)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-L4 user without a password yet: generic answer")
                .user(|u| u.has_password = false)
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::NotSupplied)
                .expect(O::InvalidLogin, S::InvalidPassword, "unchanged"),
            row("R-L5 locked user with the right credentials: lockout, own hash never computed")
                .user(|u| u.lockout.locked_until = Some(NOW + Duration::minutes(1)))
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::Valid)
                .expect(O::InvalidLogin, S::PasswordLockout, "unchanged"),
            row("R-L5 locked forever until an admin unlocks")
                .user(|u| u.lockout.locked_until = Some(LOCKED_FOREVER))
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::Valid)
                .expect(O::InvalidLogin, S::PasswordLockout, "unchanged"),
            row("R-L5 lock expired: logs in and resets the counter")
                .user(|u| {
                    u.lockout = Lockout {
                        failed_attempts: 0,
                        locked_until: Some(NOW),
                    }
                }),
            row("R-L5 success after failures resets the counter").user(|u| u.lockout.failed_attempts = 9),
            row("R-L5 lock lifted while a refused attempt was in flight: refused, not counted")
                .checks(P::NotChecked, T::Valid)
                .expect(O::InvalidLogin, S::InvalidPassword, "unchanged"),
            row("R-T8 inactive user: user is inactive, even with the right credentials")
                .user(|u| u.active = false)
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::Valid)
                .expect(O::InvalidLogin, S::UserInactive, "unchanged"),
            row("R-T8 inactive user from a trusted IP")
                .user(|u| u.active = false)
                .ip(TRUSTED)
                .plan(C::DummyHash)
                .checks(P::NotChecked, T::NotSupplied)
                .expect(O::InvalidLogin, S::UserInactive, "unchanged"),
            row("R-L6 expired password: success flagged expired")
                .user(|u| u.password_changed_at = Some(NOW - Duration::days(90)))
                .expect(O::Success { password_expired: true }, S::Success, "reset"),
            row("R-L6 OAuth with an expired password: no token, counter reset")
                .channel(Channel::OAuth)
                .user(|u| u.password_changed_at = Some(NOW - Duration::days(90)))
                .expect(O::PasswordExpired, S::PasswordExpired, "reset"),
            row("R-L6 password one second short of expiry")
                .user(|u| u.password_changed_at = Some(NOW - Duration::days(90) + Duration::seconds(1))),
            row("R-L6 password never expires profile is exempt").user(|u| {
                u.password_changed_at = Some(NOW - Duration::days(900));
                u.permissions.password_never_expires = true;
            }),
            row("R-L7 SSO user accepted by the endpoint: no token needed from an untrusted IP")
                .user(|u| u.permissions.sso_enabled = true)
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Accepted),
            row("R-L7 SSO user rejected by the endpoint: invalid password, counted")
                .user(|u| u.permissions.sso_enabled = true)
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Rejected)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-L7 SSO endpoint down: authentication service is down, not counted")
                .user(|u| u.permissions.sso_enabled = true)
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Unavailable)
                .expect(O::InvalidLogin, S::SsoServiceDown, "unchanged"),
            row("R-L7 SSO user still bound by login IP ranges (R-L1)")
                .user(|u| {
                    u.permissions.sso_enabled = true;
                    u.login_ranges = Box::leak(office().into_boxed_slice());
                })
                .plan(C::DummyHash)
                .delegated(DelegatedCheck::NotAsked)
                .expect(O::InvalidLogin, S::RestrictedIp, "unchanged"),
            row("R-L7 SSO password never expires locally")
                .user(|u| {
                    u.permissions.sso_enabled = true;
                    u.password_changed_at = Some(NOW - Duration::days(900));
                })
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Accepted),
            row("R-L8 profile without API enabled: API currently disabled")
                .user(|u| u.permissions.api_enabled = false)
                .expect(O::ApiDisabled, S::ApiDisabled, "unchanged"),
            row("R-L8 no API permission but wrong password: still the generic answer")
                .user(|u| u.permissions.api_enabled = false)
                .checks(P::Wrong, T::Valid)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-L8 API-only user on the web UI: refused")
                .user(|u| u.permissions.api_only = true)
                .channel(Channel::Ui)
                .ip(TRUSTED)
                .checks(P::Correct, T::NotSupplied)
                .expect(O::ApiOnlyUser, S::ApiOnlyUser, "unchanged"),
            row("R-L8 API-only user through the API: success").user(|u| u.permissions.api_only = true),
            row("R-L8 web UI user without API permission can use the UI")
                .user(|u| u.permissions.api_enabled = false)
                .channel(Channel::Ui)
                .ip(TRUSTED)
                .checks(P::Correct, T::NotSupplied),
            row("R-U1 web UI from an untrusted IP on an unverified browser: challenged")
                .channel(Channel::Ui)
                .checks(P::Correct, T::NotSupplied)
                .expect(
                    O::IdentityVerificationRequired,
                    S::ComputerActivationRequired,
                    "unchanged",
                ),
            row("R-U1 web UI from an untrusted IP on a verified browser: success")
                .channel(Channel::Ui)
                .checks(P::Correct, T::NotSupplied)
                .verified(),
            row("R-U1 web UI wrong password: invalid, counted")
                .channel(Channel::Ui)
                .checks(P::Wrong, T::NotSupplied)
                .expect(O::InvalidLogin, S::InvalidPassword, "failure"),
            row("R-U1 SSO user in the web UI on an unverified browser: challenged too")
                .user(|u| u.permissions.sso_enabled = true)
                .channel(Channel::Ui)
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Accepted)
                .expect(
                    O::IdentityVerificationRequired,
                    S::ComputerActivationRequired,
                    "unchanged",
                ),
            row("R-U1 SSO user in the web UI on a verified browser: success")
                .user(|u| u.permissions.sso_enabled = true)
                .channel(Channel::Ui)
                .plan(C::DelegatedAuth)
                .delegated(DelegatedCheck::Accepted)
                .verified(),
            row("R-L8 API-only user in the web UI from outside: refused, never challenged")
                .user(|u| u.permissions.api_only = true)
                .channel(Channel::Ui)
                .checks(P::Correct, T::NotSupplied)
                .expect(O::ApiOnlyUser, S::ApiOnlyUser, "unchanged"),
            row("R-L9 enterprise endpoint applies the same rules")
                .channel(Channel::SoapEnterprise)
                .checks(P::Correct, T::NotSupplied)
                .expect(O::MustUseSecurityToken, S::SecurityTokenRequired, "unchanged"),
        ]
    }

    /// An active API user whose password was set 10 days ago, unlocked, with no login ranges.
    fn api_subject() -> LoginSubject<'static> {
        LoginSubject {
            active: true,
            has_password: true,
            lockout: Lockout::default(),
            password_changed_at: Some(NOW - Duration::days(10)),
            permissions: api_user(),
            login_ranges: &[],
        }
    }

    #[test]
    fn login_decision_table() {
        let policy = OrgPolicy::default();
        let trusted = trusted_ranges();
        for r in table() {
            let mut subject = LoginSubject {
                active: true,
                has_password: true,
                lockout: Lockout::default(),
                password_changed_at: Some(NOW - Duration::days(10)),
                permissions: api_user(),
                login_ranges: &[],
            };
            if let Some(f) = &r.user {
                f(&mut subject);
            }
            let ctx = LoginContext {
                channel: r.channel,
                source_ip: r.ip.parse().unwrap(),
                now: NOW,
                trusted_ranges: &trusted,
                policy: &policy,
                device_verified: r.device_verified,
            };
            let subject = r.known.then_some(&subject);
            assert_eq!(plan(subject, &ctx), r.expect_plan, "plan: {}", r.rule);
            let checks = CheckResults {
                password: r.checks.0,
                token: r.checks.1,
                delegated: r.checks.2,
            };
            let d = decide(subject, &ctx, &checks);
            assert_eq!(
                (d.outcome, d.status),
                (r.expect.0, r.expect.1),
                "{}",
                r.rule
            );
            let lockout = match d.lockout {
                LockoutEffect::Unchanged => "unchanged",
                LockoutEffect::Reset => "reset",
                LockoutEffect::RecordFailure {
                    max_attempts,
                    lock_until,
                } => {
                    assert_eq!(max_attempts, 10, "{}", r.rule);
                    assert_eq!(lock_until, NOW + Duration::minutes(15), "{}", r.rule);
                    "failure"
                }
            };
            assert_eq!(lockout, r.expect.2, "lockout: {}", r.rule);
        }
    }

    #[test]
    fn the_right_password_without_its_token_counts_against_the_address_and_earns_no_credit() {
        let policy = OrgPolicy::default();
        let trusted = trusted_ranges();
        let subject = api_subject();
        let ctx = |ip: &str| LoginContext {
            channel: Channel::SoapPartner,
            source_ip: ip.parse().unwrap(),
            now: NOW,
            trusted_ranges: &trusted,
            policy: &policy,
            device_verified: false,
        };
        let checks = |token| CheckResults {
            password: PasswordCheck::Correct,
            token,
            delegated: DelegatedCheck::NotAsked,
        };
        let outside = ctx(UNTRUSTED);
        for token in [TokenCheck::NotSupplied, TokenCheck::Invalid] {
            let d = decide(Some(&subject), &outside, &checks(token));
            assert_eq!(d.outcome, LoginOutcome::MustUseSecurityToken);
            assert!(d.counts_against_address(&checks(token)), "{token:?}");
            assert_eq!(
                d.lockout,
                LockoutEffect::Unchanged,
                "never the user's lockout"
            );
            assert!(!right_password_lets_in(
                Some(&subject),
                &outside,
                &checks(token)
            ));
        }
        let ok = checks(TokenCheck::Valid);
        assert!(!decide(Some(&subject), &outside, &ok).counts_against_address(&ok));
        assert!(right_password_lets_in(Some(&subject), &outside, &ok));
        // From a trusted range the password alone lets in; an unknown user never.
        let alone = checks(TokenCheck::NotSupplied);
        assert!(right_password_lets_in(
            Some(&subject),
            &ctx(TRUSTED),
            &alone
        ));
        assert!(!right_password_lets_in(None, &outside, &ok));
    }

    #[test]
    fn oauth_grants_without_a_password() {
        let policy = OrgPolicy::default();
        let office = office();
        let base = LoginSubject {
            active: true,
            has_password: true,
            lockout: Lockout::default(),
            password_changed_at: Some(NOW - Duration::days(900)),
            permissions: api_user(),
            login_ranges: &[],
        };
        let ctx = |ip: &str| LoginContext {
            channel: Channel::OAuth,
            source_ip: ip.parse().unwrap(),
            now: NOW,
            trusted_ranges: &[],
            policy: &policy,
            device_verified: false,
        };
        let status = |s: Option<&LoginSubject>, ip: &str| decide_grant(s, &ctx(ip)).status;
        // No token needed from an untrusted address, an expired password does not matter.
        assert_eq!(status(Some(&base), UNTRUSTED), LoginStatus::Success);
        let locked = LoginSubject {
            lockout: Lockout {
                failed_attempts: 0,
                locked_until: Some(LOCKED_FOREVER),
            },
            ..base.clone()
        };
        assert_eq!(status(Some(&locked), UNTRUSTED), LoginStatus::Success);
        let inactive = LoginSubject {
            active: false,
            ..base.clone()
        };
        assert_eq!(
            status(Some(&inactive), UNTRUSTED),
            LoginStatus::UserInactive
        );
        let ranged = LoginSubject {
            login_ranges: &office,
            ..base.clone()
        };
        assert_eq!(status(Some(&ranged), UNTRUSTED), LoginStatus::RestrictedIp);
        assert_eq!(status(Some(&ranged), "192.168.1.9"), LoginStatus::Success);
        let no_api = LoginSubject {
            permissions: Permissions::default(),
            ..base.clone()
        };
        assert_eq!(status(Some(&no_api), UNTRUSTED), LoginStatus::ApiDisabled);
        assert_eq!(status(None, UNTRUSTED), LoginStatus::InvalidLogin);
        assert_eq!(
            decide_grant(Some(&base), &ctx(UNTRUSTED)).lockout,
            LockoutEffect::Unchanged
        );
    }

    #[test]
    fn r_l5_lockout_minutes_zero_locks_until_an_admin_unlocks() {
        let policy = OrgPolicy {
            lockout_minutes: 0,
            ..OrgPolicy::default()
        };
        assert_eq!(lock_until(&policy, NOW), LOCKED_FOREVER);
        let l = Lockout {
            failed_attempts: 0,
            locked_until: Some(LOCKED_FOREVER),
        };
        assert!(l.is_locked(NOW + Duration::days(365 * 100)));
    }

    #[test]
    fn r_l6_expiry_zero_days_means_never() {
        let policy = OrgPolicy {
            password_expiry_days: 0,
            ..OrgPolicy::default()
        };
        assert!(!password_expired(
            &policy,
            &Permissions::default(),
            Some(NOW - Duration::days(5000)),
            NOW
        ));
    }

    #[test]
    fn r_l9_login_types_and_statuses_are_salesforce_texts() {
        assert_eq!(Channel::Ui.login_type(), "Application");
        assert_eq!(Channel::SoapPartner.login_type(), "SOAP Partner");
        assert_eq!(Channel::SoapEnterprise.login_type(), "SOAP Enterprise");
        assert_eq!(Channel::OAuth.login_type(), "Remote Access 2.0");
        assert_eq!(
            LoginStatus::SecurityTokenRequired.as_str(),
            "Failed: API security token required"
        );
        assert_eq!(LoginStatus::PasswordLockout.as_str(), "Password lockout");
        assert_eq!(LoginStatus::UserInactive.as_str(), "User is inactive");
    }

    #[test]
    fn only_attempts_that_prove_no_password_count_against_the_address() {
        let c = |password, token, delegated| CheckResults {
            password,
            token,
            delegated,
        };
        use DelegatedCheck as D;
        use PasswordCheck as P;
        use TokenCheck as T;
        // Guesses: a wrong password, no password checked (unknown, locked, inactive, outside
        // the login IP ranges), an SSO password the endpoint rejected.
        assert!(c(P::Wrong, T::NotSupplied, D::NotAsked).counts_against_address());
        assert!(c(P::NotChecked, T::Valid, D::NotAsked).counts_against_address());
        assert!(c(P::NotChecked, T::NotSupplied, D::Rejected).counts_against_address());
        // Not guesses by the checks alone: the right password (a missing or stale token counts
        // by the decision, below), an SSO password the endpoint accepted, an endpoint that
        // could not be reached.
        assert!(!c(P::Correct, T::NotSupplied, D::NotAsked).counts_against_address());
        assert!(!c(P::Correct, T::Invalid, D::NotAsked).counts_against_address());
        assert!(!c(P::NotChecked, T::NotSupplied, D::Accepted).counts_against_address());
        assert!(!c(P::NotChecked, T::NotSupplied, D::Unavailable).counts_against_address());
    }
}
