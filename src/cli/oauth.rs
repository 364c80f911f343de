//! `keyward oauth client …`: OAuth clients (connected apps). A secret is printed once, by the
//! command that makes it, and never again.

use super::{CliError, OauthClientCommand, note, print};
use crate::listing::Listing;
use crate::service::oauth::ClientOptions;
use crate::service::{Actor, Services, fmt_ms, id18};
use serde_json::{Value, json};

pub(super) async fn oauth(
    s: &Services,
    actor: &Actor,
    c: OauthClientCommand,
) -> Result<(), CliError> {
    match c {
        OauthClientCommand::Create {
            org,
            name,
            refresh_tokens,
            run_as,
        } => {
            let options = ClientOptions {
                refresh_tokens,
                run_as: run_as.as_deref(),
                current_password: None,
            };
            let (row, secret) = s.create_oauth_client(actor, &org, &name, &options).await?;
            print(&format!("{}\n{}\n", row.client_id, secret.0));
        }
        OauthClientCommand::List { org, format } => {
            let mut l = Listing::new(&[
                "id",
                "name",
                "client_id",
                "refresh_tokens",
                "run_as_user_id",
                "enabled",
                "created",
            ]);
            for c in s.list_oauth_clients(actor, &org).await? {
                l.push(vec![
                    json!(id18(&c.id)),
                    json!(c.name),
                    json!(c.client_id),
                    json!(c.issue_refresh_tokens),
                    c.run_as_user_id
                        .as_deref()
                        .map_or(Value::Null, |u| json!(id18(u))),
                    json!(c.enabled),
                    json!(fmt_ms(c.created_at)),
                ]);
            }
            print(&l.render(format.format));
        }
        OauthClientCommand::RotateSecret { client } => {
            let (_, secret) = s.rotate_client_secret(actor, &client, None).await?;
            print(&format!("{}\n", secret.0));
        }
        OauthClientCommand::Disable { client } => {
            if !s.set_client_enabled(actor, &client, false).await? {
                note("The client was already disabled.");
            }
        }
        OauthClientCommand::Enable { client } => {
            if !s.set_client_enabled(actor, &client, true).await? {
                note("The client was already enabled.");
            }
        }
        OauthClientCommand::Delete { client } => s.delete_oauth_client(actor, &client).await?,
    }
    Ok(())
}
