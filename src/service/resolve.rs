//! Turning what a person typed (`ORG` as id or name, `U` as username or id, `PROFILE` as name
//! or id) into rows, with an error that says which it tried.

use super::{Actor, Result, ServiceError};
use crate::domain::ids::{KeyPrefix, SfId, looks_like_id};
use crate::domain::validate;
use crate::store::Conn;
use crate::store::oauth::{self, OAuthClientRow};
use crate::store::orgs::{self, OrgRow};
use crate::store::profiles::{self, ProfileRow};
use crate::store::users::{self, UserRow};

pub async fn org(c: &mut Conn<'_>, input: &str) -> Result<OrgRow> {
    if has_control(input) {
        return Err(ServiceError::NotFound(format!("no org {input:?}")));
    }
    let input = input.trim();
    if looks_like_id(input, KeyPrefix::Org) {
        let id = SfId::parse_as(input, KeyPrefix::Org)?;
        return orgs::get(c, id.as_15())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no org with id {input}")));
    }
    if input.is_empty() {
        return Err(ServiceError::Invalid(
            "an org id or name is required".into(),
        ));
    }
    orgs::find_by_name(c, input)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no org named {input:?}")))
}

pub async fn user(c: &mut Conn<'_>, input: &str) -> Result<UserRow> {
    if has_control(input) {
        return Err(missing_user(input));
    }
    let input = input.trim();
    // Usernames contain '@'; anything else shaped like an id is read as one (and refused with
    // a clear message if it is another object's id).
    let found = if id_shaped(input) {
        let id = SfId::parse_as(input, KeyPrefix::User)?;
        users::get_any_org(c, id.as_15()).await?
    } else {
        users::find_by_username(c, &validate::username(input)?).await?
    };
    found.ok_or_else(|| missing_user(input))
}

/// `user`, as `actor` may see it: a user of another org answers exactly as a user that does
/// not exist — the same error, the same text (R-M1) — so an admin learns nothing of other orgs.
pub async fn user_seen(c: &mut Conn<'_>, actor: &Actor, input: &str) -> Result<UserRow> {
    let u = user(c, input).await?;
    if actor.sees_org(&u.org_id) {
        Ok(u)
    } else {
        Err(missing_user(input))
    }
}

/// `user_seen`, then the row again under a lock, for a transaction that changes it.
pub async fn user_seen_for_update(c: &mut Conn<'_>, actor: &Actor, input: &str) -> Result<UserRow> {
    let u = user_seen(c, actor, input).await?;
    users::get_for_update(c, &u.org_id, &u.id)
        .await?
        .ok_or_else(|| missing_user(input))
}

/// The one answer for a user that is not there (or not the asker's to see).
fn missing_user(input: &str) -> ServiceError {
    let input = input.trim();
    if has_control(input) {
        return ServiceError::NotFound(format!("no user {:?}", input));
    }
    ServiceError::NotFound(if id_shaped(input) {
        format!("no user with id {input}")
    } else {
        format!("no user {}", input.to_lowercase())
    })
}

fn id_shaped(input: &str) -> bool {
    (input.len() == 15 || input.len() == 18) && input.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Typed input with control characters (a `%0A` in a URL) names nothing.
fn has_control(input: &str) -> bool {
    input.chars().any(char::is_control)
}

pub async fn profile(c: &mut Conn<'_>, org: &OrgRow, input: &str) -> Result<ProfileRow> {
    if has_control(input) {
        return Err(ServiceError::NotFound(format!(
            "no profile {input:?} in org {}",
            org.name
        )));
    }
    let input = input.trim();
    if looks_like_id(input, KeyPrefix::Profile) {
        let id = SfId::parse_as(input, KeyPrefix::Profile)?;
        return profiles::get(c, &org.id, id.as_15()).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("no profile with id {input} in org {}", org.name))
        });
    }
    profiles::find_by_name(c, &org.id, input)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no profile {input:?} in org {}", org.name)))
}

/// `org`, then the row again under a lock, for a transaction that changes it.
pub async fn org_for_update(c: &mut Conn<'_>, input: &str) -> Result<OrgRow> {
    let o = org(c, input).await?;
    orgs::get_for_update(c, &o.id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no org named {:?}", o.name)))
}

/// An OAuth client by consumer key (`3MVG9…`) or id (`0H4…`), as `actor` may see it: another
/// org's client answers exactly as one that does not exist (R-M1).
pub async fn oauth_client(c: &mut Conn<'_>, actor: &Actor, input: &str) -> Result<OAuthClientRow> {
    if has_control(input) {
        return Err(ServiceError::NotFound(format!("no OAuth client {input:?}")));
    }
    let input = input.trim();
    let missing = || ServiceError::NotFound(format!("no OAuth client {input}"));
    let found = if looks_like_id(input, KeyPrefix::OAuthClient) {
        let id = SfId::parse_as(input, KeyPrefix::OAuthClient).map_err(|_| missing())?;
        oauth::get_any_org(c, id.as_15()).await?
    } else if !input.is_empty() && input.len() <= 255 {
        oauth::find_by_client_id(c, input).await?
    } else {
        None
    };
    let client = found.ok_or_else(missing)?;
    if !actor.sees_org(&client.org_id) {
        return Err(missing());
    }
    actor.check_org(&client.org_id)?;
    Ok(client)
}
