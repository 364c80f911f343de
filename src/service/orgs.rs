//! Orgs: creation with the default profiles and policy (R-M3), the policy, delegated auth.

use super::audit::{self, Entry};
use super::views::{Org, all, policy_of};
use super::{Actor, Result, ServiceError, Services, new_id, resolve};
use crate::domain::ids::{KeyPrefix, looks_like_id};
use crate::domain::integration::ReminderDays;
use crate::domain::policy::{Complexity, OrgPolicy};
use crate::domain::profile::default_profiles;
use crate::domain::validate;
use crate::store::orgs::{self, OrgRow};
use crate::store::profiles::{self, ProfileRow};
use crate::store::{Conn, StoreError};

fn apply_policy(org: &mut OrgRow, p: &OrgPolicy) {
    org.min_password_length = i64::from(p.min_password_length);
    org.complexity = p.complexity.as_str().to_string();
    org.password_history = i64::from(p.password_history);
    org.password_expiry_days = i64::from(p.password_expiry_days);
    org.lockout_attempts = i64::from(p.lockout_attempts);
    org.lockout_minutes = i64::from(p.lockout_minutes);
    org.session_seconds = i64::from(p.session_seconds);
    org.session_max_seconds = i64::from(p.session_max_seconds);
    org.integration_max_days = i64::from(p.integration_max_days);
    org.integration_grace_hours = i64::from(p.integration_grace_hours);
    org.integration_reminder_days = p.integration_reminder_days.to_string();
    org.token_grace_hours = i64::from(p.token_grace_hours);
}

/// Changes to an org's policy; `None` leaves a setting as it is.
#[derive(Debug, Default, Clone)]
pub struct PolicyChange {
    pub lockout_attempts: Option<u32>,
    pub lockout_minutes: Option<u32>,
    pub password_expiry_days: Option<u32>,
    pub session_seconds: Option<u32>,
    pub session_max_seconds: Option<u32>,
    pub min_password_length: Option<u32>,
    pub password_history: Option<u32>,
    pub complexity: Option<Complexity>,
    pub integration_max_days: Option<u32>,
    pub integration_grace_hours: Option<u32>,
    pub integration_reminder_days: Option<ReminderDays>,
    pub token_grace_hours: Option<u32>,
}

impl PolicyChange {
    pub fn is_empty(&self) -> bool {
        self.lockout_attempts.is_none()
            && self.lockout_minutes.is_none()
            && self.password_expiry_days.is_none()
            && self.session_seconds.is_none()
            && self.session_max_seconds.is_none()
            && self.min_password_length.is_none()
            && self.password_history.is_none()
            && self.complexity.is_none()
            && self.integration_max_days.is_none()
            && self.integration_grace_hours.is_none()
            && self.integration_reminder_days.is_none()
            && self.token_grace_hours.is_none()
    }
}

/// Creates the org, its default profiles and policy inside the caller's transaction.
pub(crate) async fn insert_org(
    c: &mut Conn<'_>,
    now_ms: i64,
    actor: &Actor,
    name: &str,
) -> Result<(OrgRow, Vec<ProfileRow>)> {
    let name = validate::text("org name", name, 80, true)?;
    if looks_like_id(&name, KeyPrefix::Org) {
        // Every command would read it as an id, and never find the org by its name.
        return Err(ServiceError::Invalid(format!(
            "an org name must not look like an org id ({name:?})"
        )));
    }
    let mut org = OrgRow {
        id: new_id(KeyPrefix::Org),
        name: name.clone(),
        delegated_auth_url: None,
        min_password_length: 0,
        complexity: String::new(),
        password_history: 0,
        password_expiry_days: 0,
        lockout_attempts: 0,
        lockout_minutes: 0,
        session_seconds: 0,
        session_max_seconds: 0,
        integration_max_days: 0,
        integration_grace_hours: 0,
        integration_reminder_days: String::new(),
        token_grace_hours: 0,
        created_at: now_ms,
    };
    apply_policy(&mut org, &OrgPolicy::default());
    match orgs::insert(c, &org).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ServiceError::Conflict(format!(
                "an org named {name:?} already exists"
            )));
        }
        r => r?,
    }
    let mut created = Vec::new();
    for (pname, perms) in default_profiles() {
        let p = ProfileRow {
            id: new_id(KeyPrefix::Profile),
            org_id: org.id.clone(),
            name: pname.to_string(),
            api_enabled: perms.api_enabled,
            api_only: perms.api_only,
            password_never_expires: perms.password_never_expires,
            sso_enabled: perms.sso_enabled,
            manage_users: perms.manage_users,
            created_at: now_ms,
        };
        profiles::insert(c, &p).await?;
        created.push(p);
    }
    audit::record(
        c,
        now_ms,
        actor,
        Entry {
            org_id: &org.id,
            action: "org.created",
            section: audit::COMPANY_PROFILE,
            display: format!("Created organization {name}"),
            target_id: Some(&org.id),
        },
    )
    .await?;
    Ok((org, created))
}

