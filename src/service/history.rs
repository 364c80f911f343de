//! Reading what happened: login history (R-L9), the audit trail (R-M4) and the outbox (R-E1).

use super::{Actor, Result, ServiceError, Services, resolve};
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
            let org = resolve::org(&mut c.c(), o).await?;
            filter.org_id = Some(org.id);
        }
        if let Some(u) = user {
            let user = resolve::user_seen(&mut c.c(), actor, u).await?;
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
        Ok(login_history::list(&mut c.c(), &filter).await?)
    }

    pub async fn audit_trail(&self, actor: &Actor, org: &str, limit: i64) -> Result<Vec<AuditRow>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.c(), org).await?;
        actor.check_org(&org.id)?;
        Ok(audit::list(&mut c.c(), &org.id, limit).await?)
    }

    /// The outbox, oldest first. Bodies are the stored ones: a token never appears (R-T2).
    pub async fn list_mail(&self, to: Option<&str>, limit: i64) -> Result<Vec<OutboxRow>> {
        let limit = check_limit(limit)?;
        let mut c = self.db.conn().await?;
        let mut rows = outbox::list(&mut c.c(), to.map(str::trim), limit).await?;
        for r in &mut rows {
            r.secret = None;
        }
        Ok(rows)
    }

    pub async fn show_mail(&self, id: &str) -> Result<OutboxRow> {
        let id = SfId::parse_as(id.trim(), KeyPrefix::Email)?;
        let mut c = self.db.conn().await?;
        let mut row = outbox::get(&mut c.c(), id.as_15())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no mail with id {}", id.to_18())))?;
        row.secret = None;
        Ok(row)
    }
}
