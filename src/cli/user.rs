//! `keyward user …`: creating users, admin password resets, (de)activation, unlocking, and
//! showing and listing users. Passwords come on stdin only, never as arguments.

use super::{CliError, UserCommand, ms_json, note, print, read_password_stdin, show};
use crate::listing::Listing;
use crate::service::users::NewUser;
use crate::service::{Actor, Services, id18};
use serde_json::{Value, json};

pub(super) async fn user(s: &Services, actor: &Actor, c: UserCommand) -> Result<(), CliError> {
    match c {
        UserCommand::Create {
            org,
            username,
            email,
            first_name,
            last_name,
            profile,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let u = s
                .create_user(
                    actor,
                    &NewUser {
                        org: &org,
                        username: &username,
                        email: &email,
                        first_name: &first_name,
                        last_name: &last_name,
                        profile: profile.as_deref(),
                    },
                    password.as_ref(),
                )
                .await?;
            print(&format!("{}\n", id18(&u.id)));
        }
        UserCommand::SetPassword {
            user,
            password_stdin,
        } => {
            if !password_stdin {
                return Err(CliError::Usage(
                    "give the password on stdin with --password-stdin (never as an argument)"
                        .into(),
                ));
            }
            let pw = read_password_stdin()?;
            let u = s.set_password(actor, &user, &pw).await?;
            note(&format!(
                "Password of {} set; a new security token was emailed to {}.",
                u.username, u.email
            ));
        }
        UserCommand::Deactivate { user } => {
            if !s.deactivate(actor, &user).await? {
                note("The user was already inactive.");
            }
        }
        UserCommand::Reactivate { user } => {
            if !s.reactivate(actor, &user).await? {
                note("The user was already active.");
            }
        }
        UserCommand::Unlock { user } => {
            if !s.unlock(actor, &user).await? {
                note("The user was not locked.");
            }
        }
        UserCommand::Show { user, format } => {
            let v = s.show_user(actor, &user).await?;
            let u = &v.user;
            let fields: Vec<(&'static str, Value)> = vec![
                ("id", json!(id18(&u.id))),
                ("username", json!(u.username)),
                ("email", json!(u.email)),
                ("first_name", json!(u.first_name)),
                ("last_name", json!(u.last_name)),
                ("org", json!(v.org_name)),
                ("org_id", json!(id18(&u.org_id))),
                ("profile", json!(v.profile_name)),
                ("profile_id", json!(id18(&u.profile_id))),
                ("active", json!(u.active)),
                ("locked", json!(v.locked)),
                (
                    "locked_until",
                    if v.locked {
                        ms_json(u.locked_until)
                    } else {
                        Value::Null
                    },
                ),
                ("failed_logins", json!(u.failed_logins)),
                ("password_set", json!(u.has_password)),
                ("password_changed", ms_json(u.password_changed_at)),
                ("token_issued", ms_json(u.token_issued_at)),
                ("tokens_issued", json!(v.tokens_issued)),
                ("active_sessions", json!(v.active_sessions)),
                ("last_login", ms_json(u.last_login_at)),
                ("created", ms_json(Some(u.created_at))),
            ];
            print(&show(&fields, format.format));
        }
        UserCommand::List { org, format } => {
            let mut l = Listing::new(&["id", "username", "email", "name", "active", "locked"]);
            let now = s.now_ms();
            for u in s.list_users(actor, &org).await? {
                l.push(vec![
                    json!(id18(&u.id)),
                    json!(u.username),
                    json!(u.email),
                    json!(u.full_name()),
                    json!(u.active),
                    json!(u.locked_until.is_some_and(|t| t > now)),
                ]);
            }
            print(&l.render(format.format));
        }
    }
    Ok(())
}
