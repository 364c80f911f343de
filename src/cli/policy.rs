//! `keyward policy …`: an org's password policy, lockout and session settings, changed one
//! setting at a time (the others keep their values) and shown as one record.

use super::{CliError, PolicyCommand, print, show};
use crate::domain::policy::Complexity;
use crate::service::orgs::PolicyChange;
use crate::service::{Actor, Services};
use serde_json::{Value, json};

pub(super) async fn policy(s: &Services, actor: &Actor, c: PolicyCommand) -> Result<(), CliError> {
    match c {
        PolicyCommand::Set {
            org,
            lockout_attempts,
            lockout_minutes,
            password_expiry_days,
            session_seconds,
            session_max_seconds,
            min_password_length,
            password_history,
            complexity,
        } => {
            let complexity = match complexity {
                None => None,
                Some(c) => Some(Complexity::parse(&c).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown complexity {c:?}: use one of {}",
                        Complexity::ALL.map(|c| c.as_str()).join(", ")
                    ))
                })?),
            };
            s.set_policy(
                actor,
                &org,
                &PolicyChange {
                    lockout_attempts,
                    lockout_minutes,
                    password_expiry_days,
                    session_seconds,
                    session_max_seconds,
                    min_password_length,
                    password_history,
                    complexity,
                },
            )
            .await?;
        }
        PolicyCommand::Show { org, format } => {
            let o = s.get_org(actor, &org).await?;
            let p = o.policy;
            let fields: Vec<(&'static str, Value)> = vec![
                ("org", json!(o.name)),
                ("min_password_length", json!(p.min_password_length)),
                ("complexity", json!(p.complexity.as_str())),
                ("password_history", json!(p.password_history)),
                ("password_expiry_days", json!(p.password_expiry_days)),
                ("lockout_attempts", json!(p.lockout_attempts)),
                ("lockout_minutes", json!(p.lockout_minutes)),
                ("session_seconds", json!(p.session_seconds)),
                ("session_max_seconds", json!(p.session_max_seconds)),
            ];
            print(&show(&fields, format.format));
        }
    }
    Ok(())
}
