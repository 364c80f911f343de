//! `keyward integration …`: a user's integration tokens. A token is emailed to its user by the
//! command that makes it and printed nowhere: the commands print ids, states and usage.

use super::{CliError, IntegrationCommand, note, print};
use crate::listing::Listing;
use crate::service::integration::{CREDENTIAL_USE_COLUMNS, INTEGRATION_TOKEN_COLUMNS};
use crate::service::{Actor, Services};

pub(super) async fn integration(
    s: &Services,
    actor: &Actor,
    c: IntegrationCommand,
) -> Result<(), CliError> {
    match c {
        IntegrationCommand::Create {
            user,
            name,
            expires_days,
        } => {
            let t = s
                .create_integration_token(actor, &user, &name, expires_days)
                .await?;
            print(&format!("{}\n", t.id));
            note(&format!(
                "Integration token {:?} of {} expires {}; the token was emailed to the user.",
                t.name, t.username, t.expires
            ));
        }
        IntegrationCommand::List { user, format } => {
            let tokens = s.list_integration_tokens(actor, &user).await?;
            print(&Listing::of(&INTEGRATION_TOKEN_COLUMNS, &tokens).render(format.format));
        }
        IntegrationCommand::Rotate { id } => {
            let t = s.rotate_integration_token(actor, &id).await?;
            print(&format!("{}\n", t.id));
            // With the org's grace at 0 the old token stopped at once: say what happened.
            let old = s.list_integration_tokens(actor, &t.user_id).await?;
            let in_grace = old
                .iter()
                .any(|o| Some(&o.id) == t.replaces.as_ref() && o.status == "in grace");
            let old_one = match in_grace {
                true => "keeps working for the org's integration grace hours",
                false => "stopped working now (the org's integration grace is 0 hours)",
            };
            note(&format!(
                "The new token was emailed to {}; the old one {old_one}.",
                t.username
            ));
        }
        IntegrationCommand::Revoke { id } => {
            let t = s.revoke_integration_token(actor, &id).await?;
            note(&format!(
                "Integration token {:?} ({}) of {} was revoked.",
                t.name, t.id, t.username
            ));
        }
        IntegrationCommand::Usage { id, format } => {
            let uses = s.integration_token_usage(actor, &id).await?;
            print(&Listing::of(&CREDENTIAL_USE_COLUMNS, &uses).render(format.format));
        }
    }
    Ok(())
}
