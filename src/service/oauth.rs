//! OAuth clients (connected apps) and the OAuth 2.0 grants that are not a password login:
//! client authentication, `refresh_token`, `client_credentials` and token introspection
//! (RFC 7662). The `password` grant is a login like SOAP's and goes through
//! [`Services::login`](super::Services::login).
//!
//! A consumer key is shown freely; a consumer secret is shown once, at creation, and stored as
//! a digest (docs/rules.md, Non-functional): it is high-entropy, so a fast digest is as safe as a slow hash and a
//! token request costs no second Argon2.

use super::attempt::{
    Attempt, Known, LoginSession, OAuthIssue, load_user, new_session, record_attempt,
    record_org_attempt, subject_of,
};
use super::audit::{self, Entry};
use super::sessions::{ActiveSession, RefreshToken, SessionId};
use super::views::policy_of;
use super::views::{OAuthClient, User, all};
use super::{Actor, Result, ServiceError, Services, new_id, resolve};
use crate::crypto::{ct_eq, digest, random_base62};
use crate::domain::ids::KeyPrefix;
use crate::domain::login::{self, Channel, LoginContext, LoginOutcome, LoginStatus};
use crate::domain::validate;
use crate::store::oauth::{self, OAuthClientRow};
use crate::store::sessions;
use crate::store::users;
use std::net::IpAddr;
use std::sync::Arc;

/// A consumer secret, returned once by `create_oauth_client`. Never printed by `Debug`.
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What an admin chooses when creating a client.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions<'a> {
    /// Issue refresh tokens with access tokens (`refresh_token` grant).
    pub refresh_tokens: bool,
    /// The user `client_credentials` tokens act as (username or id, in the client's org).
    pub run_as: Option<&'a str>,
    /// The acting user's password, needed when the client would act as that very user.
    pub current_password: Option<&'a crate::domain::secret::Password>,
}

/// Why a client could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRefusal {
    /// No client has this consumer key: `invalid_client_id`.
    UnknownClient,
    /// The consumer secret of this org's client is missing or wrong: `invalid_client`.
    BadSecret { org_id: String },
    /// This org's client is disabled (said only to a caller with the right secret).
    Disabled { org_id: String },
}

impl ClientRefusal {
    /// An unknown client or a wrong secret: someone guessing (a disabled client's right secret
    /// is a configuration problem, and counting it would lock out a shared address).
    pub fn is_guess(&self) -> bool {
        !matches!(self, ClientRefusal::Disabled { .. })
    }
}

/// What became of a token request whose client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalRecorded {
    /// Counted against the source address, with a login-history row.
    Counted,
    /// The address is over its failed-login limit: refused until then, nothing recorded.
    AddressLimited(time::OffsetDateTime),
}

/// Where a token request comes from, for login history (R-L9).
pub struct GrantRequest<'a> {
    pub source_ip: IpAddr,
    /// The User-Agent.
    pub user_agent: &'a str,
    pub login_url: &'a str,
}

/// The outcome of a `refresh_token` or `client_credentials` grant.
pub enum GrantOutcome {
    Issued(Box<LoginSession>),
    /// The user may not log in now (inactive, restricted IP, no API access).
    Refused(LoginOutcome, LoginStatus),
    /// The refresh token is unknown, revoked, or another client's.
    InvalidRefreshToken,
    /// `client_credentials` for a client without a run-as user.
    NoRunAsUser,
}

/// RFC 7662: what a token is, for a resource server.
pub enum Introspection {
    Inactive,
    Access(Arc<ActiveSession>, Option<Box<OAuthClient>>),
    Refresh {
        user: Box<User>,
        client: Box<OAuthClient>,
        issued_at: i64,
    },
}

