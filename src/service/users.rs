//! Users: creation, passwords (set by an admin, changed by the user), activation, unlocking.
//! Every password change issues a new token and emails it in the same transaction (R-T6, R-T7).

use super::attempt::lockout_of;
use super::audit;
use super::outbox::enqueue;
use super::sessions::ActiveSession;
use super::tokens::{TokenReason, issue, recipient};
use super::views::policy_of;
use super::views::{User, all};
use super::{Actor, Result, ServiceError, Services, fmt_time, new_id, resolve};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::domain::policy::PasswordRejected;
use crate::domain::profile::STANDARD_USER;
use crate::domain::secret::Password;
use crate::domain::validate;
use crate::mail;
use crate::store::orgs::{self, OrgRow};
use crate::store::profiles::ProfileRow;
use crate::store::users::{self, UserRow};
use crate::store::{Conn, StoreError, profiles, sessions, verification};

pub struct NewUser<'a> {
    pub org: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// Profile name or id; `Standard User` when absent.
    pub profile: Option<&'a str>,
}

/// A user as `user show` and the admin pages present them: no secret, not even a digest.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: User,
    pub org_name: String,
    pub profile_name: String,
    pub locked: bool,
    pub tokens_issued: i64,
    pub active_sessions: i64,
}

/// How a password is being set, for the mail, the audit trail and the sessions it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordSet {
    /// R-T7
    First,
    /// R-T6: an admin reset it; every session ends (R-L10).
    AdminReset,
    /// R-T6: the user changed it; their other sessions end (R-L10).
    OwnChange,
}

