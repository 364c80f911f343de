//! Security tokens: issuing (R-T1, R-T4), emailing (R-T5) and resetting them, with the
//! refusals of R-T9. A token exists in clear only in this function's memory and in the outbox
//! row of its mail until delivery; the store keeps its digest.

use super::audit;
use super::outbox::enqueue;
use super::views::User;
use super::views::policy_of;
use super::{Actor, Result, ServiceError, Services, resolve};
use crate::crypto::token_digest;
use crate::domain::token::SecurityToken;
use crate::mail::{self, PreviousToken, Recipient};
use crate::store::users::{self, UserRow};
use crate::store::{Conn, orgs, profiles, ranges};

/// Why a token is issued: worded for the mail and recorded in the token history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReason {
    /// R-T7: the user's first password was set.
    FirstPassword,
    /// R-T5: the user reset it.
    SelfReset,
    /// R-T9: an admin triggered the reset.
    AdminReset,
    /// R-T6: the user changed their password.
    PasswordChanged,
    /// R-T6: an admin reset the user's password.
    PasswordReset,
}

impl TokenReason {
    fn mail_text(self) -> &'static str {
        match self {
            TokenReason::FirstPassword => "your password was set for the first time",
            TokenReason::SelfReset => "you reset your security token",
            TokenReason::AdminReset => "an administrator reset your security token",
            TokenReason::PasswordChanged => "you changed your password",
            TokenReason::PasswordReset => "an administrator reset your password",
        }
    }

    fn history_text(self) -> &'static str {
        match self {
            TokenReason::FirstPassword => "first_password",
            TokenReason::SelfReset => "self_reset",
            TokenReason::AdminReset => "admin_reset",
            TokenReason::PasswordChanged => "password_changed",
            TokenReason::PasswordReset => "password_reset",
        }
    }
}

pub(crate) fn recipient(u: &UserRow) -> Recipient<'_> {
    Recipient {
        username: &u.username,
        email: &u.email,
        first_name: &u.first_name,
        last_name: &u.last_name,
    }
}

/// Issues a new token for the user inside the caller's transaction and queues its mail. The old
/// token stops working when the transaction commits (R-T5), or, after a reset, when the org's
/// grace period ends; the mail says which. A value ever issued before is never
/// issued again (R-T4): the unique digest refuses it and another is drawn.
pub(crate) async fn issue(
    c: &mut Conn<'_>,
    now_ms: i64,
    user: &UserRow,
    reason: TokenReason,
) -> Result<()> {
    // Only a reset leaves the replaced token its grace window (org policy token_grace_hours);
    // a new password ends every earlier token at once.
    let keep_previous = matches!(reason, TokenReason::SelfReset | TokenReason::AdminReset);
    let previous = match reason {
        TokenReason::FirstPassword => PreviousToken::None,
        _ if keep_previous => match orgs::get(c, &user.org_id)
            .await?
            .map(|org| policy_of(&org).token_grace_hours)
        {
            Some(hours) if hours > 0 => PreviousToken::InGrace { hours },
            _ => PreviousToken::Ended,
        },
        _ => PreviousToken::Ended,
    };
    // The window is fixed now: an org that lengthens it later revives no token.
    let previous_until = match previous {
        PreviousToken::InGrace { hours } => {
            Some(now_ms + i64::from(hours) * crate::domain::policy::HOUR_MS)
        }
        _ => None,
    };
    for _ in 0..8 {
        let token = SecurityToken::generate(&mut rand::rngs::OsRng);
        let digest = token_digest(&token);
        if users::set_token(
            c,
            &user.org_id,
            &user.id,
            &digest,
            reason.history_text(),
            previous_until,
            now_ms,
        )
        .await?
        {
            let email = mail::security_token(
                &recipient(user),
                token.expose(),
                reason.mail_text(),
                previous,
            );
            enqueue(c, now_ms, Some(&user.org_id), email).await?;
            return Ok(());
        }
        tracing::warn!(user_id = %user.id, "security token collided with an earlier one; drawing another");
    }
    Err(ServiceError::Internal(
        "could not draw an unused security token".into(),
    ))
}

/// R-T9: why this user may not reset a token, if they may not.
pub(crate) async fn reset_refusal(c: &mut Conn<'_>, user: &UserRow) -> Result<Option<String>> {
    let profile = profiles::get(c, &user.org_id, &user.profile_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("user without profile".into()))?;
    if profile.sso_enabled {
        return Ok(Some(format!(
            "{} is a single sign-on user: the org's delegated authentication checks the \
             credentials and no security token is used",
            user.username
        )));
    }
    if !ranges::list(c, &user.org_id, Some(&profile.id))
        .await?
        .is_empty()
    {
        return Ok(Some(format!(
            "the profile {:?} of {} has login IP ranges: logins from outside them are refused \
             and logins from inside need no token, so {} never needs a security token",
            profile.name, user.username, user.username
        )));
    }
    if user.password_hash.is_none() {
        return Ok(Some(format!(
            "{} has no password yet: the first security token is issued with the first password",
            user.username
        )));
    }
    Ok(None)
}

impl Services {
    /// Resets a user's security token: the old one stops working at once and the new one is
    /// emailed to the user (never shown to the actor). An admin may trigger it for a user of
    /// their org (recorded in the audit trail); a user may for themselves (R-T5, R-T9).
    pub async fn reset_token(&self, actor: &Actor, user_input: &str) -> Result<User> {
        let mut tx = self.db.begin().await?;
        let user = resolve::user_seen_for_update(&mut tx.as_conn(), actor, user_input).await?;
        actor.check_self_or_admin(&user.org_id, &user.id)?;
        if let Some(why) = reset_refusal(&mut tx.as_conn(), &user).await? {
            return Err(ServiceError::Refused(format!(
                "security token reset refused: {why}"
            )));
        }
        let own = actor.is_user(&user.id);
        let reason = if own {
            TokenReason::SelfReset
        } else {
            TokenReason::AdminReset
        };
        let now = self.now_ms();
        issue(&mut tx.as_conn(), now, &user, reason).await?;
        audit::user_event(
            &mut tx.as_conn(),
            now,
            actor,
            &user,
            "token.reset",
            if own {
                format!("Reset own security token ({})", user.username)
            } else {
                format!("Reset the security token of user {}", user.username)
            },
        )
        .await?;
        self.commit_session_change(tx).await?;
        self.outbox.wake();
        Ok(user.into())
    }
}
