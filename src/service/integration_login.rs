//! The login with an integration token (the password field starts with `kwi_`): its digest
//! looked up with the user (`store::users::find_for_login`) instead of a password hash, then the decision of `domain::integration`. A success on
//! a token and user nobody changed meanwhile is written in one step (`store::logins`); anything
//! else decides again under the user's and the token's row locks.

use super::attempt::{
    Attempt, Known, Via, create_session, credential, history_row, known_from, new_session,
    record_attempt, subject_of,
};
use super::integration::{grace_ms, lifecycle};
use super::login::{LoginRequest, LoginResponse, context};
use super::views::policy_of;
use super::{Result, Services};
use crate::clock::ms;
use crate::crypto::ct_eq;
use crate::domain::integration::{self, IntegrationCheck, Standing};
use crate::domain::login::{LoginDecision, LoginOutcome};
use crate::store::integration::{self as rows, IntegrationTokenRow};
use crate::store::users::{self, UserForLogin};

/// When a refused integration-token login is answered, counted from its arrival: well above
/// what any refusal takes on an idle server, so none answers sooner than another.
const REFUSAL_ANSWERED_AFTER: std::time::Duration = std::time::Duration::from_millis(15);

/// What the lookup found, and what the decision made of it.
struct Decided {
    check: IntegrationCheck,
    decision: LoginDecision,
    /// The token, when it is the named user's own, and whether it is a rotated one in grace.
    matched: Option<(IntegrationTokenRow, bool)>,
}

impl Decided {
    fn label(&self) -> String {
        self.matched
            .as_ref()
            .map(|(t, in_grace)| credential::integration(&t.name, *in_grace))
            .unwrap_or_default()
    }
}

impl Services {
    /// Every such attempt compares digests in constant time; a
    /// refused one writes its history row and the address's failure count in one
    /// transaction, about what a success writes.
    pub(super) async fn integration_login(
        &self,
        req: &LoginRequest,
        found: Option<UserForLogin>,
        token: Option<IntegrationTokenRow>,
        sent: &str,
        started: tokio::time::Instant,
    ) -> Result<LoginResponse> {
        // A user of another org than the SOAP `LoginScopeHeader` names is unknown here.
        let org_scope = req.org_scope.as_deref();
        let mut known = found
            .filter(|f| org_scope.is_none_or(|o| o == f.user.org_id))
            .map(|f| known_from(f.user, f.org, &f.profile, f.ranges));
        let decided = self.decide_integration(req, known.as_ref(), token, sent);
        if let Some(done) = self
            .integration_one_step(req, known.as_ref(), &decided)
            .await?
        {
            return Ok(done);
        }

        let now = self.now();
        let now_ms = ms(now);
        let mut tx = self.db.begin().await?;
        // Under the user's and the token's locks, as they are now: a deactivation, revocation
        // or rotation that committed meanwhile counts.
        let mut decided = decided;
        if let Some(k) = &mut known {
            match users::get_for_update(&mut tx.as_conn(), &k.org.id, &k.user.id).await? {
                Some(fresh) => k.user = fresh,
                None => known = None,
            }
            let token = match &decided.matched {
                Some((t, _)) => rows::get(&mut tx.as_conn(), &t.org_id, &t.id, true).await?,
                None => None,
            };
            if token.is_some() {
                decided = self.decide_integration(req, known.as_ref(), token, sent);
            }
        }
        let mut session = None;
        if let (Some(k), Some((t, _)), LoginOutcome::Success { .. }) =
            (&known, &decided.matched, decided.decision.outcome)
        {
            session = Some(
                create_session(
                    &mut tx.as_conn(),
                    now,
                    k,
                    req.channel,
                    req.source_ip,
                    false,
                    Via {
                        oauth: req.oauth_client.as_ref(),
                        integration_token_id: Some(&t.id),
                    },
                )
                .await?,
            );
            rows::record_usage(
                &mut tx.as_conn(),
                &k.org.id,
                &k.user.id,
                &t.id,
                &req.client,
                &req.source_ip.to_string(),
                now_ms,
            )
            .await?;
        }
        let label = decided.label();
        let attempt = Attempt {
            credential: &label,
            ..req.attempt(decided.decision.status)
        };
        record_attempt(
            &mut tx.as_conn(),
            now_ms,
            known.as_ref().map(|k| &k.user),
            &attempt,
        )
        .await?;
        if integration::counts_against_address(decided.check, &decided.decision) {
            self.count_address_failure(&mut tx.as_conn(), req.source_ip)
                .await?;
        }
        tx.commit().await?;
        let session = match (session, known) {
            (Some(issued), Some(k)) => Some(issued.into_session(k.org, k.user)),
            _ => {
                // No password hash hides what a refusal read: an unknown username's answered
                // about 0.1 ms sooner than a known one's. Every refusal answers at the same
                // instant after its arrival instead.
                tokio::time::sleep_until(started + REFUSAL_ANSWERED_AFTER).await;
                None
            }
        };
        Ok(self.answered(req, &decided.decision, session))
    }

