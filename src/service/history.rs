//! Reading what happened: login history (R-L9), the audit trail (R-M4) and the outbox (R-E1).

use super::views::{AuditEntry, LoginAttempt, Mail, all};
use super::{Actor, Result, ServiceError, Services, id18, resolve};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::store::audit;
use crate::store::login_history::{self, Filter};
use crate::store::outbox;

pub const MAX_LIMIT: i64 = 10_000;

fn check_limit(limit: i64) -> Result<i64> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ServiceError::Invalid(format!(
            "--limit must be between 1 and {MAX_LIMIT} (got {limit})"
        )))
    }
}

/// A login-history search. Every field narrows it.
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

impl Services {
    /// The stored filter of a search: the org (`org_input`, else the acting user's; the
    /// command line may search every org) and the user resolved as the actor may see them.
    async fn history_filter(
        &self,
        c: &mut crate::store::Conn<'_>,
        actor: &Actor,
        org_input: Option<&str>,
        q: &HistoryQuery,
    ) -> Result<Filter> {
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f >= t
        {
            return Err(ServiceError::Invalid(
                "the start of the time range must be before its end".into(),
            ));
        }
        let exact = |field, v: &Option<String>| -> Result<Option<String>> {
            match v {
                Some(s) => Ok(Some(crate::domain::validate::filter(field, s, 100)?)),
                None => Ok(None),
            }
        };
        let mut filter = Filter {
            org_id: None,
            user_id: None,
            status: exact("status", &q.status)?,
            login_type: exact("login type", &q.login_type)?,
            from: q.from,
            to: q.to,
            limit: check_limit(q.limit)?,
        };
        if let Some(o) = org_input {
            filter.org_id = Some(resolve::org(c, o).await?.id);
        }
        if let Some(u) = q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            let user = resolve::user_seen(c, actor, u).await?;
            if filter.org_id.as_ref().is_some_and(|o| *o != user.org_id) {
                return Err(ServiceError::NotFound(format!("no user {u}")));
            }
            filter.org_id = Some(user.org_id);
            filter.user_id = Some(user.id);
        }
        match (actor, &filter.org_id) {
            (Actor::User { org_id, .. }, None) => filter.org_id = Some(org_id.clone()),
            (_, Some(o)) => actor.check_org(o)?,
            _ => {}
        }
        Ok(filter)
    }

    /// Login history (R-L9), newest first: `keyward login-history`, Setup → Login History and
    /// the admin API. `org_input` None searches the acting user's org (every org from the
    /// command line).
    pub async fn login_history(
        &self,
        actor: &Actor,
        org_input: Option<&str>,
        q: &HistoryQuery,
    ) -> Result<Vec<LoginAttempt>> {
        let mut c = self.db.conn().await?;
        let filter = self
            .history_filter(&mut c.as_conn(), actor, org_input, q)
            .await?;
        Ok(all(login_history::list(&mut c.as_conn(), &filter).await?))
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
            .history_filter(&mut c.as_conn(), actor, Some(org_input), q)
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

    pub async fn audit_trail(
        &self,
        actor: &Actor,
        org: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org).await?;
        actor.check_org(&org.id)?;
        Ok(all(audit::list(&mut c.as_conn(), &org.id, limit).await?))
    }

    /// The outbox, oldest first. Bodies are the stored ones: a token never appears (R-T2).
    pub async fn list_mail(&self, to: Option<&str>, limit: i64) -> Result<Vec<Mail>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        Ok(all(outbox::list(
            &mut c.as_conn(),
            to.map(str::trim),
            limit,
        )
        .await?))
    }

    pub async fn show_mail(&self, id: &str) -> Result<Mail> {
        let id = SfId::parse_as(id.trim(), KeyPrefix::Email)?;
        let mut c = self.db.conn().await?;
        let row = outbox::get(&mut c.as_conn(), id.as_15())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no mail with id {}", id.to_18())))?;
        Ok(row.into())
    }

    /// Where the mail to `to` stands, for `keyward mail wait`: whether any is still queued, and
    /// the newest one's outcome.
    pub async fn mail_to(&self, to: &str) -> Result<MailTo> {
        let to = to.trim();
        if to.is_empty() {
            return Err(ServiceError::Invalid("--to needs an address".into()));
        }
        let mut c = self.db.conn().await?;
        let rows = outbox::list(&mut c.as_conn(), Some(to), 100).await?;
        let queued = rows.iter().filter(|r| r.status == outbox::QUEUED).count();
        let Some(newest) = rows.last() else {
            return Ok(MailTo::Nothing);
        };
        Ok(if queued > 0 {
            MailTo::Queued(queued)
        } else if newest.status == outbox::DEAD {
            MailTo::Dead {
                id: id18(&newest.id),
                error: newest.last_error.clone().unwrap_or_default(),
            }
        } else {
            MailTo::Delivered {
                id: id18(&newest.id),
                file: self
                    .outbox
                    .delivered_file(newest.seq, &newest.id, newest.created_at),
            }
        })
    }
}

/// The mail to one address, as `keyward mail wait` sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum MailTo {
    /// No mail to the address yet.
    Nothing,
    /// This many messages to it are not delivered yet.
    Queued(usize),
    /// All are delivered; the newest one's id, and its file with the file transport.
    Delivered {
        id: String,
        file: Option<std::path::PathBuf>,
    },
    /// None queued, and the newest one could not be delivered.
    Dead { id: String, error: String },
}
