//! Personal settings and user edits: name and email (a changed email is announced to the old
//! address), whether the token may be reset (R-T9), a user's own login history and sessions.

use super::tokens::{recipient, reset_refusal};
use super::views::{LoginAttempt, Session, User, all};
use super::{Actor, Result, ServiceError, Services, audit, fmt_time, resolve};
use crate::domain::validate;
use crate::mail;
use crate::store::login_history::{self, Filter};
use crate::store::sessions::{self};
use crate::store::users::{self};

/// A change to a user's details. `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserChange {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// Admins only: profile name or id.
    pub profile: Option<String>,
    /// A user changing their own email confirms it with their password (the address receives
    /// the tokens and verification codes).
    pub current_password: Option<crate::domain::secret::Password>,
}

impl Services {
    /// Edits a user: the user themselves (name, email) or an admin of the org (also the
    /// profile). Changing the email sends a notice to the old address (the new one receives the
    /// tokens from now on, so the owner of the old one must hear about it). Audited (R-M4).
    pub async fn update_user(
        &self,
        actor: &Actor,
        user_input: &str,
        change: &UserChange,
    ) -> Result<User> {
        if let Some(email) = &change.email {
            // Your own email receives your tokens and verification codes: changing it takes the
            // password, not just a session (which might be stolen). Checked before the
            // transaction, so no write lock is held across the hash.
            let mut c = self.db.conn().await?;
            let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
            if actor.is_user(&user.id) && validate::email(email)? != user.email {
                let org = resolve::org(&mut c.as_conn(), &user.org_id).await?;
                drop(c);
                self.confirm_own_password(&org, &user, change.current_password.as_ref())
                    .await?;
            }
        }
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen_for_update(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let mut new = user.clone();
        if let Some(f) = &change.first_name {
            new.first_name = validate::text("first name", f, 40, false)?;
        }
        if let Some(l) = &change.last_name {
            new.last_name = validate::text("last name", l, 80, false)?;
        }
        if let Some(e) = &change.email {
            new.email = validate::email(e)?;
        }
        let mut what = Vec::new();
        if let Some(p) = &change.profile {
            let org = resolve::org(&mut tx.as_conn(), &user.org_id).await?;
            let profile = resolve::profile(&mut tx.as_conn(), &org, p).await?;
            if profile.id != user.profile_id {
                actor.check_org(&user.org_id)?;
                if actor.is_user(&user.id) && !profile.manage_users {
                    return Err(ServiceError::Refused(
                        "you cannot take away your own administrator profile; ask another \
                         administrator"
                            .into(),
                    ));
                }
                what.push(format!("profile {}", profile.name));
                new.profile_id = profile.id;
            }
        }
        if new.first_name != user.first_name || new.last_name != user.last_name {
            what.push(format!("name {}", new.full_name()));
        }
        if new.email != user.email {
            what.push(format!("email {}", new.email));
        }
        if what.is_empty() {
            return Ok(user.into());
        }
        let now = self.now();
        let now_ms = crate::clock::ms(now);
        users::update_details(&mut tx.as_conn(), &new, now_ms).await?;
        if new.email != user.email {
            let notice = mail::email_changed(
                &recipient(&new),
                &user.email,
                &fmt_time(now),
                &actor.audit_name(),
            );
            super::outbox::enqueue(&mut tx.as_conn(), now_ms, Some(&user.org_id), notice).await?;
        }
        audit::user_event(
            &mut tx.as_conn(),
            now_ms,
            actor,
            &new,
            "user.updated",
            format!("Changed user {}: {}", user.username, what.join(", ")),
        )
        .await?;
        self.commit_session_change(tx).await?;
        if new.email != user.email {
            self.outbox.wake();
        }
        Ok(new.into())
    }

    /// R-T9: why this user may not reset their token (the page hides the option then).
    pub async fn token_reset_refusal(
        &self,
        actor: &Actor,
        user_input: &str,
    ) -> Result<Option<String>> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        reset_refusal(&mut c.as_conn(), &user).await
    }

