//! `keyward org …`: creating and listing orgs, and an org's delegated-authentication URL; the
//! other per-org settings have their own command groups.

use super::{CliError, OrgCommand, print};
use crate::listing::Listing;
use crate::service::{Actor, Services, fmt_ms, id18};
use serde_json::json;

pub(super) async fn org(s: &Services, actor: &Actor, c: OrgCommand) -> Result<(), CliError> {
    match c {
        OrgCommand::Create { name } => {
            let org = s.create_org(actor, &name).await?;
            print(&format!("{}\n", id18(&org.id)));
        }
        OrgCommand::List(f) => {
            let mut l = Listing::new(&["id", "name", "delegated_auth_url", "created"]);
            for o in s.list_orgs().await? {
                l.push(vec![
                    json!(id18(&o.id)),
                    json!(o.name),
                    json!(o.delegated_auth_url),
                    json!(fmt_ms(o.created_at)),
                ]);
            }
            print(&l.render(f.format));
        }
        OrgCommand::SetDelegatedAuth { org, url } => {
            s.set_delegated_auth(actor, &org, Some(&url)).await?;
        }
    }
    Ok(())
}
