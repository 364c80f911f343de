//! `keyward policy …`: an org's password policy, lockout and session settings, changed one
//! setting at a time (the others keep their values) and shown as one record.

use super::{CliError, PolicyCommand, print, show};
use crate::domain::integration::ReminderDays;
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
            integration_max_days,
            integration_grace_hours,
            token_grace_hours,
            integration_reminder_days,
        } => {
            let integration_reminder_days = integration_reminder_days
                .map(|d| ReminderDays::parse(&d).map_err(CliError::Usage))
                .transpose()?;
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
                    integration_max_days,
                    integration_grace_hours,
                    integration_reminder_days,
                    token_grace_hours,
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
                ("integration_max_days", json!(p.integration_max_days)),
                ("integration_grace_hours", json!(p.integration_grace_hours)),
                (
                    "integration_reminder_days",
                    json!(p.integration_reminder_days.to_string()),
                ),
                ("token_grace_hours", json!(p.token_grace_hours)),
            ];
            print(&show(&fields, format.format));
        }
    }
    Ok(())
}