impl Services {
    pub async fn create_oauth_client(
        &self,
        actor: &Actor,
        org_input: &str,
        name: &str,
        options: &ClientOptions<'_>,
    ) -> Result<(OAuthClient, ClientSecret)> {
        let name = validate::text("client name", name, 80, true)?;
        if let Some(input) = options.run_as {
            // A client acting as the acting user is a credential for the session's own account
            // that outlives the session and its password: the session alone must not mint it.
            // Checked before the transaction: no write lock is held across the hash.
            let mut c = self.db.conn().await?;
            let org = resolve::org(&mut c.as_conn(), org_input).await?;
            actor.check_org(&org.id)?;
            let user = resolve::user_seen(&mut c.as_conn(), actor, input).await?;
            if actor.is_user(&user.id) {
                drop(c);
                self.confirm_own_password(&org, &user, options.current_password)
                    .await?;
            }
        }
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let run_as = match options.run_as {
            Some(input) => {
                let user = resolve::user_seen(&mut tx.as_conn(), actor, input).await?;
                if user.org_id != org.id {
                    return Err(ServiceError::Invalid(format!(
                        "the run-as user {} is not in org {}",
                        user.username, org.name
                    )));
                }
                Some(user)
            }
            None => None,
        };
        // Shaped like Salesforce's consumer keys (`3MVG9` + 80 characters) so clients that
        // sanity-check them accept ours; 64 base62 characters of secret (381 bits).
        let client_id = format!("3MVG9{}", random_base62(80));
        let secret = ClientSecret(random_base62(64));
        let now = self.now_ms();
        let row = OAuthClientRow {
            id: new_id(KeyPrefix::OAuthClient),
            org_id: org.id.clone(),
            name: name.clone(),
            client_id,
            secret_digest: digest(&secret.0),
            issue_refresh_tokens: options.refresh_tokens,
            run_as_user_id: run_as.as_ref().map(|u| u.id.clone()),
            created_at: now,
            enabled: true,
        };
        oauth::insert(&mut tx.as_conn(), &row).await?;
        let mut display = format!("Created OAuth client {name}");
        if options.refresh_tokens {
            display.push_str(" (issues refresh tokens)");
        }
        if let Some(u) = &run_as {
            display.push_str(&format!(" (client credentials run as {})", u.username));
        }
        audit::record(
            &mut tx.as_conn(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: "oauth_client.created",
                section: audit::CONNECTED_APPS,
                display,
                target_id: Some(&row.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((row.into(), secret))
    }

    pub async fn list_oauth_clients(
        &self,
        actor: &Actor,
        org_input: &str,
    ) -> Result<Vec<OAuthClient>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        Ok(all(oauth::list(&mut c.as_conn(), &org.id).await?))
    }

    /// Authenticates a client by consumer key and secret. The secret is compared as a digest in
    /// constant time; an unknown key costs the same digest.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<std::result::Result<OAuthClient, ClientRefusal>> {
        // A consumer key is base62: anything else (a NUL, which PostgreSQL cannot even compare)
        // names no client, and is not looked up.
        let found = if client_id.is_empty()
            || client_id.len() > 255
            || !client_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            None
        } else {
            self.find_client(client_id).await?
        };
        let sent = digest(secret);
        Ok(match found {
            None => Err(ClientRefusal::UnknownClient),
            Some(row) if secret.is_empty() || !ct_eq(&sent, &row.secret_digest) => {
                Err(ClientRefusal::BadSecret { org_id: row.org_id })
            }
            Some(row) if !row.enabled => Err(ClientRefusal::Disabled { org_id: row.org_id }),
            Some(row) => Ok(row.into()),
        })
    }

    /// The client with this consumer key, from this node's memory when it was read less than
    /// `session_cache.ttl_ms` ago: a secret rotated, or a client disabled or deleted, on this
    /// node is seen at once (`commit_client_change`), on another within that time.
    async fn find_client(&self, client_id: &str) -> Result<Option<OAuthClientRow>> {
        let now = self.now_ms();
        if let Some(hit) = self.client_cache.get(client_id, now) {
            return Ok(Some(hit));
        }
        let generation = self.client_cache.generation();
        let mut c = self.db.conn().await?;
        let found = oauth::find_by_client_id(&mut c.as_conn(), client_id).await?;
        if let Some(row) = &found {
            self.client_cache
                .put(client_id, row.clone(), now, generation);
        }
        Ok(found)
    }

    /// One client, by consumer key or id, as the actor may see it.
    pub async fn get_oauth_client(&self, actor: &Actor, client_input: &str) -> Result<OAuthClient> {
        let mut c = self.db.conn().await?;
        Ok(resolve::oauth_client(&mut c.as_conn(), actor, client_input)
            .await?
            .into())
    }

