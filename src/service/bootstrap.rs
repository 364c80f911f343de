//! `keyward init` and the first start of `keyward serve`: the first org and its administrator.

use super::orgs::insert_org;
use super::users::{NewUser, new_user_row};
use super::views::{Org, User};
use super::{Actor, Result, ServiceError, Services};
use crate::crypto::random_password;
use crate::domain::policy::OrgPolicy;
use crate::domain::profile::SYSTEM_ADMINISTRATOR;
use crate::domain::secret::Password;
use crate::store::{meta, orgs};

pub const DEFAULT_ORG: &str = "Default";
pub const DEFAULT_ADMIN: &str = "admin@keyward.local";

pub struct InitRequest {
    pub org_name: String,
    pub admin_username: String,
    pub admin_email: String,
    /// None: a random password is generated and returned, to be shown once.
    pub admin_password: Option<Password>,
}

impl Default for InitRequest {
    fn default() -> Self {
        InitRequest {
            org_name: DEFAULT_ORG.into(),
            admin_username: DEFAULT_ADMIN.into(),
            admin_email: DEFAULT_ADMIN.into(),
            admin_password: None,
        }
    }
}

pub struct Initialised {
    pub org: Org,
    pub admin: User,
    /// The generated password, when none was given: shown once, stored nowhere.
    pub generated_password: Option<Password>,
}

const BOOTSTRAP_KEY: &str = "bootstrapped_at";

impl Services {
    /// Initialised: `init` ran, or orgs were created some other way (`keyward org create`).
    pub async fn is_initialised(&self) -> Result<bool> {
        let mut c = self.db.conn().await?;
        Ok(meta::get(&mut c.as_conn(), BOOTSTRAP_KEY).await?.is_some()
            || orgs::count(&mut c.as_conn()).await? > 0)
    }

    /// Creates the first org and its System Administrator, in one transaction. Refused when
    /// the database was initialised before — by this node, another node or `keyward init`: the
    /// claim is a row, so exactly one of several nodes starting at once wins.
    pub async fn init(&self, req: InitRequest) -> Result<Initialised> {
        let actor = Actor::System;
        let (password, generated) = match req.admin_password {
            Some(p) => (p, false),
            None => (random_password(), true),
        };
        let now = self.now_ms();
        let mut admin = new_user_row(
            &NewUser {
                org: &req.org_name,
                username: &req.admin_username,
                email: &req.admin_email,
                first_name: "",
                last_name: "Administrator",
                profile: Some(SYSTEM_ADMINISTRATOR),
            },
            now,
        )?;
        // A new org has the default policy.
        OrgPolicy::default().check_password(&password, &admin.username)?;
        let hash = self.hasher.hash(&password).await?;
        let mut tx = self.db.begin().await?;
        if !meta::claim(&mut tx.as_conn(), BOOTSTRAP_KEY, &now.to_string()).await? {
            return Err(ServiceError::Conflict(
                "this keyward database is already initialised".into(),
            ));
        }
        if orgs::count(&mut tx.as_conn()).await? > 0 {
            return Err(ServiceError::Conflict(
                "this keyward database already has orgs: init creates the first one \
                 (use `keyward org create` and `keyward user create` to add more)"
                    .into(),
            ));
        }
        let (org, profiles) = insert_org(&mut tx.as_conn(), now, &actor, &req.org_name).await?;
        let profile = profiles
            .iter()
            .find(|p| p.name == SYSTEM_ADMINISTRATOR)
            .ok_or_else(|| ServiceError::Internal("no System Administrator profile".into()))?;
        admin.org_id = org.id.clone();
        admin.profile_id = profile.id.clone();
        self.insert_user(
            &mut tx.as_conn(),
            &actor,
            &org,
            &profile.name,
            &admin,
            Some(&hash),
        )
        .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(Initialised {
            org: org.into(),
            admin: admin.into(),
            generated_password: generated.then_some(password),
        })
    }
}
