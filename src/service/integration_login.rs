//! The login with an integration token (the password field holds exactly a `kwi_` token): one
//! digest lookup instead of a password hash, then the decision of `domain::integration`.

use super::attempt::{
    Attempt, Via, create_session, credential, known_from, record_attempt, subject_of,
};
use super::integration::{grace_ms, lifecycle};
use super::login::{LoginRequest, LoginResponse, context};
use super::views::policy_of;
use super::{Result, Services};
use crate::clock::ms;
use crate::crypto::{ct_eq, digest};
use crate::domain::integration::{self, IntegrationCheck, Standing};
use crate::domain::login::LoginOutcome;
use crate::store::integration as rows;
use crate::store::users::UserForLogin;

impl Services {
    /// Every such attempt runs the same statements whether the token is right or wrong — the
    /// digest lookup, then one transaction writing the history row and either the session and
    /// the usage row or the address's failure count — and compares digests in constant time.
    pub(super) async fn integration_login(
        &self,
        req: &LoginRequest,
        found: Option<UserForLogin>,
    ) -> Result<LoginResponse> {
        let sent = digest(req.secret.whole().expose());
        let token = {
            let mut c = self.db.conn().await?;
            rows::find_by_digest(&mut c.as_conn(), &sent).await?
        };
        // A user of another org than the SOAP `LoginScopeHeader` names is unknown here.
        let org_scope = req.org_scope.as_deref();
        let known = found
            .filter(|f| org_scope.is_none_or(|o| o == f.user.org_id))
            .map(|f| known_from(f.user, f.org, &f.profile, f.ranges));
        let now = self.now();
        let now_ms = ms(now);
        // The token must be the named user's own.
        let matched = match (&known, &token) {
            (Some(k), Some(t))
                if ct_eq(&t.digest, &sent) && t.user_id == k.user.id && t.org_id == k.org.id =>
            {
                Some((t, lifecycle(t).standing(now_ms, grace_ms(&k.org))))
            }
            _ => None,
        };
        let check = match matched {
            Some((_, Standing::Active | Standing::InGrace)) => IntegrationCheck::Valid,
            Some((_, Standing::Expired)) => IntegrationCheck::Expired,
            Some((_, Standing::Revoked)) | None => IntegrationCheck::NoMatch,
        };
        let policy = known
            .as_ref()
            .map(|k| policy_of(&k.org))
            .unwrap_or_default();
        let ctx = context(req, now, &policy, known.as_ref());
        let subject = known.as_ref().map(|k| subject_of(k, &k.user));
        let decision = integration::decide(subject.as_ref(), &ctx, check);
        let label = match matched {
            Some((t, standing)) => credential::integration(&t.name, standing == Standing::InGrace),
            None => String::new(),
        };

        let mut tx = self.db.begin().await?;
        let mut session = None;
        if let (Some(k), Some((t, _)), LoginOutcome::Success { .. }) =
            (&known, matched, decision.outcome)
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
        let attempt = Attempt {
            credential: &label,
            ..req.attempt(decision.status)
        };
        record_attempt(
            &mut tx.as_conn(),
            now_ms,
            known.as_ref().map(|k| &k.user),
            &attempt,
        )
        .await?;
        if integration::counts_against_address(check, &decision) {
            self.count_address_failure(&mut tx.as_conn(), req.source_ip)
                .await?;
        }
        tx.commit().await?;
        self.metrics.count_login(req.channel, decision.status);
        tracing::info!(
            login_type = req.channel.login_type(),
            status = decision.status.as_str(),
            source_ip = %req.source_ip,
            "integration token login attempt"
        );
        let session = match (session, known) {
            (Some(issued), Some(k)) => Some(issued.into_session(k.org, k.user)),
            _ => None,
        };
        Ok(LoginResponse {
            outcome: decision.outcome,
            status: decision.status,
            session,
            challenge: None,
            retry_after: None,
        })
    }
}
