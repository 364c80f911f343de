//! Integration tokens: creating (mailed, never shown), rotating with a grace window, revoking,
//! listing with their last use, the usage inventory, and the expiry reminders. The login with
//! one is in `integration_login`.

use super::audit;
use super::outbox::enqueue;
use super::tokens::recipient;
use super::views::policy_of;
use super::{Actor, Result, ServiceError, Services, fmt_ms, id18, new_id, resolve};
use crate::clock::rfc3339;
use crate::crypto::digest;
use crate::domain::ids::{KeyPrefix, SfId, looks_like_id};
use crate::domain::integration::{IntegrationToken, Lifecycle, ReminderDays, Standing};
use crate::domain::validate;
use crate::mail::{self, IntegrationIssued};
use crate::store::Conn;
use crate::store::integration::{self as rows, IntegrationTokenRow, SECURITY_TOKEN, UsageRow};
use crate::store::orgs::{self, OrgRow};
use crate::store::users::{self, UserRow};
use serde::Serialize;

const DAY_MS: i64 = 86_400_000;

/// How many live integration tokens a user may hold by default (`integration_tokens.per_user`).
pub const DEFAULT_PER_USER: u32 = 20;

/// One integration token as every interface lists it — never its value or digest. The columns
/// of `keyward integration list`, the admin API's JSON and the web pages, in this order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IntegrationTokenInfo {
    /// 18 characters (`0Ik…`).
    pub id: String,
    pub name: String,
    /// `active`, `in grace` (rotated; works until its grace window ends), `expired` or
    /// `revoked` (revoked, or rotated and past its grace window).
    pub status: String,
    /// RFC 3339.
    pub created: String,
    pub expires: String,
    pub last_used: Option<String>,
    pub last_address: Option<String>,
    /// The token this one replaced, if it was made by a rotation.
    pub replaces: Option<String>,
    pub user_id: String,
    pub username: String,
}

pub const INTEGRATION_TOKEN_COLUMNS: [&str; 7] = [
    "id",
    "name",
    "status",
    "created",
    "expires",
    "last_used",
    "last_address",
];

/// One (client, source address) that logged in with a credential.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredentialUse {
    /// SOAP `CallOptions` client, OAuth client id or User-Agent.
    pub client: String,
    pub source_ip: String,
    /// RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
    pub uses: i64,
}

pub const CREDENTIAL_USE_COLUMNS: [&str; 5] =
    ["client", "source_ip", "first_seen", "last_seen", "uses"];

impl From<UsageRow> for CredentialUse {
    fn from(r: UsageRow) -> CredentialUse {
        CredentialUse {
            client: r.client,
            source_ip: r.source_ip,
            first_seen: rfc3339(r.first_seen_at),
            last_seen: rfc3339(r.last_seen_at),
            uses: r.uses,
        }
    }
}

pub(crate) fn lifecycle(r: &IntegrationTokenRow) -> Lifecycle {
    Lifecycle {
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        replaced_at: r.replaced_at,
        grace_until: r.grace_until,
    }
}

pub(crate) fn grace_ms(org: &OrgRow) -> i64 {
    policy_of(org).integration_grace_ms()
}

fn status_text(s: Standing) -> &'static str {
    match s {
        Standing::Active => "active",
        Standing::InGrace => "in grace",
        Standing::Expired => "expired",
        Standing::Revoked => "revoked",
    }
}

fn info(
    r: &IntegrationTokenRow,
    user: &UserRow,
    now: i64,
    grace: i64,
    usage: &[UsageRow],
) -> IntegrationTokenInfo {
    let last = usage
        .iter()
        .filter(|u| u.credential == r.id)
        .max_by_key(|u| u.last_seen_at);
    IntegrationTokenInfo {
        id: id18(&r.id),
        name: r.name.clone(),
        status: status_text(lifecycle(r).standing(now, grace)).into(),
        created: rfc3339(r.created_at),
        expires: rfc3339(r.expires_at),
        last_used: last.map(|u| rfc3339(u.last_seen_at)),
        last_address: last.map(|u| u.source_ip.clone()),
        replaces: r.predecessor_id.as_deref().map(id18),
        user_id: id18(&user.id),
        username: user.username.clone(),
    }
}

