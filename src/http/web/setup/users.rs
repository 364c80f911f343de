//! Users: the list and search, creating a user, a user's page and its actions.

use super::{Page, chrome, messages, org};
use crate::domain::secret::Password;
use crate::http::AppState;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::settings::integration::{TokenLine, pick, token_lines};
use crate::http::web::settings::{RefreshLine, SessionLine, refresh_lines, session_lines};
use crate::http::web::{Chrome, Done, WebError, WebForm, given, page, user_error};
use crate::service::account::UserChange;
use crate::service::users::{NewUser, UserView};
use crate::service::views::Profile;
use crate::service::{ServiceError, fmt_ms, id18};
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use std::collections::HashMap;

pub struct UserLine {
    pub id: String,
    pub name: String,
    pub username: String,
    pub profile: String,
    pub active: bool,
    pub locked: bool,
    pub last_login: String,
}

#[derive(Deserialize, Default)]
pub(super) struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "web/setup_users.html")]
struct UsersPage {
    chrome: Chrome,
    q: String,
    /// The query string of the next page, when there may be one.
    next: Option<String>,
    users: Vec<UserLine>,
    profiles: Vec<Profile>,
    form: NewUserForm,
    rules: String,
}

/// Users per page of the Users list.
const USERS_PAGE: i64 = 200;

