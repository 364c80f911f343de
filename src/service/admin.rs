//! What Setup needs beyond the use cases the CLI already has: editing a profile's permissions,
//! searching login history with a per-hour summary, one org's outbox and retrying dead mail.

use super::{Actor, Result, ServiceError, Services, audit, id18, resolve};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::domain::profile::PermissionsChange;
use crate::store::login_history::{self, Filter, LoginHistoryView};
use crate::store::outbox::{self, OutboxRow};
use crate::store::profiles::{self, ProfileRow};

/// A login-history search (Setup → Login History). Every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Username or user id.
    pub user: Option<String>,
    pub status: Option<String>,
    pub login_type: Option<String>,
    /// Epoch ms, inclusive.
    pub from: Option<i64>,
    /// Epoch ms, exclusive.
    pub to: Option<i64>,
    pub limit: i64,
}

/// Attempts in one hour, for the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    /// Start of the hour, epoch ms.
    pub hour: i64,
    pub success: i64,
    pub failure: i64,
}

pub const MAX_ROWS: i64 = 10_000;

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
    ) -> Result<ProfileRow> {
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let found = resolve::profile(&mut tx.as_conn(), &org, profile_input).await?;
        // Merged with the row as it is now, locked: two patches of different permissions at
        // once both land.
        let mut profile = profiles::get_for_update(&mut tx.as_conn(), &org.id, &found.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no profile {profile_input:?}")))?;
        let current = super::network::permissions_of(&profile);
        let permissions = change.applied_to(current);
        if permissions == current {
            // An empty merge patch changes nothing, and records nothing.
            return Ok(profile);
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
        Ok(profile)
    }

    pub async fn get_profile(
        &self,
        actor: &Actor,
        org_input: &str,
        profile_input: &str,
    ) -> Result<ProfileRow> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        resolve::profile(&mut c.as_conn(), &org, profile_input).await
    }

    fn history_filter(&self, org_id: &str, q: &HistoryQuery) -> Result<Filter> {
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f >= t
        {
            return Err(ServiceError::Invalid(
                "the start of the time range must be before its end".into(),
            ));
        }
        let exact = |field, v: &Option<String>| -> Result<Option<String>> {
            match v {
                Some(s) => Ok(Some(crate::domain::validate::text(field, s, 100, false)?)),
                None => Ok(None),
            }
        };
        Ok(Filter {
            org_id: Some(org_id.to_string()),
            user_id: None,
            status: exact("status", &q.status)?,
            login_type: exact("login type", &q.login_type)?,
            from: q.from,
            to: q.to,
            limit: q.limit.clamp(1, MAX_ROWS),
        })
    }

    async fn resolve_history(
        &self,
        c: &mut crate::store::Conn<'_>,
        actor: &Actor,
        org_input: &str,
        q: &HistoryQuery,
    ) -> Result<Filter> {
        let org = resolve::org(c, org_input).await?;
        actor.check_org(&org.id)?;
        let mut filter = self.history_filter(&org.id, q)?;
        if let Some(u) = q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            let user = resolve::user_seen(c, actor, u).await?;
            if user.org_id != org.id {
                return Err(ServiceError::NotFound(format!("no user {u}")));
            }
            filter.user_id = Some(user.id);
        }
        Ok(filter)
    }

    /// Setup → Login History: the org's attempts, newest first (R-L9).
    pub async fn search_login_history(
        &self,
        actor: &Actor,
        org_input: &str,
        q: &HistoryQuery,
    ) -> Result<Vec<LoginHistoryView>> {
        let mut c = self.db.conn().await?;
        let filter = self
            .resolve_history(&mut c.as_conn(), actor, org_input, q)
            .await?;
        Ok(login_history::list(&mut c.as_conn(), &filter).await?)
    }

    /// Successes and failures per hour over the search's range, hours without attempts
    /// included, oldest first.
    pub async fn login_history_per_hour(
        &self,
        actor: &Actor,
        org_input: &str,
        q: &HistoryQuery,
    ) -> Result<Vec<HourCount>> {
        const HOUR: i64 = 3_600_000;
        let mut c = self.db.conn().await?;
        let filter = self
            .resolve_history(&mut c.as_conn(), actor, org_input, q)
            .await?;
        let rows = login_history::per_hour(&mut c.as_conn(), &filter).await?;
        let first = filter
            .from
            .map(|f| f.div_euclid(HOUR) * HOUR)
            .or_else(|| rows.first().map(|r| r.0));
        let last = filter
            .to
            .map(|t| (t - 1).div_euclid(HOUR) * HOUR)
            .or_else(|| rows.last().map(|r| r.0));
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Vec::new());
        };
        // At most a year of hours, the newest, so a wide range cannot make a huge chart.
        let first = first.max(last - (24 * 366 - 1) * HOUR);
        let hours = ((last - first) / HOUR + 1).clamp(0, 24 * 366);
        let mut out: Vec<HourCount> = (0..hours)
            .map(|i| HourCount {
                hour: first + i * HOUR,
                success: 0,
                failure: 0,
            })
            .collect();
        for (hour, ok, n) in rows {
            let i = (hour - first) / HOUR;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                if ok {
                    slot.success += n;
                } else {
                    slot.failure += n;
                }
            }
        }
        Ok(out)
    }

    /// Setup → Email Log: the org's mail, newest first; bodies as stored (no secret, R-T2).
    pub async fn org_mail(
        &self,
        actor: &Actor,
        org_input: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let mut rows =
            outbox::list_for_org(&mut c.as_conn(), &org.id, status, limit.clamp(1, MAX_ROWS))
                .await?;
        for r in &mut rows {
            r.secret = None;
        }
        Ok(rows)
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