    /// A user's own login history, newest first.
    pub async fn my_login_history(&self, actor: &Actor, limit: i64) -> Result<Vec<LoginAttempt>> {
        let (org_id, user_id) = actor.own()?;
        let mut c = self.db.conn().await?;
        Ok(all(login_history::list(
            &mut c.as_conn(),
            &Filter {
                org_id: Some(org_id.into()),
                user_id: Some(user_id.into()),
                limit: limit.clamp(1, 1000),
                ..Filter::default()
            },
        )
        .await?))
    }

    /// The user's live sessions (web, SOAP and OAuth), newest first.
    pub async fn sessions_of(&self, actor: &Actor, user_input: &str) -> Result<Vec<Session>> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let org = resolve::org(&mut c.as_conn(), &user.org_id).await?;
        let now = self.now_ms();
        let mut rows =
            sessions::list_for_user(&mut c.as_conn(), &user.org_id, &user.id, now).await?;
        // As the checks see them: by the org's timeout and lifetime as they are now.
        rows.retain_mut(|s| super::sessions::still_live(&org, s, now));
        Ok(all(rows))
    }

    /// Ends one session of a user, named by its digest (what the sessions page lists), with
    /// the refresh token it was issued with and that token's other access tokens.
    pub async fn end_session(&self, actor: &Actor, user_input: &str, digest: &str) -> Result<bool> {
        if !crate::crypto::looks_like_digest(digest) {
            return Ok(false);
        }
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let owner = sessions::Which::Of {
            org_id: &user.org_id,
            user_id: &user.id,
        };
        let ended = sessions::end(&mut tx.as_conn(), digest, owner).await?;
        if ended && !actor.is_user(&user.id) {
            audit::user_event(
                &mut tx.as_conn(),
                self.now_ms(),
                actor,
                &user,
                "session.ended",
                format!("Ended a session of user {}", user.username),
            )
            .await?;
        }
        self.commit_session_change(tx).await?;
        Ok(ended)
    }

    /// The user's OAuth refresh tokens, newest first: what each OAuth client can still mint
    /// access tokens with, listed beside the sessions.
    pub async fn refresh_tokens_of(
        &self,
        actor: &Actor,
        user_input: &str,
    ) -> Result<Vec<RefreshTokenView>> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let rows =
            sessions::list_refresh_for_user(&mut c.as_conn(), &user.org_id, &user.id).await?;
        Ok(rows.into_iter().map(RefreshTokenView::from).collect())
    }

    /// Revokes one refresh token of a user, named by its handle, and every access token it
    /// issued. False when there was no such token.
    pub async fn revoke_refresh_token(
        &self,
        actor: &Actor,
        user_input: &str,
        handle: &str,
    ) -> Result<bool> {
        if !crate::crypto::looks_like_digest(handle) {
            return Ok(false);
        }
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let revoked =
            sessions::delete_refresh_of_user(&mut tx.as_conn(), &user.org_id, &user.id, handle)
                .await?;
        if revoked && !actor.is_user(&user.id) {
            audit::user_event(
                &mut tx.as_conn(),
                self.now_ms(),
                actor,
                &user,
                "refresh_token.revoked",
                format!("Revoked an OAuth refresh token of user {}", user.username),
            )
            .await?;
        }
        self.commit_session_change(tx).await?;
        Ok(revoked)
    }
}

/// An OAuth refresh token as the sessions pages and the admin API show it: never the token
/// itself; its handle (a digest, useless for logging in) names it for revocation.
#[derive(Debug, Clone)]
pub struct RefreshTokenView {
    pub handle: String,
    /// The client's id (`0H4…`, 18 characters).
    pub client_id: String,
    /// Empty when the client was deleted.
    pub client_name: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

impl From<sessions::RefreshTokenEntry> for RefreshTokenView {
    fn from(r: sessions::RefreshTokenEntry) -> Self {
        RefreshTokenView {
            handle: r.digest,
            client_id: super::id18(&r.oauth_client_id),
            client_name: r.client_name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}