/// The token `input` names (its id), as `actor` may see it: another org's token, or another
/// user's for a user who is not an admin, answers as one that does not exist.
async fn token_seen(
    c: &mut Conn<'_>,
    actor: &Actor,
    input: &str,
) -> Result<(IntegrationTokenRow, UserRow, OrgRow)> {
    let input = input.trim();
    let missing = || {
        ServiceError::NotFound(if input.chars().any(char::is_control) {
            format!("no integration token {input:?}")
        } else {
            format!("no integration token {input}")
        })
    };
    if !looks_like_id(input, KeyPrefix::IntegrationToken) {
        return Err(missing());
    }
    let id = SfId::parse_as(input, KeyPrefix::IntegrationToken).map_err(|_| missing())?;
    let row = rows::get_any_org(c, id.as_15())
        .await?
        .ok_or_else(missing)?;
    if !actor.sees_org(&row.org_id) {
        return Err(missing());
    }
    if actor
        .check_self_or_admin(&row.org_id, &row.user_id)
        .is_err()
    {
        return Err(missing());
    }
    let user = users::get(c, &row.org_id, &row.user_id)
        .await?
        .ok_or_else(missing)?;
    let org = orgs::get(c, &row.org_id).await?.ok_or_else(missing)?;
    Ok((row, user, org))
}

/// A token is issued to an active user only: an inactive one could not use it.
fn require_active(user: &UserRow) -> Result<()> {
    if user.active {
        return Ok(());
    }
    Err(ServiceError::Refused(format!(
        "{} is inactive: reactivate the user first",
        user.username
    )))
}

/// Draws a token that was never issued before, stores its digest and mails it to the user.
async fn issue(
    c: &mut Conn<'_>,
    now: i64,
    user: &UserRow,
    org: &OrgRow,
    template: IntegrationTokenRow,
    mail_reason: &str,
    grace_until: Option<i64>,
) -> Result<IntegrationTokenRow> {
    for _ in 0..8 {
        let token = IntegrationToken::generate(&mut rand::rngs::OsRng);
        let row = IntegrationTokenRow {
            digest: digest(token.expose()),
            next_reminder_at: policy_of(org)
                .integration_reminder_days
                .next_after(template.expires_at, now),
            ..template.clone()
        };
        if rows::insert(c, &row).await? {
            let expires = fmt_ms(row.expires_at);
            let grace_until = grace_until.map(fmt_ms);
            let email = mail::integration_token(
                &recipient(user),
                token.expose(),
                &IntegrationIssued {
                    name: &row.name,
                    reason: mail_reason,
                    expires: &expires,
                    grace_until: grace_until.as_deref(),
                },
            );
            enqueue(c, now, Some(&user.org_id), email).await?;
            return Ok(row);
        }
    }
    Err(ServiceError::Internal(
        "could not draw an unused integration token".into(),
    ))
}

/// Whether an integration token still logs in: what a login with it created (a refresh token)
/// stops with it.
pub(crate) async fn logs_in(c: &mut Conn<'_>, org_id: &str, id: &str, now: i64) -> Result<bool> {
    let (Some(t), Some(org)) = (
        rows::get(c, org_id, id, false).await?,
        orgs::get(c, org_id).await?,
    ) else {
        return Ok(false);
    };
    Ok(lifecycle(&t).logs_in(now, grace_ms(&org)))
}

/// Recomputes the next reminder of every live token of an org after its reminder days
/// changed, counting from now: reminders already past are not sent late.
pub(crate) async fn reschedule_reminders(
    c: &mut Conn<'_>,
    org_id: &str,
    days: &ReminderDays,
    now: i64,
) -> Result<()> {
    for t in rows::live_in_org(c, org_id).await? {
        let next = days.next_after(t.expires_at, now);
        if next != t.next_reminder_at {
            rows::set_next_reminder(c, &t.id, next).await?;
        }
    }
    Ok(())
}

