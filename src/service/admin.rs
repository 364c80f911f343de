//! What Setup needs beyond the use cases the CLI already has: editing a profile's permissions,
//! one org's outbox and retrying dead mail.

use super::views::{Mail, Profile, all};
use super::{Actor, Result, ServiceError, Services, audit, id18, resolve};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::domain::profile::PermissionsChange;
use crate::store::outbox::{self};
use crate::store::profiles::{self};

impl Services {
    /// Changes some of a profile's permissions, leaving the others as they are (audited). An admin
    /// cannot take "manage users" away from their own profile: they would lock themselves out of
    /// Setup.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        org_input: &str,
        profile_input: &str,
        change: PermissionsChange,
    ) -> Result<Profile> {
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let found = resolve::profile(&mut tx.as_conn(), &org, profile_input).await?;
        // Merged with the row as it is now, locked: two patches of different permissions at
        // once both land.
        let mut profile = profiles::get_for_update(&mut tx.as_conn(), &org.id, &found.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no profile {profile_input:?}")))?;
        let current = super::views::permissions_of(&profile);
        let permissions = change.applied_to(current);
        if permissions == current {
            // An empty merge patch changes nothing, and records nothing.
            return Ok(profile.into());
        }
        if permissions.api_only && !permissions.api_enabled {
            return Err(ServiceError::Invalid(
                "an API-only profile needs \"API enabled\"".into(),
            ));
        }
        if let Actor::User { user_id, .. } = actor
            && !permissions.manage_users
            && profile.manage_users
        {
            let me = crate::store::users::get(&mut tx.as_conn(), &org.id, user_id).await?;
            if me.is_some_and(|u| u.profile_id == profile.id) {
                return Err(ServiceError::Refused(
                    "this is your own profile: removing \"manage users\" would lock you out of \
                     Setup"
                        .into(),
                ));
            }
        }
        profile.api_enabled = permissions.api_enabled;
        profile.api_only = permissions.api_only;
        profile.password_never_expires = permissions.password_never_expires;
        profile.sso_enabled = permissions.sso_enabled;
        profile.manage_users = permissions.manage_users;
        profiles::update_permissions(&mut tx.as_conn(), &profile).await?;
        let flags = [
            (profile.api_enabled, "API enabled"),
            (profile.api_only, "API only"),
            (profile.password_never_expires, "password never expires"),
            (profile.sso_enabled, "single sign-on"),
            (profile.manage_users, "manage users"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect::<Vec<_>>()
        .join(", ");
        audit::record(
            &mut tx.as_conn(),
            self.now_ms(),
            actor,
            audit::Entry {
                org_id: &org.id,
                action: "profile.updated",
                section: audit::PROFILES,
                display: format!(
                    "Changed the permissions of profile {} to: {flags}",
                    profile.name
                ),
                target_id: Some(&profile.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(profile.into())
    }

    pub async fn get_profile(
        &self,
        actor: &Actor,
        org_input: &str,
        profile_input: &str,
    ) -> Result<Profile> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        Ok(resolve::profile(&mut c.as_conn(), &org, profile_input)
            .await?
            .into())
    }

    /// Setup → Email Log: the org's mail, newest first; bodies as stored (no secret, R-T2).
    pub async fn org_mail(
        &self,
        actor: &Actor,
        org_input: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Mail>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let limit = limit.clamp(1, super::history::MAX_LIMIT);
        Ok(all(outbox::list_for_org(
            &mut c.as_conn(),
            &org.id,
            status,
            limit,
        )
        .await?))
    }

    /// Queues a dead message again (R-E1). A dead token or verification mail lost its secret
    /// when it died, so it cannot be resent: the token is reset instead (which mails a new one),
    /// or the user logs in again for a new code.
    pub async fn retry_mail(&self, actor: &Actor, org_input: &str, id: &str) -> Result<()> {
        let id = SfId::parse_as(id.trim(), KeyPrefix::Email)?;
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let Some(row) = outbox::get(&mut tx.as_conn(), id.as_15())
            .await?
            .filter(|r| r.org_id.as_deref() == Some(org.id.as_str()))
        else {
            return Err(ServiceError::NotFound(format!(
                "no mail with id {}",
                id.to_18()
            )));
        };
        if row.status != outbox::DEAD {
            return Err(ServiceError::Conflict(format!(
                "mail {} is {}, not dead: only dead mail can be retried",
                id.to_18(),
                row.status
            )));
        }
        match row.kind.as_str() {
            "security_token" => {
                return Err(ServiceError::Refused(
                    "an undelivered token mail no longer holds its token: reset the user's \
                     security token to mail a new one"
                        .into(),
                ));
            }
            "integration_token" => {
                return Err(ServiceError::Refused(
                    "an undelivered integration-token mail no longer holds its token: rotate \
                     the token (or revoke it and create another) to mail a new one"
                        .into(),
                ));
            }
            "identity_verification" => {
                return Err(ServiceError::Refused(
                    "an undelivered verification code has expired: the user logs in again to \
                     get a new one"
                        .into(),
                ));
            }
            _ => {}
        }
        outbox::requeue_dead(&mut tx.as_conn(), &row.id, self.now_ms()).await?;
        audit::record(
            &mut tx.as_conn(),
            self.now_ms(),
            actor,
            audit::Entry {
                org_id: &org.id,
                action: "mail.retried",
                section: audit::MANAGE_USERS,
                display: format!(
                    "Queued mail {} ({:?} to {}) for delivery again",
                    id18(&row.id),
                    row.subject,
                    row.to_addr
                ),
                target_id: Some(&row.id),
            },
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}
