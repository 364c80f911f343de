//! The setup audit trail (R-M4): who did what, when, to what — never a secret.

use super::{Actor, Result, new_id};
use crate::domain::ids::KeyPrefix;
use crate::store::Conn;
use crate::store::audit::{self as rows, AuditRow};
use crate::store::users::UserRow;

/// The sections of Salesforce's Setup Audit Trail that keyward's changes fall in.
pub const MANAGE_USERS: &str = "Manage Users";
pub const NETWORK_ACCESS: &str = "Network Access";
pub const PASSWORD_POLICIES: &str = "Password Policies";
pub const PROFILES: &str = "Profiles";
pub const COMPANY_PROFILE: &str = "Company Profile";
pub const CONNECTED_APPS: &str = "Connected Apps";
pub const SINGLE_SIGN_ON: &str = "Single Sign-On Settings";

/// One audit entry, written in the caller's transaction.
pub(crate) struct Entry<'a> {
    pub org_id: &'a str,
    pub action: &'a str,
    pub section: &'a str,
    pub display: String,
    pub target_id: Option<&'a str>,
}

pub(crate) async fn record(
    c: &mut Conn<'_>,
    now_ms: i64,
    actor: &Actor,
    e: Entry<'_>,
) -> Result<()> {
    rows::insert(
        c,
        &AuditRow {
            id: new_id(KeyPrefix::AuditTrail),
            org_id: e.org_id.to_string(),
            created_at: now_ms,
            actor: actor.audit_name(),
            action: e.action.to_string(),
            section: e.section.to_string(),
            display: e.display,
            target_id: e.target_id.map(str::to_string),
        },
    )
    .await?;
    Ok(())
}

/// An entry about a user, in Setup's "Manage Users" section.
pub(crate) async fn user_event(
    c: &mut Conn<'_>,
    now_ms: i64,
    actor: &Actor,
    user: &UserRow,
    action: &str,
    display: String,
) -> Result<()> {
    record(
        c,
        now_ms,
        actor,
        Entry {
            org_id: &user.org_id,
            action,
            section: MANAGE_USERS,
            display,
            target_id: Some(&user.id),
        },
    )
    .await
}