impl Services {
    pub async fn create_user(
        &self,
        actor: &Actor,
        new: &NewUser<'_>,
        password: Option<&Password>,
    ) -> Result<User> {
        let mut user = new_user_row(new, self.now_ms())?;
        let (org, profile) = {
            let mut c = self.db.conn().await?;
            let org = resolve::org(&mut c.as_conn(), new.org).await?;
            actor.check_org(&org.id)?;
            let profile =
                resolve::profile(&mut c.as_conn(), &org, new.profile.unwrap_or(STANDARD_USER))
                    .await?;
            if users::find_by_username(&mut c.as_conn(), &user.username)
                .await?
                .is_some()
            {
                return Err(taken(&user.username));
            }
            (org, profile)
        };
        user.org_id = org.id.clone();
        user.profile_id = profile.id.clone();
        // The hash is computed before the transaction: a write lock is never held across it.
        let hash = match password {
            Some(pw) => {
                policy_of(&org).check_password(pw, &user.username)?;
                Some(self.hasher.hash(pw).await?)
            }
            None => None,
        };
        let mut tx = self.db.begin().await?;
        self.insert_user(
            &mut tx.as_conn(),
            actor,
            &org,
            &profile.name,
            &user,
            hash.as_deref(),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(user.into())
    }

    /// Inserts a validated user, with the audit row and, given a password hash, the first
    /// password and token (R-T7), in the caller's transaction.
    pub(crate) async fn insert_user(
        &self,
        c: &mut Conn<'_>,
        actor: &Actor,
        org: &OrgRow,
        profile_name: &str,
        user: &UserRow,
        hash: Option<&str>,
    ) -> Result<()> {
        match users::insert(c, user).await {
            Err(StoreError::Conflict(_)) => return Err(taken(&user.username)),
            r => r?,
        }
        audit::user_event(
            c,
            user.created_at,
            actor,
            user,
            "user.created",
            format!("Created user {} with profile {profile_name}", user.username),
        )
        .await?;
        if let Some(hash) = hash {
            self.store_password(c, actor, org, user, hash, PasswordSet::First, None)
                .await?;
        }
        Ok(())
    }

    pub async fn show_user(&self, actor: &Actor, input: &str) -> Result<UserView> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let org = orgs::get(&mut c.as_conn(), &user.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
        let profile = self.profile_of(&mut c.as_conn(), &user).await?;
        let tokens_issued = users::token_count(&mut c.as_conn(), &user.org_id, &user.id).await?;
        let now = self.now_ms();
        let mut live =
            sessions::list_for_user(&mut c.as_conn(), &user.org_id, &user.id, now).await?;
        live.retain_mut(|s| super::sessions::still_live(&org, s, now));
        let active_sessions = i64::try_from(live.len()).unwrap_or(i64::MAX);
        Ok(UserView {
            locked: lockout_of(&user).is_locked(self.now()),
            org_name: org.name,
            profile_name: profile.name,
            tokens_issued,
            active_sessions,
            user: user.into(),
        })
    }

    /// A page of the org's users for Setup and the API: up to `limit` (1–1000) in username
    /// order after `after`, matching `query` (username, email or name) when given.
    pub async fn search_users(
        &self,
        actor: &Actor,
        org_input: &str,
        query: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<User>> {
        let query = validate::filter("search text", query.unwrap_or(""), 100)?;
        let after = validate::filter("after", after.unwrap_or(""), 255)?.to_lowercase();
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
        Ok(all(users::search(
            &mut c.as_conn(),
            &org.id,
            nonempty(&query).as_deref(),
            nonempty(&after).as_deref(),
            limit.clamp(1, 1000),
        )
        .await?))
    }

    pub async fn list_users(&self, actor: &Actor, org_input: &str) -> Result<Vec<User>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        Ok(all(users::list(&mut c.as_conn(), &org.id).await?))
    }

    async fn profile_of(&self, c: &mut Conn<'_>, user: &UserRow) -> Result<ProfileRow> {
        profiles::get(c, &user.org_id, &user.profile_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("user without profile".into()))
    }

    /// Checks a new password against the org's policy and the user's recent passwords, and
    /// hashes it. Runs outside any transaction: it costs up to `password_history + 1` hashes.
    async fn prepare_password(
        &self,
        org: &OrgRow,
        user: &UserRow,
        password: &Password,
    ) -> Result<String> {
        let policy = policy_of(org);
        policy.check_password(password, &user.username)?;
        if policy.password_history > 0 {
            let recent = {
                let mut c = self.db.conn().await?;
                users::recent_password_hashes(
                    &mut c.as_conn(),
                    &user.org_id,
                    &user.id,
                    i64::from(policy.password_history),
                )
                .await?
            };
            for old in &recent {
                if self.hasher.verify(password, Some(old)).await? {
                    return Err(PasswordRejected::Reused(policy.password_history).into());
                }
            }
        }
        Ok(self.hasher.hash(password).await?)
    }

    /// Stores a prepared password hash, issues and mails the new token, ends sessions and
    /// writes the audit row — all in the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    async fn store_password(
        &self,
        c: &mut Conn<'_>,
        actor: &Actor,
        org: &OrgRow,
        user: &UserRow,
        hash: &str,
        how: PasswordSet,
        keep_session: Option<&str>,
    ) -> Result<()> {
        let now = self.now_ms();
        users::set_password(c, &user.org_id, &user.id, hash, now).await?;
        let keep = i64::from(policy_of(org).password_history.max(1));
        users::prune_password_history(c, &user.org_id, &user.id, keep).await?;
        let (reason, action, display) = match how {
            PasswordSet::First => (
                TokenReason::FirstPassword,
                "password.set",
                format!("Set the first password of user {}", user.username),
            ),
            PasswordSet::AdminReset => (
                TokenReason::PasswordReset,
                "password.reset",
                format!("Reset the password of user {}", user.username),
            ),
            PasswordSet::OwnChange => (
                TokenReason::PasswordChanged,
                "password.changed",
                format!("Changed own password ({})", user.username),
            ),
        };
        let ended = match (how, keep_session) {
            (PasswordSet::First, _) => 0,
            (_, Some(keep)) => sessions::delete_others(c, &user.org_id, &user.id, keep).await?,
            (_, None) => sessions::delete_for_user(c, &user.org_id, &user.id).await?,
        };
        // A pending identity verification was for the old password.
        verification::delete_challenges_of(c, &user.org_id, &user.id).await?;
        if how == PasswordSet::AdminReset {
            // As in Salesforce, an admin's password reset also unlocks the user. It is also how
            // an account is recovered after a compromise: every verified browser is forgotten.
            users::unlock(c, &user.org_id, &user.id, now).await?;
            verification::delete_browsers(c, &user.org_id, &user.id).await?;
        }
        if how != PasswordSet::First {
            let email = mail::password_changed(
                &recipient(user),
                if how == PasswordSet::AdminReset {
                    "reset by an administrator"
                } else {
                    "changed"
                },
                &fmt_time(self.now()),
                ended > 0,
            );
            enqueue(c, now, Some(&user.org_id), email).await?;
        }
        issue(c, now, user, reason).await?;
        audit::user_event(c, now, actor, user, action, display).await
    }

