//! Network access: an org's trusted IP ranges (R-L2), profiles and their login IP ranges (R-L1).

use super::audit::{self, Entry};
use super::views::{self, Profile, all};
use super::{Actor, Result, ServiceError, Services, new_id, resolve};
use crate::domain::ids::{KeyPrefix, SfId, looks_like_id};
use crate::domain::ip::IpRange;
use crate::domain::profile::Permissions;
use crate::domain::validate;
use crate::store::StoreError;
use crate::store::profiles::{self, ProfileRow};
use crate::store::ranges::{self, IpRangeRow};

/// The ranges stored for an org or profile, as domain values. A row that no longer parses
/// (it cannot happen through keyward) is skipped with a warning rather than failing logins.
pub(crate) fn parse_ranges(rows: &[IpRangeRow]) -> Vec<IpRange> {
    rows.iter()
        .filter_map(|r| match IpRange::parse(&r.start_ip, Some(&r.end_ip)) {
            Ok(range) => Some(range),
            Err(e) => {
                tracing::warn!(range_id = %r.id, error = %e, "ignoring an unreadable IP range");
                None
            }
        })
        .collect()
}

/// Where a range belongs.
enum Owner<'a> {
    /// The org's trusted ranges (Network Access).
    Org,
    /// A profile's login IP ranges.
    Profile(&'a str),
}

impl Services {
    /// Adds a trusted IP range to the org (`START END`, or a CIDR as `START` alone).
    pub async fn add_trusted_range(
        &self,
        actor: &Actor,
        org: &str,
        start: &str,
        end: Option<&str>,
        description: &str,
    ) -> Result<views::IpRange> {
        self.add_range(actor, org, Owner::Org, start, end, description)
            .await
    }

    pub async fn list_trusted_ranges(
        &self,
        actor: &Actor,
        org: &str,
    ) -> Result<Vec<views::IpRange>> {
        self.list_ranges(actor, org, Owner::Org).await
    }

    pub async fn remove_trusted_range(&self, actor: &Actor, org: &str, id: &str) -> Result<()> {
        self.remove_range(actor, org, Owner::Org, id).await
    }

    pub async fn add_login_range(
        &self,
        actor: &Actor,
        org: &str,
        profile: &str,
        start: &str,
        end: Option<&str>,
        description: &str,
    ) -> Result<views::IpRange> {
        self.add_range(actor, org, Owner::Profile(profile), start, end, description)
            .await
    }

    pub async fn list_login_ranges(
        &self,
        actor: &Actor,
        org: &str,
        profile: &str,
    ) -> Result<Vec<views::IpRange>> {
        self.list_ranges(actor, org, Owner::Profile(profile)).await
    }

    pub async fn remove_login_range(
        &self,
        actor: &Actor,
        org: &str,
        profile: &str,
        id: &str,
    ) -> Result<()> {
        self.remove_range(actor, org, Owner::Profile(profile), id)
            .await
    }

