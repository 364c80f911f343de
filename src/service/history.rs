//! Reading what happened: login history (R-L9), the audit trail (R-M4) and the outbox (R-E1).

use super::{Actor, Result, ServiceError, Services, id18, resolve};
use crate::domain::ids::{KeyPrefix, SfId};
use crate::store::audit::{self, AuditRow};
use crate::store::login_history::{self, Filter, LoginHistoryView};
use crate::store::outbox::{self, OutboxRow};

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

impl Services {
    pub async fn login_history(
        &self,
        actor: &Actor,
        org: Option<&str>,
        user: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LoginHistoryView>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let mut filter = Filter {
            limit,
            ..Filter::default()
        };
        if let Some(o) = org {
            let org = resolve::org(&mut c.as_conn(), o).await?;
            filter.org_id = Some(org.id);
        }
        if let Some(u) = user {
            let user = resolve::user_seen(&mut c.as_conn(), actor, u).await?;
            if filter.org_id.as_ref().is_some_and(|o| *o != user.org_id) {
                return Err(ServiceError::NotFound(format!(
                    "user {} is not in that org",
                    user.username
                )));
            }
            filter.org_id = Some(user.org_id);
            filter.user_id = Some(user.id);
        }
        match (actor, &filter.org_id) {
            (Actor::User { org_id, .. }, None) => filter.org_id = Some(org_id.clone()),
            (_, Some(o)) => actor.check_org(o)?,
            _ => {}
        }
        Ok(login_history::list(&mut c.as_conn(), &filter).await?)
    }

    pub async fn audit_trail(&self, actor: &Actor, org: &str, limit: i64) -> Result<Vec<AuditRow>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org).await?;
        actor.check_org(&org.id)?;
        Ok(audit::list(&mut c.as_conn(), &org.id, limit).await?)
    }

    /// The outbox, oldest first. Bodies are the stored ones: a token never appears (R-T2).
    pub async fn list_mail(&self, to: Option<&str>, limit: i64) -> Result<Vec<OutboxRow>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let mut rows = outbox::list(&mut c.as_conn(), to.map(str::trim), limit).await?;
        for r in &mut rows {
            r.secret = None;
        }
        Ok(rows)
    }

    pub async fn show_mail(&self, id: &str) -> Result<OutboxRow> {
        let id = SfId::parse_as(id.trim(), KeyPrefix::Email)?;
        let mut c = self.db.conn().await?;
        let mut row = outbox::get(&mut c.as_conn(), id.as_15())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no mail with id {}", id.to_18())))?;
        row.secret = None;
        Ok(row)
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