    /// A new consumer secret for the client, shown once; the old one is refused from the
    /// commit on. Tokens already issued stay valid: rotation replaces the client's own
    /// credential, not its users' grants.
    pub async fn rotate_client_secret(
        &self,
        actor: &Actor,
        client_input: &str,
        current_password: Option<&crate::domain::secret::Password>,
    ) -> Result<(OAuthClient, ClientSecret)> {
        {
            // A client that acts as the acting user is that user's credential: its new secret
            // takes their password, as creating it did.
            let mut c = self.db.conn().await?;
            let found = resolve::oauth_client(&mut c.as_conn(), actor, client_input).await?;
            if let Some(me) = found
                .run_as_user_id
                .as_deref()
                .filter(|id| actor.is_user(id))
            {
                let user = resolve::user_seen(&mut c.as_conn(), actor, me).await?;
                let org = resolve::org(&mut c.as_conn(), &found.org_id).await?;
                drop(c);
                self.confirm_own_password(&org, &user, current_password)
                    .await?;
            }
        }
        let mut tx = self.db.begin().await?;
        let found = resolve::oauth_client(&mut tx.as_conn(), actor, client_input).await?;
        // Locked: of two rotations at once, the second waits, and the secret it answers is the
        // one that works.
        let mut client = oauth::get_for_update(&mut tx.as_conn(), &found.org_id, &found.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no OAuth client {client_input}")))?;
        let secret = ClientSecret(random_base62(64));
        client.secret_digest = digest(&secret.0);
        oauth::set_secret_digest(
            &mut tx.as_conn(),
            &client.org_id,
            &client.id,
            &client.secret_digest,
        )
        .await?;
        let display = format!("Rotated the secret of OAuth client {}", client.name);
        self.client_event(
            &mut tx,
            actor,
            &client,
            "oauth_client.secret_rotated",
            display,
        )
        .await?;
        self.commit_client_change(tx).await?;
        Ok((client.into(), secret))
    }

    /// Disables a client (its access tokens end; its refresh tokens and every grant are
    /// refused until it is enabled) or enables it again. False when it already was so.
    pub async fn set_client_enabled(
        &self,
        actor: &Actor,
        client_input: &str,
        enabled: bool,
    ) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let client = resolve::oauth_client(&mut tx.as_conn(), actor, client_input).await?;
        if !oauth::set_enabled(&mut tx.as_conn(), &client.org_id, &client.id, enabled).await? {
            return Ok(false);
        }
        let (action, verb) = if enabled {
            ("oauth_client.enabled", "Enabled")
        } else {
            ("oauth_client.disabled", "Disabled")
        };
        let display = format!("{verb} OAuth client {}", client.name);
        self.client_event(&mut tx, actor, &client, action, display)
            .await?;
        self.commit_client_change(tx).await?;
        Ok(true)
    }

    /// Deletes a client: every access and refresh token issued to it stops working at once.
    pub async fn delete_oauth_client(&self, actor: &Actor, client_input: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let client = resolve::oauth_client(&mut tx.as_conn(), actor, client_input).await?;
        oauth::delete(&mut tx.as_conn(), &client.org_id, &client.id).await?;
        let display = format!("Deleted OAuth client {}", client.name);
        self.client_event(&mut tx, actor, &client, "oauth_client.deleted", display)
            .await?;
        self.commit_client_change(tx).await
    }

    async fn client_event(
        &self,
        tx: &mut crate::store::Tx,
        actor: &Actor,
        client: &OAuthClientRow,
        action: &'static str,
        display: String,
    ) -> Result<()> {
        audit::record(
            &mut tx.as_conn(),
            self.now_ms(),
            actor,
            Entry {
                org_id: &client.org_id,
                action,
                section: audit::CONNECTED_APPS,
                display,
                target_id: Some(&client.id),
            },
        )
        .await
    }

    /// Commits a change to a client and its tokens, then drops this node's memory of clients
    /// and session checks (also when the commit's outcome is unknown).
    async fn commit_client_change(&self, tx: crate::store::Tx) -> Result<()> {
        let committed = self.commit_session_change(tx).await;
        self.client_cache.forget_all();
        committed
    }