impl Services {
    /// Creates an integration token for a user (themselves, or a user of an admin's org) and
    /// mails it to the user; the actor never sees it. `expires_days` defaults to, and may not
    /// exceed, the org's `integration_max_days`.
    pub async fn create_integration_token(
        &self,
        actor: &Actor,
        user_input: &str,
        name: &str,
        expires_days: Option<u32>,
    ) -> Result<IntegrationTokenInfo> {
        let name = validate::text("integration token name", name, 80, true)?;
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen_for_update(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let org = orgs::get(&mut tx.as_conn(), &user.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
        let policy = policy_of(&org);
        let days = expires_days.unwrap_or(policy.integration_max_days);
        if !(1..=policy.integration_max_days).contains(&days) {
            return Err(ServiceError::Invalid(format!(
                "an integration token expires after 1 to {} days in this org (got {days})",
                policy.integration_max_days
            )));
        }
        require_active(&user)?;
        let now = self.now_ms();
        let grace = grace_ms(&org);
        let existing = rows::list_for_user(&mut tx.as_conn(), &user.org_id, &user.id).await?;
        // Tokens in a rotation's grace window count: each still logs in.
        let live: Vec<_> = existing
            .iter()
            .filter(|t| lifecycle(t).logs_in(now, grace))
            .collect();
        if live.len() >= self.integration_per_user as usize {
            return Err(ServiceError::Refused(format!(
                "{} already has {} integration tokens, the most allowed: revoke one first",
                user.username,
                live.len()
            )));
        }
        if live
            .iter()
            .any(|t| t.replaced_at.is_none() && t.name.eq_ignore_ascii_case(&name))
        {
            return Err(ServiceError::Conflict(format!(
                "{} already has an integration token named {name:?}: rotate it, or choose \
                 another name",
                user.username
            )));
        }
        let template = IntegrationTokenRow {
            id: new_id(KeyPrefix::IntegrationToken),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            name: name.clone(),
            digest: String::new(),
            created_at: now,
            expires_at: now + i64::from(days) * DAY_MS,
            revoked_at: None,
            replaced_at: None,
            predecessor_id: None,
            next_reminder_at: None,
            grace_until: None,
        };
        let own = actor.is_user(&user.id);
        let reason = if own {
            "you created it"
        } else {
            "an administrator created it for you"
        };
        let row = issue(&mut tx.as_conn(), now, &user, &org, template, reason, None).await?;
        audit::user_event(
            &mut tx.as_conn(),
            now,
            actor,
            &user,
            "integration.create",
            format!(
                "Created integration token {name:?} ({}) of user {}, expiring {}",
                id18(&row.id),
                user.username,
                fmt_ms(row.expires_at)
            ),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(info(&row, &user, now, grace, &[]))
    }

    /// Rotates a token: a successor with the same name (and the same lifetime, within the
    /// org's maximum) is mailed, and the token keeps working for the org's grace window.
    pub async fn rotate_integration_token(
        &self,
        actor: &Actor,
        input: &str,
    ) -> Result<IntegrationTokenInfo> {
        let mut tx = self.db.begin().await?;
        let (seen, user, org) = token_seen(&mut tx.as_conn(), actor, input).await?;
        let old = rows::get(&mut tx.as_conn(), &seen.org_id, &seen.id, true)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no integration token {input}")))?;
        let now = self.now_ms();
        let grace = grace_ms(&org);
        match lifecycle(&old).standing(now, grace) {
            Standing::Active => {}
            // Not in the state the action needs: 409 on the admin API.
            Standing::InGrace => {
                return Err(ServiceError::Conflict(format!(
                    "integration token {} was rotated already: rotate its successor",
                    id18(&old.id)
                )));
            }
            s => {
                return Err(ServiceError::Conflict(format!(
                    "integration token {} is {}: create a new one",
                    id18(&old.id),
                    status_text(s)
                )));
            }
        }
        require_active(&user)?;
        let grace_until = (now + grace).min(old.expires_at);
        if !rows::mark_replaced(&mut tx.as_conn(), &old.org_id, &old.id, now, grace_until).await? {
            return Err(ServiceError::Conflict(
                "the token changed meanwhile; try again".into(),
            ));
        }
        // Rotating again ends the grace of the token before: a name has at most two tokens
        // that log in, however often it is rotated.
        if let Some(before) = &old.predecessor_id {
            rows::end_grace(&mut tx.as_conn(), &old.org_id, before, now).await?;
        }
        let lifetime = (old.expires_at - old.created_at)
            .min(i64::from(policy_of(&org).integration_max_days) * DAY_MS);
        let template = IntegrationTokenRow {
            id: new_id(KeyPrefix::IntegrationToken),
            digest: String::new(),
            created_at: now,
            expires_at: now + lifetime,
            revoked_at: None,
            replaced_at: None,
            predecessor_id: Some(old.id.clone()),
            next_reminder_at: None,
            grace_until: None,
            ..old.clone()
        };
        let row = issue(
            &mut tx.as_conn(),
            now,
            &user,
            &org,
            template,
            "it replaces the token of the same name",
            Some(grace_until),
        )
        .await?;
        audit::user_event(
            &mut tx.as_conn(),
            now,
            actor,
            &user,
            "integration.rotate",
            format!(
                "Rotated integration token {:?} ({} → {}) of user {}; the old one works until {}",
                old.name,
                id18(&old.id),
                id18(&row.id),
                user.username,
                fmt_ms(grace_until)
            ),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(info(&row, &user, now, grace, &[]))
    }

    /// Revokes a token at once (a rotated one in its grace window too).
    pub async fn revoke_integration_token(
        &self,
        actor: &Actor,
        input: &str,
    ) -> Result<IntegrationTokenInfo> {
        let mut tx = self.db.begin().await?;
        let (seen, user, org) = token_seen(&mut tx.as_conn(), actor, input).await?;
        let usage = rows::usage(&mut tx.as_conn(), &seen.org_id, &seen.user_id, &seen.id).await?;
        let now = self.now_ms();
        if !rows::revoke(&mut tx.as_conn(), &seen.org_id, &seen.id, now).await? {
            return Err(ServiceError::Conflict(format!(
                "integration token {} is revoked already",
                id18(&seen.id)
            )));
        }
        audit::user_event(
            &mut tx.as_conn(),
            now,
            actor,
            &user,
            "integration.revoke",
            format!(
                "Revoked integration token {:?} ({}) of user {}",
                seen.name,
                id18(&seen.id),
                user.username
            ),
        )
        .await?;
        // What a login with it created ends with it: a leaked token's holder keeps nothing.
        crate::store::sessions::end_for_integration_token(
            &mut tx.as_conn(),
            &seen.org_id,
            &seen.id,
        )
        .await?;
        self.commit_session_change(tx).await?;
        let row = IntegrationTokenRow {
            revoked_at: Some(now),
            ..seen
        };
        Ok(info(&row, &user, now, grace_ms(&org), &usage))
    }

    /// One integration token, with its last use.
    pub async fn integration_token(
        &self,
        actor: &Actor,
        input: &str,
    ) -> Result<IntegrationTokenInfo> {
        let mut c = self.db.conn().await?;
        let (t, user, org) = token_seen(&mut c.as_conn(), actor, input).await?;
        let usage = rows::usage(&mut c.as_conn(), &t.org_id, &t.user_id, &t.id).await?;
        Ok(info(&t, &user, self.now_ms(), grace_ms(&org), &usage))
    }

    /// A user's integration tokens, newest first, with their last use.
    pub async fn list_integration_tokens(
        &self,
        actor: &Actor,
        user_input: &str,
    ) -> Result<Vec<IntegrationTokenInfo>> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let org = orgs::get(&mut c.as_conn(), &user.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("user without org".into()))?;
        let tokens = rows::list_for_user(&mut c.as_conn(), &user.org_id, &user.id).await?;
        let usage = rows::usage_of_user(&mut c.as_conn(), &user.org_id, &user.id).await?;
        let (now, grace) = (self.now_ms(), grace_ms(&org));
        Ok(tokens
            .iter()
            .map(|t| info(t, &user, now, grace, &usage))
            .collect())
    }

    /// The usage inventory of one integration token.
    pub async fn integration_token_usage(
        &self,
        actor: &Actor,
        input: &str,
    ) -> Result<Vec<CredentialUse>> {
        let mut c = self.db.conn().await?;
        let (t, ..) = token_seen(&mut c.as_conn(), actor, input).await?;
        let rows = rows::usage(&mut c.as_conn(), &t.org_id, &t.user_id, &t.id).await?;
        Ok(super::views::all(rows))
    }

    /// The usage inventory of a user's security token (every token the user had).
    pub async fn security_token_usage(
        &self,
        actor: &Actor,
        user_input: &str,
    ) -> Result<Vec<CredentialUse>> {
        let mut c = self.db.conn().await?;
        let user = resolve::user_seen(&mut c.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        let rows = rows::usage(&mut c.as_conn(), &user.org_id, &user.id, SECURITY_TOKEN).await?;
        Ok(super::views::all(rows))
    }

    /// Sends the expiry reminders that are due, each once however many nodes call this at
    /// the same time: a reminder is claimed by moving the token's next reminder on with a
    /// conditional update, and the mail is queued in the same transaction. How many were sent.
    pub async fn send_integration_reminders(&self) -> Result<usize> {
        let now = self.now_ms();
        let due = {
            let mut c = self.db.conn().await?;
            rows::reminders_due(&mut c.as_conn(), now, 100).await?
        };
        let mut sent = 0;
        for t in due {
            let Some(seen) = t.next_reminder_at else {
                continue;
            };
            let mut tx = self.db.begin().await?;
            let (Some(user), Some(org)) = (
                users::get(&mut tx.as_conn(), &t.org_id, &t.user_id).await?,
                orgs::get(&mut tx.as_conn(), &t.org_id).await?,
            ) else {
                continue;
            };
            let next = policy_of(&org)
                .integration_reminder_days
                .next_after(t.expires_at, now);
            if !rows::claim_reminder(&mut tx.as_conn(), &t.id, seen, next).await? {
                continue;
            }
            if user.active {
                let left_days = (t.expires_at - now + DAY_MS - 1) / DAY_MS;
                let left = match left_days {
                    ..=1 => "within a day".to_string(),
                    d => format!("in {d} days"),
                };
                let email = mail::integration_expiring(
                    &recipient(&user),
                    &t.name,
                    &fmt_ms(t.expires_at),
                    &left,
                );
                enqueue(&mut tx.as_conn(), now, Some(&t.org_id), email).await?;
                sent += 1;
            }
            tx.commit().await?;
        }
        if sent > 0 {
            self.outbox.wake();
        }
        Ok(sent)
    }
}