    async fn add_range(
        &self,
        actor: &Actor,
        org_input: &str,
        owner: Owner<'_>,
        start: &str,
        end: Option<&str>,
        description: &str,
    ) -> Result<views::IpRange> {
        let range = IpRange::parse(start, end)?;
        if matches!(owner, Owner::Org) {
            range.check_trusted_size()?;
        }
        let description = validate::text("description", description, 255, false)?;
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let (profile, prefix, section, what) = match owner {
            Owner::Org => (
                None,
                KeyPrefix::TrustedIpRange,
                audit::NETWORK_ACCESS,
                "trusted IP range".to_string(),
            ),
            Owner::Profile(p) => {
                let p = resolve::profile(&mut tx.as_conn(), &org, p).await?;
                let what = format!("login IP range to profile {}", p.name);
                (Some(p), KeyPrefix::LoginIpRange, audit::PROFILES, what)
            }
        };
        let now = self.now_ms();
        let row = IpRangeRow {
            id: new_id(prefix),
            org_id: org.id.clone(),
            profile_id: profile.as_ref().map(|p| p.id.clone()),
            start_ip: range.start().to_string(),
            end_ip: range.end().to_string(),
            description,
            created_at: now,
        };
        ranges::insert(&mut tx.as_conn(), &row).await?;
        audit::record(
            &mut tx.as_conn(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: if profile.is_some() {
                    "login_ip_range.added"
                } else {
                    "trusted_ip_range.added"
                },
                section,
                display: format!("Added {what}: {range}"),
                target_id: Some(&row.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    async fn list_ranges(
        &self,
        actor: &Actor,
        org_input: &str,
        owner: Owner<'_>,
    ) -> Result<Vec<views::IpRange>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let profile = match owner {
            Owner::Org => None,
            Owner::Profile(p) => Some(resolve::profile(&mut c.as_conn(), &org, p).await?.id),
        };
        Ok(all(ranges::list(
            &mut c.as_conn(),
            &org.id,
            profile.as_deref(),
        )
        .await?))
    }

    async fn remove_range(
        &self,
        actor: &Actor,
        org_input: &str,
        owner: Owner<'_>,
        id_input: &str,
    ) -> Result<()> {
        let prefix = match owner {
            Owner::Org => KeyPrefix::TrustedIpRange,
            Owner::Profile(_) => KeyPrefix::LoginIpRange,
        };
        let id = SfId::parse_as(id_input.trim(), prefix)?;
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let (profile, section, what) = match owner {
            Owner::Org => (None, audit::NETWORK_ACCESS, "trusted IP range".to_string()),
            Owner::Profile(p) => {
                let p = resolve::profile(&mut tx.as_conn(), &org, p).await?;
                let what = format!("login IP range of profile {}", p.name);
                (Some(p), audit::PROFILES, what)
            }
        };
        let existing = ranges::list(
            &mut tx.as_conn(),
            &org.id,
            profile.as_ref().map(|p| p.id.as_str()),
        )
        .await?
        .into_iter()
        .find(|r| r.id == id.as_15())
        .ok_or_else(|| ServiceError::NotFound(format!("no {what} with id {}", id_input.trim())))?;
        ranges::delete(
            &mut tx.as_conn(),
            &org.id,
            profile.as_ref().map(|p| p.id.as_str()),
            &existing.id,
        )
        .await?;
        audit::record(
            &mut tx.as_conn(),
            self.now_ms(),
            actor,
            Entry {
                org_id: &org.id,
                action: if profile.is_some() {
                    "login_ip_range.removed"
                } else {
                    "trusted_ip_range.removed"
                },
                section,
                display: format!("Removed {what}: {}-{}", existing.start_ip, existing.end_ip),
                target_id: Some(&existing.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_profile(
        &self,
        actor: &Actor,
        org_input: &str,
        name: &str,
        permissions: Permissions,
    ) -> Result<Profile> {
        let name = validate::text("profile name", name, 80, true)?;
        if looks_like_id(&name, KeyPrefix::Profile) {
            return Err(ServiceError::Invalid(format!(
                "a profile name must not look like a profile id ({name:?})"
            )));
        }
        if permissions.api_only && !permissions.api_enabled {
            return Err(ServiceError::Invalid(
                "--api-only and --no-api contradict each other: an API-only profile needs the API"
                    .into(),
            ));
        }
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        let now = self.now_ms();
        let row = ProfileRow {
            id: new_id(KeyPrefix::Profile),
            org_id: org.id.clone(),
            name: name.clone(),
            api_enabled: permissions.api_enabled,
            api_only: permissions.api_only,
            password_never_expires: permissions.password_never_expires,
            sso_enabled: permissions.sso_enabled,
            manage_users: permissions.manage_users,
            created_at: now,
        };
        match profiles::insert(&mut tx.as_conn(), &row).await {
            Err(StoreError::Conflict(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "org {} already has a profile named {name:?}",
                    org.name
                )));
            }
            r => r?,
        }
        let mut flags = Vec::new();
        if row.api_enabled {
            flags.push("API enabled");
        }
        if row.api_only {
            flags.push("API only");
        }
        if row.password_never_expires {
            flags.push("password never expires");
        }
        if row.sso_enabled {
            flags.push("single sign-on");
        }
        if row.manage_users {
            flags.push("manage users");
        }
        audit::record(
            &mut tx.as_conn(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: "profile.created",
                section: audit::PROFILES,
                display: format!("Created profile {name} ({})", flags.join(", ")),
                target_id: Some(&row.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn list_profiles(&self, actor: &Actor, org_input: &str) -> Result<Vec<Profile>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.as_conn(), org_input).await?;
        actor.check_org(&org.id)?;
        Ok(all(profiles::list(&mut c.as_conn(), &org.id).await?))
    }
}