#[derive(Deserialize, Default)]
pub(super) struct UsersParams {
    q: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

async fn render_users(
    state: &AppState,
    s: &Signed,
    c: Chrome,
    form: NewUserForm,
    params: &UsersParams,
) -> Page {
    let sv = &state.services;
    let e = WebError::from;
    let users = sv
        .search_users(
            &s.actor,
            org(s),
            params.q.as_deref(),
            params.after.as_deref(),
            USERS_PAGE,
        )
        .await
        .map_err(e)?;
    let q = params.q.clone().unwrap_or_default();
    let next = (users.len() as i64 == USERS_PAGE).then(|| {
        serde_urlencoded::to_string([
            ("q", q.as_str()),
            ("after", users.last().map_or("", |u| u.username.as_str())),
        ])
        .unwrap_or_default()
    });
    let profiles = sv.list_profiles(&s.actor, org(s)).await?;
    let names: HashMap<&str, &str> = profiles
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let now = sv.now_ms();
    let users = users
        .iter()
        .map(|u| UserLine {
            id: id18(&u.id),
            name: u.display_name(),
            username: u.username.clone(),
            profile: names.get(u.profile_id.as_str()).unwrap_or(&"").to_string(),
            active: u.active,
            locked: u.locked_until.is_some_and(|t| t > now),
            last_login: u.last_login_at.map_or_else(|| "never".into(), fmt_ms),
        })
        .collect();
    let form = NewUserForm {
        profile: if form.profile.is_empty() {
            crate::domain::profile::STANDARD_USER.into()
        } else {
            form.profile
        },
        ..form
    };
    Ok(page(&UsersPage {
        chrome: c,
        q,
        next,
        users,
        profiles,
        form,
        rules: s.session.org().policy.rules_text(),
    }))
}

pub(super) async fn users_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(p): Query<UsersParams>,
) -> Page {
    let d = Done {
        done: p.done.clone(),
    };
    let c = chrome(&s, "Users", "/setup/users").with_notice(messages(&d));
    render_users(&state, &s, c, NewUserForm::default(), &p).await
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    Admin(s): Admin,
    form: WebForm<NewUserForm>,
) -> Page {
    s.check(&form)?;
    let f = form.data;
    let password = (!f.password.is_empty()).then(|| Password::new(f.password.clone()));
    let result = state
        .services
        .create_user(
            &s.actor,
            &NewUser {
                org: org(&s),
                username: &f.username,
                email: &f.email,
                first_name: &f.first_name,
                last_name: &f.last_name,
                profile: given(&Some(f.profile.clone())),
            },
            password.as_ref(),
        )
        .await;
    match result {
        Ok(u) => Ok(done(&format!("/setup/users/{}", id18(&u.id)), "created")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "Users", "/setup/users").with_error(msg);
            render_users(
                &state,
                &s,
                c,
                NewUserForm {
                    password: String::new(),
                    ..f
                },
                &UsersParams::default(),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_user.html")]
struct UserPage {
    chrome: Chrome,
    id: String,
    name: String,
    v: UserView,
    profiles: Vec<Profile>,
    last_login: String,
    password_changed: String,
    token_issued: String,
    token_refusal: Option<String>,
    totp: bool,
    sessions: Vec<SessionLine>,
    refresh_tokens: Vec<RefreshLine>,
    revoke_action: String,
    integration_tokens: Vec<TokenLine>,
    rules: String,
    /// The admin's own user: no admin reset of their own password.
    is_self: bool,
}

async fn render_user(state: &AppState, s: &Signed, id: &str, c: Chrome) -> Page {
    let sv = &state.services;
    let err = WebError::from;
    let v = sv.show_user(&s.actor, id).await.map_err(err)?;
    // Past this point the user is known to be in the admin's org.
    let profiles = sv.list_profiles(&s.actor, org(s)).await.map_err(err)?;
    let token_refusal = sv
        .token_reset_refusal(&s.actor, &v.user.id)
        .await
        .map_err(err)?;
    let totp = sv.totp_status(&s.actor, &v.user.id).await.map_err(err)?;
    let sessions = sv.sessions_of(&s.actor, &v.user.id).await.map_err(err)?;
    let refresh_tokens = sv
        .refresh_tokens_of(&s.actor, &v.user.id)
        .await
        .map_err(err)?;
    let integration_tokens = sv
        .list_integration_tokens(&s.actor, &v.user.id)
        .await
        .map_err(err)?;
    let never = || "never".to_string();
    let name = v.user.display_name();
    Ok(page(&UserPage {
        chrome: Chrome {
            title: name.clone(),
            ..c
        },
        id: id18(&v.user.id),
        name,
        profiles,
        last_login: v.user.last_login_at.map_or_else(never, fmt_ms),
        password_changed: v.user.password_changed_at.map_or_else(never, fmt_ms),
        token_issued: v.user.token_issued_at.map_or_else(never, fmt_ms),
        token_refusal,
        totp: totp.enrolled,
        sessions: session_lines(sessions, s.session.handle()),
        refresh_tokens: refresh_lines(refresh_tokens),
        revoke_action: format!("/setup/users/{}/revoke-refresh-token", id18(&v.user.id)),
        integration_tokens: token_lines(integration_tokens),
        rules: s.session.org().policy.rules_text(),
        is_self: v.user.id == s.session.user_id(),
        v,
    }))
}

pub(super) async fn user_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "User", "/setup/users").with_notice(messages(&d));
    render_user(&state, &s, &id, c).await
}

#[derive(Deserialize)]
pub(super) struct EditUserForm {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    profile: Option<String>,
    current_password: Option<String>,
}

pub(super) async fn edit_user(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    form: WebForm<EditUserForm>,
) -> Page {
    s.check(&form)?;
    let f = form.data;
    let change = UserChange {
        first_name: f.first_name,
        last_name: f.last_name,
        email: f.email,
        profile: f.profile.filter(|p| !p.is_empty()),
        current_password: f.current_password.map(Password::new),
    };
    match state.services.update_user(&s.actor, &id, &change).await {
        Ok(_) => Ok(done(&format!("/setup/users/{id}"), "saved")),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "User", "/setup/users").with_error(msg);
            render_user(&state, &s, &id, c).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    integration_token: String,
}

pub(super) async fn user_action(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path((id, action)): Path<(String, String)>,
    form: WebForm<ActionForm>,
) -> Page {
    s.check(&form)?;
    let sv = &state.services;
    let a = &s.actor;
    let result = match action.as_str() {
        "deactivate" => sv.deactivate(a, &id).await.map(|_| ()),
        "reactivate" => sv.reactivate(a, &id).await.map(|_| ()),
        "unlock" => sv.unlock(a, &id).await.map(|_| ()),
        "reset-token" => sv.reset_token(a, &id).await.map(|_| ()),
        "password" => sv
            .set_password(a, &id, &Password::new(form.data.password.clone()))
            .await
            .map(|_| ()),
        "remove-mfa" => sv.remove_totp(a, &id, None).await.map(|_| ()),
        "end-session" => sv.end_session(a, &id, &form.data.session).await.map(|_| ()),
        "revoke-refresh-token" => sv
            .revoke_refresh_token(a, &id, &form.data.refresh_token)
            .await
            .map(|_| ()),
        "revoke-integration-token" => {
            // The token must be this user's: one of another user, even of this org, is not
            // found here, so a stale or edited form cannot revoke someone else's.
            let tokens = sv.list_integration_tokens(a, &id).await?;
            let t = pick(tokens, &form.data.integration_token)?;
            sv.revoke_integration_token(a, &t.id).await.map(|_| ())
        }
        _ => Err(ServiceError::NotFound(format!("no action {action:?}"))),
    };
    match result {
        Ok(()) => Ok(done(&format!("/setup/users/{id}"), &action)),
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "User", "/setup/users").with_error(msg);
            render_user(&state, &s, &id, c).await
        }
    }
}
