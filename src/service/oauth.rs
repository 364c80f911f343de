//! OAuth clients (connected apps): a consumer key shown freely and a consumer secret shown once,
//! at creation, and stored as a digest (SPEC §7).

use super::audit::{self, Entry};
use super::{Actor, Result, Services, new_id, resolve};
use crate::crypto::{digest, random_base62};
use crate::domain::ids::KeyPrefix;
use crate::domain::validate;
use crate::store::oauth::{self, OAuthClientRow};

/// A consumer secret, returned once by `create_oauth_client`. Never printed by `Debug`.
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Services {
    pub async fn create_oauth_client(
        &self,
        actor: &Actor,
        org_input: &str,
        name: &str,
    ) -> Result<(OAuthClientRow, ClientSecret)> {
        let name = validate::text("client name", name, 80, true)?;
        let mut tx = self.db.begin().await?;
        let org = resolve::org(&mut tx.c(), org_input).await?;
        actor.check_org(&org.id)?;
        // Shaped like Salesforce's consumer keys (`3MVG9` + 80 characters) so clients that
        // sanity-check them accept ours; 64 base62 characters of secret (381 bits).
        let client_id = format!("3MVG9{}", random_base62(80));
        let secret = ClientSecret(random_base62(64));
        let now = self.now_ms();
        let row = OAuthClientRow {
            id: new_id(KeyPrefix::OAuthClient),
            org_id: org.id.clone(),
            name: name.clone(),
            client_id,
            secret_digest: digest(&secret.0),
            issue_refresh_tokens: false,
            run_as_user_id: None,
            created_at: now,
        };
        oauth::insert(&mut tx.c(), &row).await?;
        audit::record(
            &mut tx.c(),
            now,
            actor,
            Entry {
                org_id: &org.id,
                action: "oauth_client.created",
                section: audit::CONNECTED_APPS,
                display: format!("Created OAuth client {name}"),
                target_id: Some(&row.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((row, secret))
    }

    pub async fn list_oauth_clients(
        &self,
        actor: &Actor,
        org_input: &str,
    ) -> Result<Vec<OAuthClientRow>> {
        let mut c = self.db.conn().await?;
        let org = resolve::org(&mut c.c(), org_input).await?;
        actor.check_org(&org.id)?;
        Ok(oauth::list(&mut c.c(), &org.id).await?)
    }
}
