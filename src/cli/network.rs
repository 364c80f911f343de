//! `keyward network …` and `keyward profile …`: an org's trusted IP ranges, its profiles and
//! their login IP ranges. Together because both kinds of range list print alike.

use super::{CliError, LoginIpCommand, NetworkCommand, ProfileCommand, print};
use crate::domain::profile::Permissions;
use crate::listing::Listing;
use crate::service::views::IpRange;
use crate::service::{Actor, Services, fmt_ms, id18};
use serde_json::json;

fn ranges_listing(rows: Vec<IpRange>) -> Listing {
    let mut l = Listing::new(&["id", "start", "end", "description", "created"]);
    for r in rows {
        l.push(vec![
            json!(id18(&r.id)),
            json!(r.start_ip),
            json!(r.end_ip),
            json!(r.description),
            json!(fmt_ms(r.created_at)),
        ]);
    }
    l
}

pub(super) async fn network(
    s: &Services,
    actor: &Actor,
    c: NetworkCommand,
) -> Result<(), CliError> {
    match c {
        NetworkCommand::Add {
            org,
            start,
            end,
            description,
        } => {
            let r = s
                .add_trusted_range(actor, &org, &start, end.as_deref(), &description)
                .await?;
            print(&format!("{}\n", id18(&r.id)));
        }
        NetworkCommand::List { org, format } => {
            let rows = s.list_trusted_ranges(actor, &org).await?;
            print(&ranges_listing(rows).render(format.format));
        }
        NetworkCommand::Remove { org, range_id } => {
            s.remove_trusted_range(actor, &org, &range_id).await?;
        }
    }
    Ok(())
}

pub(super) async fn profile(
    s: &Services,
    actor: &Actor,
    c: ProfileCommand,
) -> Result<(), CliError> {
    match c {
        ProfileCommand::Create {
            org,
            name,
            api_only,
            password_never_expires,
            no_api,
            sso,
            manage_users,
        } => {
            let p = s
                .create_profile(
                    actor,
                    &org,
                    &name,
                    Permissions {
                        api_enabled: !no_api,
                        api_only,
                        password_never_expires,
                        sso_enabled: sso,
                        manage_users,
                    },
                )
                .await?;
            print(&format!("{}\n", id18(&p.id)));
        }
        ProfileCommand::List { org, format } => {
            let mut l = Listing::new(&[
                "id",
                "name",
                "api_enabled",
                "api_only",
                "password_never_expires",
                "sso_enabled",
                "manage_users",
            ]);
            for p in s.list_profiles(actor, &org).await? {
                l.push(vec![
                    json!(id18(&p.id)),
                    json!(p.name),
                    json!(p.permissions.api_enabled),
                    json!(p.permissions.api_only),
                    json!(p.permissions.password_never_expires),
                    json!(p.permissions.sso_enabled),
                    json!(p.permissions.manage_users),
                ]);
            }
            print(&l.render(format.format));
        }
        ProfileCommand::LoginIp(LoginIpCommand::Add {
            org,
            profile,
            start,
            end,
            description,
        }) => {
            let r = s
                .add_login_range(actor, &org, &profile, &start, end.as_deref(), &description)
                .await?;
            print(&format!("{}\n", id18(&r.id)));
        }
        ProfileCommand::LoginIp(LoginIpCommand::List {
            org,
            profile,
            format,
        }) => {
            let rows = s.list_login_ranges(actor, &org, &profile).await?;
            print(&ranges_listing(rows).render(format.format));
        }
        ProfileCommand::LoginIp(LoginIpCommand::Remove {
            org,
            profile,
            range_id,
        }) => {
            s.remove_login_range(actor, &org, &profile, &range_id)
                .await?;
        }
    }
    Ok(())
}