    /// An admin sets a user's password (`keyward user set-password`): the first password, or a
    /// reset that ends every session of the user (R-L10). Either way a new token is emailed.
    pub async fn set_password(
        &self,
        actor: &Actor,
        user_input: &str,
        password: &Password,
    ) -> Result<User> {
        let (org, user) = self.user_and_org(actor, user_input).await?;
        actor.check_org(&org.id)?;
        if actor.is_user(&user.id) {
            // A session alone must not be enough to replace its own user's password: whoever
            // holds a stolen admin session would lock the admin out.
            return Err(ServiceError::Refused(
                "you cannot reset your own password as an administrator: change it under My \
                 Settings, where the current password is required"
                    .into(),
            ));
        }
        let hash = self.prepare_password(&org, &user, password).await?;
        let mut tx = self.db.begin().await?;
        // Decided on the row as it is now, under its lock.
        let user = users::get_for_update(&mut tx.as_conn(), &user.org_id, &user.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user {}", user.username)))?;
        let how = if user.password_hash.is_none() {
            PasswordSet::First
        } else {
            PasswordSet::AdminReset
        };
        self.store_password(&mut tx.as_conn(), actor, &org, &user, &hash, how, None)
            .await?;
        self.commit_session_change(tx).await?;
        self.outbox.wake();
        Ok(user.into())
    }

    /// A user changes their own password: the current one is required; sessions other than
    /// `current_session` (the digest of the session making the change) end (R-L10).
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &Password,
        new: &Password,
        current_session: Option<&str>,
    ) -> Result<()> {
        let Actor::User { user_id, .. } = actor else {
            return Err(ServiceError::Refused(
                "only a logged-in user can change their own password".into(),
            ));
        };
        let (org, user) = self.user_and_org(actor, user_id).await?;
        self.confirm_own_password(&org, &user, Some(current))
            .await?;
        let hash = self.prepare_password(&org, &user, new).await?;
        self.commit_own_password(actor, &org, &user, &hash, current_session.unwrap_or(""))
            .await
    }

    /// Stores a user's own new password — if the hash the caller checked against is still the
    /// current one (otherwise the check proves nothing) — keeping the session `keep` (a digest)
    /// and clearing its expired-password flag, ending the others (R-L10), mailing the new token.
    async fn commit_own_password(
        &self,
        actor: &Actor,
        org: &OrgRow,
        user: &UserRow,
        hash: &str,
        keep: &str,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let fresh = users::get_for_update(&mut tx.as_conn(), &user.org_id, &user.id).await?;
        if fresh.as_ref().map(|u| &u.password_hash) != Some(&user.password_hash) {
            return Err(ServiceError::Conflict(
                "the password was changed meanwhile; try again".into(),
            ));
        }
        self.store_password(
            &mut tx.as_conn(),
            actor,
            org,
            user,
            hash,
            PasswordSet::OwnChange,
            Some(keep),
        )
        .await?;
        sessions::clear_password_expired(&mut tx.as_conn(), keep).await?;
        self.commit_session_change(tx).await?;
        self.outbox.wake();
        Ok(())
    }

    /// SOAP `setPassword(userId, password)`: an administrator (a profile with "manage users")
    /// sets the password of another user of their org; a new token is emailed (R-T6) and every
    /// session of that user ends (R-L10). Never the caller's own password, whatever the
    /// session: a session alone — perhaps stolen — must not replace the credentials it came
    /// from. One's own password takes `changeOwnPassword`, which proves the current one.
    pub async fn set_password_with_session(
        &self,
        session: &ActiveSession,
        target_user_id: &str,
        new: &Password,
    ) -> Result<()> {
        let actor = self.actor_for(session).await?;
        let target = SfId::parse_as(target_user_id.trim(), KeyPrefix::User)?;
        if target.as_15() == session.user.id {
            return Err(ServiceError::Refused(
                "setPassword() does not set your own password: call changeOwnPassword(\
                 oldPassword, newPassword), which proves the current one"
                    .into(),
            ));
        }
        if session.session.password_expired {
            return Err(ServiceError::Refused(
                "your password has expired: change it with changeOwnPassword() before \
                 anything else"
                    .into(),
            ));
        }
        if !matches!(actor, Actor::User { admin: true, .. }) {
            return Err(ServiceError::Refused(
                "only an administrator (a profile with \"manage users\") can set another \
                 user's password"
                    .into(),
            ));
        }
        self.set_password(&actor, target.as_15(), new).await?;
        Ok(())
    }