    fn decide_integration(
        &self,
        req: &LoginRequest,
        known: Option<&Known>,
        token: Option<IntegrationTokenRow>,
        sent: &str,
    ) -> Decided {
        let now = self.now();
        // The token must be the named user's own.
        let matched = match (known, token) {
            (Some(k), Some(t))
                if ct_eq(&t.digest, sent) && t.user_id == k.user.id && t.org_id == k.org.id =>
            {
                let standing = lifecycle(&t).standing(ms(now), grace_ms(&k.org));
                Some((t, standing))
            }
            _ => None,
        };
        let check = match &matched {
            Some((_, Standing::Active | Standing::InGrace)) => IntegrationCheck::Valid,
            Some((_, Standing::Expired)) => IntegrationCheck::Expired,
            Some((_, Standing::Revoked)) | None => IntegrationCheck::NoMatch,
        };
        let policy = known.map(|k| policy_of(&k.org)).unwrap_or_default();
        let ctx = context(req, now, &policy, known);
        let subject = known.map(|k| subject_of(k, &k.user));
        Decided {
            check,
            decision: integration::decide(subject.as_ref(), &ctx, check),
            matched: matched.map(|(t, s)| (t, s == Standing::InGrace)),
        }
    }

    /// The common case in one step: a success whose token is still live and whose user is
    /// still active is written in one step (`store::logins`). None — nothing
    /// written — for anything else, or when the rows changed meanwhile. A client that issues
    /// refresh tokens takes the general path.
    async fn integration_one_step(
        &self,
        req: &LoginRequest,
        known: Option<&Known>,
        decided: &Decided,
    ) -> Result<Option<LoginResponse>> {
        let (Some(k), Some((t, _)), LoginOutcome::Success { .. }) =
            (known, &decided.matched, decided.decision.outcome)
        else {
            return Ok(None);
        };
        if req.oauth_client.as_ref().is_some_and(|c| c.refresh_tokens) {
            return Ok(None);
        }
        let now = self.now();
        let (issued, mut session) = new_session(
            now,
            k,
            req.channel,
            req.source_ip,
            false,
            req.oauth_client.as_ref().map(|o| o.id.clone()),
            None,
        );
        session.integration_token_id = Some(t.id.clone());
        let label = decided.label();
        let attempt = Attempt {
            credential: &label,
            ..req.attempt(decided.decision.status)
        };
        let history = history_row(ms(now), Some(&k.user), &attempt);
        let written = crate::store::logins::record_integration_success(
            &self.db,
            &t.id,
            &k.user.profile_id,
            ms(now),
            &session,
            &history,
        )
        .await?;
        if !written {
            return Ok(None);
        }
        let session = issued.into_session(k.org.clone(), k.user.clone());
        Ok(Some(self.answered(req, &decided.decision, Some(session))))
    }

    fn answered(
        &self,
        req: &LoginRequest,
        decision: &LoginDecision,
        session: Option<super::attempt::LoginSession>,
    ) -> LoginResponse {
        self.metrics.count_login(req.channel, decision.status);
        tracing::info!(
            login_type = req.channel.login_type(),
            status = decision.status.as_str(),
            source_ip = %req.source_ip,
            "integration token login attempt"
        );
        LoginResponse {
            outcome: decision.outcome,
            status: decision.status,
            session,
            challenge: None,
            retry_after: None,
        }
    }
}
