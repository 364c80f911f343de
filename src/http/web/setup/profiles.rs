//! Profiles: the list, creating one, a profile's permissions and its login IP ranges.

use super::{Page, RangeForm, chrome, messages, org, ranges18};
use crate::domain::profile::{Permissions, PermissionsChange};
use crate::http::AppState;
use crate::http::web::Nothing;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::{Chrome, Done, WebError, WebForm, checked, given, page, user_error};
use crate::service::id18;
use crate::service::views::IpRange;
use crate::service::views::Profile;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "web/setup_profiles.html")]
struct ProfilesPage {
    chrome: Chrome,
    profiles: Vec<Profile>,
    perms: Permissions,
}

async fn render_profiles(state: &AppState, s: &Signed, c: Chrome) -> Page {
    let profiles = state.services.list_profiles(&s.actor, org(s)).await?;
    Ok(page(&ProfilesPage {
        chrome: c,
        profiles: profiles
            .into_iter()
            .map(|p| Profile {
                id: id18(&p.id),
                ..p
            })
            .collect(),
        perms: Permissions {
            api_enabled: true,
            ..Permissions::default()
        },
    }))
}

pub(super) async fn profiles_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Profiles", "/setup/profiles").with_notice(messages(&d));
    render_profiles(&state, &s, c).await
}

#[derive(Deserialize)]
pub(super) struct ProfileForm {
    #[serde(default)]
    name: String,
    api_enabled: Option<String>,
    api_only: Option<String>,
    password_never_expires: Option<String>,
    sso_enabled: Option<String>,
    manage_users: Option<String>,
}

impl ProfileForm {
    fn permissions(&self) -> Permissions {
        Permissions {
            api_enabled: checked(&self.api_enabled),
            api_only: checked(&self.api_only),
            password_never_expires: checked(&self.password_never_expires),
            sso_enabled: checked(&self.sso_enabled),
            manage_users: checked(&self.manage_users),
        }
    }
}

pub(super) async fn create_profile(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<ProfileForm>,
) -> Page {
    s.check(&form)?;
    let result = state
        .services
        .create_profile(&s.actor, org(&s), &form.data.name, form.data.permissions())
        .await;
    match result {
        Ok(p) => Ok(done(&format!("/setup/profiles/{}", id18(&p.id)), "created")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Profiles", "/setup/profiles").with_error(msg);
            render_profiles(&state, &s, c).await
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_profile.html")]
struct ProfilePage {
    chrome: Chrome,
    ranges_action: String,
    id: String,
    name: String,
    perms: Permissions,
    ranges: Vec<IpRange>,
}

async fn render_profile(state: &AppState, s: &Signed, id: &str, c: Chrome) -> Page {
    let sv = &state.services;
    let err = WebError::from;
    let p = sv.get_profile(&s.actor, org(s), id).await.map_err(err)?;
    let ranges = sv
        .list_login_ranges(&s.actor, org(s), &p.id)
        .await
        .map_err(err)?;
    Ok(page(&ProfilePage {
        chrome: Chrome {
            title: format!("Profile {}", p.name),
            ..c
        },
        ranges_action: format!("/setup/profiles/{}/ranges", id18(&p.id)),
        id: id18(&p.id),
        name: p.name.clone(),
        perms: p.permissions,
        ranges: ranges18(ranges),
    }))
}

pub(super) async fn profile_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Profile", "/setup/profiles").with_notice(messages(&d));
    render_profile(&state, &s, &id, c).await
}

pub(super) async fn edit_profile(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    form: WebForm<ProfileForm>,
) -> Page {
    s.check(&form)?;
    let result = state
        .services
        .update_profile(
            &s.actor,
            org(&s),
            &id,
            PermissionsChange::all(form.data.permissions()),
        )
        .await;
    match result {
        Ok(_) => Ok(done(&format!("/setup/profiles/{id}"), "saved")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Profile", "/setup/profiles").with_error(msg);
            render_profile(&state, &s, &id, c).await
        }
    }
}

pub(super) async fn add_login_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    form: WebForm<RangeForm>,
) -> Page {
    s.check(&form)?;
    let f = &form.data;
    let result = state
        .services
        .add_login_range(
            &s.actor,
            org(&s),
            &id,
            &f.start,
            given(&f.end),
            &f.description,
        )
        .await;
    match result {
        Ok(_) => Ok(done(&format!("/setup/profiles/{id}"), "added")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Profile", "/setup/profiles").with_error(msg);
            render_profile(&state, &s, &id, c).await
        }
    }
}

pub(super) async fn remove_login_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path((id, range)): Path<(String, String)>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    state
        .services
        .remove_login_range(&s.actor, org(&s), &id, &range)
        .await?;
    Ok(done(&format!("/setup/profiles/{id}"), "removed"))
}