    /// A user proves it is them before a sensitive change made with a session (their password,
    /// email, authenticator): a session alone, perhaps stolen, is not enough. A wrong password
    /// counts as a failed login (R-L5), so a session cannot be used to guess it, and a locked
    /// user is refused without a hash.
    pub(crate) async fn confirm_own_password(
        &self,
        org: &OrgRow,
        user: &UserRow,
        password: Option<&Password>,
    ) -> Result<()> {
        let refused = || ServiceError::Refused("the current password is wrong".into());
        if lockout_of(user).is_locked(self.now()) {
            return Err(ServiceError::Refused(
                "your user is locked after too many failed attempts; try again later or ask an \
                 administrator to unlock it"
                    .into(),
            ));
        }
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Err(ServiceError::Refused(
                "enter your current password to confirm this change".into(),
            ));
        };
        if self
            .hasher
            .verify(password, user.password_hash.as_deref())
            .await?
        {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        if let Some(fresh) =
            users::get_for_update(&mut tx.as_conn(), &user.org_id, &user.id).await?
        {
            let recorded =
                super::attempt::count_failure(&mut tx.as_conn(), self.now(), org, &fresh).await?;
            tx.commit().await?;
            if recorded == users::FailureRecorded::LockEngaged {
                self.outbox.wake();
            }
        }
        Err(refused())
    }

    async fn user_and_org(&self, actor: &Actor, user_input: &str) -> Result<(OrgRow, UserRow)> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let org = orgs::get(&mut c.as_conn(), &user.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
        Ok((org, user))
    }

    /// R-T8: every login fails and every session ends; the token digest stays. Returns false
    /// when the user was already inactive (nothing changes).
    pub async fn deactivate(&self, actor: &Actor, user_input: &str) -> Result<bool> {
        self.set_active(actor, user_input, false).await
    }

    /// R-T8: the same token works again.
    pub async fn reactivate(&self, actor: &Actor, user_input: &str) -> Result<bool> {
        self.set_active(actor, user_input, true).await
    }

    async fn set_active(&self, actor: &Actor, user_input: &str, active: bool) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen_for_update(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_org(&user.org_id)?;
        if actor.is_user(&user.id) && !active {
            return Err(ServiceError::Refused(
                "you cannot deactivate yourself".into(),
            ));
        }
        if user.active == active {
            return Ok(false);
        }
        let now = self.now_ms();
        users::set_active(&mut tx.as_conn(), &user.org_id, &user.id, active, now).await?;
        if !active {
            sessions::delete_for_user(&mut tx.as_conn(), &user.org_id, &user.id).await?;
            verification::delete_challenges_of(&mut tx.as_conn(), &user.org_id, &user.id).await?;
        }
        audit::user_event(
            &mut tx.as_conn(),
            now,
            actor,
            &user,
            if active {
                "user.reactivated"
            } else {
                "user.deactivated"
            },
            format!(
                "{} user {}",
                if active { "Reactivated" } else { "Deactivated" },
                user.username
            ),
        )
        .await?;
        self.commit_session_change(tx).await?;
        Ok(true)
    }

    /// Clears a lockout (R-L5). Returns false when the user was not locked.
    pub async fn unlock(&self, actor: &Actor, user_input: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen_for_update(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_org(&user.org_id)?;
        let now = self.now_ms();
        let was_locked = users::unlock(&mut tx.as_conn(), &user.org_id, &user.id, now).await?;
        if was_locked {
            audit::user_event(
                &mut tx.as_conn(),
                now,
                actor,
                &user,
                "user.unlocked",
                format!("Unlocked user {}", user.username),
            )
            .await?;
        }
        self.commit_session_change(tx).await?;
        Ok(was_locked)
    }
}

/// A user row from what an admin typed, validated; `org_id` and `profile_id` are left for the
/// caller to fill in.
pub(crate) fn new_user_row(new: &NewUser<'_>, now: i64) -> Result<UserRow> {
    Ok(UserRow {
        previous_token_digest: None,
        previous_token_until: None,
        id: new_id(KeyPrefix::User),
        org_id: String::new(),
        profile_id: String::new(),
        username: validate::username(new.username)?,
        email: validate::email(new.email)?,
        first_name: validate::text("first name", new.first_name, 40, false)?,
        last_name: validate::text("last name", new.last_name, 80, false)?,
        active: true,
        password_hash: None,
        password_changed_at: None,
        token_digest: None,
        token_issued_at: None,
        failed_logins: 0,
        locked_until: None,
        last_login_at: None,
        created_at: now,
        updated_at: now,
    })
}

fn taken(username: &str) -> ServiceError {
    ServiceError::Conflict(format!("the username {username} is already taken"))
}
