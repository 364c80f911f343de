//! Profiles: named sets of permissions that decide how a user may log in (API enabled, API only,
//! password never expires, SSO enabled) and whether the user administers the org.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Permissions {
    /// May log in through the API (SOAP, OAuth). Without it: `API_CURRENTLY_DISABLED` (R-L8).
    pub api_enabled: bool,
    /// May log in only through the API, never the web UI (R-L8).
    pub api_only: bool,
    /// Exempt from `password_expiry_days` (R-L6).
    pub password_never_expires: bool,
    /// Credentials are checked by the org's delegated-authentication endpoint (R-L7).
    pub sso_enabled: bool,
    /// Administers the org: users, profiles, network access, policies (Setup).
    pub manage_users: bool,
}

/// A change to some of a profile's permissions: `None` leaves one as it is (the admin API's
/// merge patch sends only what changes; Setup's form sends them all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PermissionsChange {
    pub api_enabled: Option<bool>,
    pub api_only: Option<bool>,
    pub password_never_expires: Option<bool>,
    pub sso_enabled: Option<bool>,
    pub manage_users: Option<bool>,
}

impl PermissionsChange {
    /// Every permission set as in `p`.
    pub fn all(p: Permissions) -> PermissionsChange {
        PermissionsChange {
            api_enabled: Some(p.api_enabled),
            api_only: Some(p.api_only),
            password_never_expires: Some(p.password_never_expires),
            sso_enabled: Some(p.sso_enabled),
            manage_users: Some(p.manage_users),
        }
    }

    /// `current` with this change made.
    pub fn applied_to(&self, current: Permissions) -> Permissions {
        Permissions {
            api_enabled: self.api_enabled.unwrap_or(current.api_enabled),
            api_only: self.api_only.unwrap_or(current.api_only),
            password_never_expires: self
                .password_never_expires
                .unwrap_or(current.password_never_expires),
            sso_enabled: self.sso_enabled.unwrap_or(current.sso_enabled),
            manage_users: self.manage_users.unwrap_or(current.manage_users),
        }
    }
}

pub const SYSTEM_ADMINISTRATOR: &str = "System Administrator";
pub const STANDARD_USER: &str = "Standard User";
pub const API_ONLY_INTEGRATION: &str = "API Only Integration";

/// The profiles every org starts with (R-M3).
pub fn default_profiles() -> [(&'static str, Permissions); 3] {
    [
        (
            SYSTEM_ADMINISTRATOR,
            Permissions {
                api_enabled: true,
                manage_users: true,
                ..Permissions::default()
            },
        ),
        (
            STANDARD_USER,
            Permissions {
                api_enabled: true,
                ..Permissions::default()
            },
        ),
        (
            API_ONLY_INTEGRATION,
            Permissions {
                api_enabled: true,
                api_only: true,
                password_never_expires: true,
                ..Permissions::default()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_m3_default_profiles() {
        let p = default_profiles();
        assert_eq!(
            p.map(|(n, _)| n),
            [SYSTEM_ADMINISTRATOR, STANDARD_USER, API_ONLY_INTEGRATION]
        );
        assert!(p[0].1.manage_users && p[0].1.api_enabled && !p[0].1.api_only);
        assert!(p[2].1.api_only && p[2].1.password_never_expires && !p[2].1.manage_users);
    }

    #[test]
    fn a_change_leaves_what_it_does_not_name() {
        let admin = default_profiles()[0].1;
        let change = PermissionsChange {
            password_never_expires: Some(true),
            ..PermissionsChange::default()
        };
        let after = change.applied_to(admin);
        assert!(after.password_never_expires && after.manage_users && after.api_enabled);
        assert_eq!(
            PermissionsChange::all(admin).applied_to(Permissions::default()),
            admin
        );
    }
}
