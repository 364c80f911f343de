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
}