impl Services {
    pub async fn create_org(&self, actor: &Actor, name: &str) -> Result<Org> {
        if matches!(actor, Actor::User { .. }) {
            return Err(ServiceError::Refused(
                "only the command line can create orgs".into(),
            ));
        }
        let mut tx = self.db.begin().await?;
        let (org, _) = insert_org(&mut tx.as_conn(), self.now_ms(), actor, name).await?;
        tx.commit().await?;
        Ok(org.into())
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>> {
        let mut c = self.db.conn().await?;
        Ok(all(orgs::list(&mut c.as_conn()).await?))
    }

    pub async fn get_org(&self, actor: &Actor, input: &str) -> Result<Org> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), input).await?;
        actor.check_org(&org.id)?;
        Ok(org.into())
    }

    /// Changes the password policy and session settings; returns the new policy.
    pub async fn set_policy(
        &self,
        actor: &Actor,
        org_input: &str,
        change: &PolicyChange,
    ) -> Result<OrgPolicy> {
        if change.is_empty() {
            return Err(ServiceError::Invalid(
                "nothing to change: give at least one setting".into(),
            ));
        }
        let mut tx = self.db.begin().await?;
        let mut org = resolve::org_for_update(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let old = policy_of(&org);
        let mut new = old.clone();
        let mut changes = Vec::new();
        macro_rules! set {
            ($field:ident, $label:expr) => {
                if let Some(v) = change.$field {
                    if v != new.$field {
                        changes.push(format!("{} {} → {}", $label, new.$field, v));
                    }
                    new.$field = v;
                }
            };
        }
        set!(lockout_attempts, "maximum invalid login attempts");
        set!(lockout_minutes, "lockout minutes");
        set!(password_expiry_days, "password expiry days");
        set!(session_seconds, "session timeout seconds");
        set!(session_max_seconds, "session lifetime seconds");
        set!(min_password_length, "minimum password length");
        set!(password_history, "password history");
        set!(integration_max_days, "integration token maximum days");
        set!(integration_grace_hours, "integration token grace hours");
        set!(token_grace_hours, "security token grace hours");
        let reminders_changed = change
            .integration_reminder_days
            .as_ref()
            .is_some_and(|r| *r != new.integration_reminder_days);
        if let Some(r) = change.integration_reminder_days.clone() {
            if reminders_changed {
                changes.push(format!(
                    "integration token reminder days {} → {}",
                    new.integration_reminder_days, r
                ));
            }
            new.integration_reminder_days = r;
        }
        if let Some(cx) = change.complexity {
            if cx != new.complexity {
                changes.push(format!(
                    "complexity {} → {}",
                    new.complexity.as_str(),
                    cx.as_str()
                ));
            }
            new.complexity = cx;
        }
        new.validate()?;
        if changes.is_empty() {
            return Ok(new);
        }
        apply_policy(&mut org, &new);
        let now = self.now_ms();
        orgs::update_policy(&mut tx.as_conn(), &org, now).await?;
        // A shortened grace window is for good: lengthening it later revives no token.
        if new.token_grace_hours < old.token_grace_hours {
            let grace = new.token_grace_ms();
            crate::store::users::clip_previous_tokens(&mut tx.as_conn(), &org.id, grace).await?;
        }
        if new.integration_grace_hours < old.integration_grace_hours {
            let grace = new.integration_grace_ms();
            crate::store::integration::clip_grace(&mut tx.as_conn(), &org.id, grace).await?;
        }
        if reminders_changed {
            super::integration::reschedule_reminders(
                &mut tx.as_conn(),
                &org.id,
                &new.integration_reminder_days,
                now,
            )
            .await?;
        }
        audit::record(
            &mut tx.as_conn(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: "policy.changed",
                section: audit::PASSWORD_POLICIES,
                display: format!("Changed password policy: {}", changes.join("; ")),
                target_id: Some(&org.id),
            },
        )
        .await?;
        self.commit_session_change(tx).await?;
        Ok(new)
    }

    /// Sets (or, with `None`, clears) the org's delegated-authentication endpoint (R-L7).
    pub async fn set_delegated_auth(
        &self,
        actor: &Actor,
        org_input: &str,
        url: Option<&str>,
    ) -> Result<()> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        if let Some(u) = url {
            validate::http_url(u)?;
            // Where it points, now: the call checks again (delegated.rs, SSRF).
            self.delegated.check_url(u).await.map_err(|why| {
                ServiceError::Invalid(format!(
                    "the delegated-authentication URL {u} is refused: {why}"
                ))
            })?;
        }
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let now = self.now_ms();
        orgs::set_delegated_auth_url(&mut tx.as_conn(), &org.id, url, now).await?;
        audit::record(
            &mut tx.as_conn(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: "delegated_auth.changed",
                section: audit::SINGLE_SIGN_ON,
                display: match url {
                    Some(u) => format!("Set the delegated authentication URL to {u}"),
                    None => "Removed the delegated authentication URL".into(),
                },
                target_id: Some(&org.id),
            },
        )
        .await?;
        self.commit_session_change(tx).await?;
        Ok(())
    }
}