    /// A token request whose client was refused: a failed attempt against the source
    /// address's limit (a client secret is guessed like a password), refused outright when the
    /// address is over the limit. Its login-history row (R-L9) names no user — the request
    /// never reached the user it named — and the org only when the client is that org's. A
    /// disabled client's right secret is no guess: recorded, not counted.
    pub async fn record_client_refusal(
        &self,
        refusal: &ClientRefusal,
        client_id: &str,
        grant: &GrantRequest<'_>,
    ) -> Result<RefusalRecorded> {
        let _admitted = match self.admit_address(grant.source_ip).await? {
            super::throttle::Admission::Admitted(a) => a,
            super::throttle::Admission::Refused(until) => {
                self.metrics
                    .count_login(Channel::OAuth, LoginStatus::LoginRateExceeded);
                return Ok(RefusalRecorded::AddressLimited(until));
            }
        };
        let org_id = match refusal {
            ClientRefusal::UnknownClient => None,
            ClientRefusal::BadSecret { org_id } | ClientRefusal::Disabled { org_id } => {
                Some(org_id.as_str())
            }
        };
        let attempt = Attempt {
            channel: Channel::OAuth,
            source_ip: grant.source_ip,
            status: LoginStatus::InvalidClient,
            client: client_id,
            api_version: "",
            login_url: grant.login_url,
            credential: "",
        };
        let mut tx = self.db.begin().await?;
        record_org_attempt(&mut tx.as_conn(), self.now_ms(), org_id, &attempt).await?;
        if refusal.is_guess() {
            self.count_address_failure(&mut tx.as_conn(), grant.source_ip)
                .await?;
        }
        tx.commit().await?;
        self.metrics
            .count_login(Channel::OAuth, LoginStatus::InvalidClient);
        Ok(RefusalRecorded::Counted)
    }

    /// An introspecting client that was refused: a guess against the source address's limit
    /// (introspection is no login, so no login-history row). `Some(until)` when the address is
    /// refused: then nothing is counted.
    pub async fn count_introspection_refusal(
        &self,
        refusal: &ClientRefusal,
        source_ip: IpAddr,
    ) -> Result<Option<time::OffsetDateTime>> {
        let _admitted = match self.admit_address(source_ip).await? {
            super::throttle::Admission::Admitted(a) => a,
            super::throttle::Admission::Refused(until) => return Ok(Some(until)),
        };
        if refusal.is_guess() {
            let mut tx = self.db.begin().await?;
            self.count_address_failure(&mut tx.as_conn(), source_ip)
                .await?;
            tx.commit().await?;
        }
        Ok(None)
    }

    /// The `refresh_token` grant: a new access token for the user the refresh token was issued
    /// to, if the user may still log in.
    pub async fn oauth_refresh(
        &self,
        client: &OAuthClient,
        refresh_token: &str,
        grant: &GrantRequest<'_>,
    ) -> Result<GrantOutcome> {
        let Some(rt) = RefreshToken::parse(refresh_token) else {
            return Ok(GrantOutcome::InvalidRefreshToken);
        };
        let mut tx = self.db.begin().await?;
        let row = match sessions::get_refresh(&mut tx.as_conn(), &rt.digest()).await? {
            Some(r) if r.oauth_client_id == client.id && r.org_id == client.org_id => r,
            _ => return Ok(GrantOutcome::InvalidRefreshToken),
        };
        // The user row first, then the refresh token again, both locked — the order every
        // other writer of these rows follows — so a revocation, password change or deactivation
        // that commits meanwhile is seen here and no access token outlives it.
        let Some(user) =
            users::get_for_update(&mut tx.as_conn(), &row.org_id, &row.user_id).await?
        else {
            return Ok(GrantOutcome::InvalidRefreshToken);
        };
        if sessions::get_refresh_for_update(&mut tx.as_conn(), &rt.digest())
            .await?
            .is_none()
        {
            return Ok(GrantOutcome::InvalidRefreshToken);
        }
        // A refresh token from an integration-token login stops with that token (revoked,
        // expired, or rotated and past the grace window).
        if let Some(t) = &row.integration_token_id
            && !super::integration::logs_in(&mut tx.as_conn(), &row.org_id, t, self.now_ms())
                .await?
        {
            sessions::delete_refresh(&mut tx.as_conn(), &rt.digest()).await?;
            tx.commit().await?;
            return Ok(GrantOutcome::InvalidRefreshToken);
        }
        let known = load_user(&mut tx.as_conn(), user).await?;
        let outcome = self
            .grant(
                &mut tx,
                &known,
                client,
                grant,
                Some((rt.digest(), row.integration_token_id.clone())),
            )
            .await?;
        if matches!(outcome, GrantOutcome::Issued(_)) {
            sessions::touch_refresh(&mut tx.as_conn(), &rt.digest(), self.now_ms()).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The `client_credentials` grant: an access token for the client's run-as user.
    pub async fn oauth_client_credentials(
        &self,
        client: &OAuthClient,
        grant: &GrantRequest<'_>,
    ) -> Result<GrantOutcome> {
        let Some(user_id) = &client.run_as_user_id else {
            return Ok(GrantOutcome::NoRunAsUser);
        };
        let mut tx = self.db.begin().await?;
        let Some(user) = users::get_for_update(&mut tx.as_conn(), &client.org_id, user_id).await?
        else {
            return Ok(GrantOutcome::NoRunAsUser);
        };
        let known = load_user(&mut tx.as_conn(), user).await?;
        let outcome = self.grant(&mut tx, &known, client, grant, None).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Decides a grant that proves no password and, if allowed, creates the access token; one
    /// login-history row either way.
    async fn grant(
        &self,
        tx: &mut crate::store::Tx,
        known: &Known,
        client: &OAuthClient,
        grant: &GrantRequest<'_>,
        refresh: Option<(String, Option<String>)>,
    ) -> Result<GrantOutcome> {
        let (refresh_digest, integration_token_id) = refresh.unzip();
        let now = self.now();
        let policy = policy_of(&known.org);
        let ctx = LoginContext {
            channel: Channel::OAuth,
            source_ip: grant.source_ip,
            now,
            trusted_ranges: &known.trusted_ranges,
            policy: &policy,
            device_verified: false,
        };
        let decision = login::decide_grant(Some(&subject_of(known, &known.user)), &ctx);
        let attempt = Attempt {
            channel: Channel::OAuth,
            source_ip: grant.source_ip,
            status: decision.status,
            client: &client.client_id,
            api_version: "",
            login_url: grant.login_url,
            credential: if refresh_digest.is_some() {
                super::attempt::credential::REFRESH_TOKEN
            } else {
                super::attempt::credential::CLIENT_CREDENTIALS
            },
        };
        record_attempt(
            &mut tx.as_conn(),
            crate::clock::ms(now),
            Some(&known.user),
            &attempt,
        )
        .await?;
        self.metrics.count_login(Channel::OAuth, decision.status);
        if !matches!(decision.outcome, LoginOutcome::Success { .. }) {
            return Ok(GrantOutcome::Refused(decision.outcome, decision.status));
        }
        let (issued, mut row) = new_session(
            now,
            known,
            Channel::OAuth,
            grant.source_ip,
            false,
            Some(client.id.clone()),
            refresh_digest,
        );
        row.integration_token_id = integration_token_id.flatten();
        sessions::insert(&mut tx.as_conn(), &row).await?;
        Ok(GrantOutcome::Issued(Box::new(
            issued.into_session(known.org.clone(), known.user.clone()),
        )))
    }

    /// RFC 7662 introspection by an authenticated client: tokens of other orgs are inactive
    /// to it (R-M1).
    pub async fn introspect(&self, client: &OAuthClient, token: &str) -> Result<Introspection> {
        if SessionId::parse(token).is_some() {
            let Some(active) = self.check_api_session(token).await? else {
                return Ok(Introspection::Inactive);
            };
            // Another org's token, or an expired password's session (it allows nothing but the
            // password change), is not active to a resource server.
            if active.org.id != client.org_id || active.session.password_expired {
                return Ok(Introspection::Inactive);
            }
            let issued_to = match &active.session.oauth_client_id {
                // Most often the client asking issued the token: no second read.
                Some(id) if *id == client.id => Some(client.clone()),
                Some(id) => {
                    let mut c = self.db.conn().await?;
                    oauth::get(&mut c.as_conn(), &active.org.id, id)
                        .await?
                        .map(OAuthClient::from)
                }
                None => None,
            };
            return Ok(Introspection::Access(active, issued_to.map(Box::new)));
        }
        let Some(rt) = RefreshToken::parse(token) else {
            return Ok(Introspection::Inactive);
        };
        let mut c = self.db.conn().await?;
        let Some(row) = sessions::get_refresh(&mut c.as_conn(), &rt.digest()).await? else {
            return Ok(Introspection::Inactive);
        };
        if row.org_id != client.org_id {
            return Ok(Introspection::Inactive);
        }
        let user = users::get(&mut c.as_conn(), &row.org_id, &row.user_id).await?;
        let issued_by = oauth::get(&mut c.as_conn(), &row.org_id, &row.oauth_client_id).await?;
        Ok(match (user, issued_by) {
            // A disabled client's refresh tokens are refused, so not active.
            (Some(user), Some(client)) if user.active && client.enabled => Introspection::Refresh {
                user: Box::new(user.into()),
                client: Box::new(client.into()),
                issued_at: row.created_at,
            },
            _ => Introspection::Inactive,
        })
    }
}

/// An OAuth client as the password grant hands it to the login service.
pub fn issue_to(client: &OAuthClient) -> OAuthIssue {
    OAuthIssue {
        id: client.id.clone(),
        refresh_tokens: client.issue_refresh_tokens,
    }
}
