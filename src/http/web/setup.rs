//! Setup, for admins of the org (R-M1: every page and action is scoped to the acting admin's
//! org by the services; another org's ids answer 404): users, profiles, network access,
//! password policies, session settings, OAuth clients, single sign-on, login history (filters,
//! CSV, per-hour chart), the audit trail and the email log.

use super::auth::{Admin, Signed, done};
use super::settings::{RefreshLine, SessionLine, refresh_lines, session_lines};
use super::{
    Chrome, Done, NavItem, WebError, WebForm, capitalise, checked, given, page, user_error,
};
use crate::domain::login::{Channel, LoginStatus};
use crate::domain::policy::{Complexity, OrgPolicy};
use crate::domain::profile::{Permissions, PermissionsChange};
use crate::domain::secret::Password;
use crate::http::{AppState, RequestId};
use crate::listing::{Format, Listing};
use crate::service::account::UserChange;
use crate::service::admin::{HistoryQuery, HourCount};
use crate::service::oauth::ClientOptions;
use crate::service::orgs::{PolicyChange, policy_of};
use crate::service::users::{NewUser, UserView};
use crate::service::{ServiceError, fmt_ms, id18};
use crate::store::profiles::ProfileRow;
use crate::store::ranges::IpRangeRow;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/setup", get(|| async { Redirect::to("/setup/users") }))
        .route("/setup/users", get(users_page).post(create_user))
        .route("/setup/users/{id}", get(user_page).post(edit_user))
        .route("/setup/users/{id}/{action}", post(user_action))
        .route("/setup/profiles", get(profiles_page).post(create_profile))
        .route("/setup/profiles/{id}", get(profile_page).post(edit_profile))
        .route("/setup/profiles/{id}/ranges", post(add_login_range))
        .route(
            "/setup/profiles/{id}/ranges/{range}/delete",
            post(remove_login_range),
        )
        .route("/setup/network", get(network_page).post(add_trusted_range))
        .route("/setup/network/{range}/delete", post(remove_trusted_range))
        .route(
            "/setup/password-policies",
            get(policies_page).post(save_policies),
        )
        .route(
            "/setup/session-settings",
            get(session_settings_page).post(save_session_settings),
        )
        .route("/setup/oauth", get(oauth_page).post(create_oauth_client))
        .route("/setup/oauth/{id}/{action}", post(oauth_client_action))
        .route("/setup/sso", get(sso_page).post(save_sso))
        .route("/setup/login-history", get(history_page))
        .route("/setup/login-history.csv", get(history_csv))
        .route("/setup/audit", get(audit_page))
        .route("/setup/mail", get(mail_page))
        .route("/setup/mail/{id}/retry", post(retry_mail))
}

type Page = Result<Response, WebError>;

const NAV: [(&str, &str); 10] = [
    ("/setup/users", "Users"),
    ("/setup/profiles", "Profiles"),
    ("/setup/network", "Network Access"),
    ("/setup/password-policies", "Password Policies"),
    ("/setup/session-settings", "Session Settings"),
    ("/setup/oauth", "OAuth Clients"),
    ("/setup/sso", "Single Sign-On"),
    ("/setup/login-history", "Login History"),
    ("/setup/audit", "Setup Audit Trail"),
    ("/setup/mail", "Email Log"),
];

fn chrome(s: &Signed, title: &str, current: &str) -> Chrome {
    let mut c = s.chrome(title, "setup");
    c.nav_label = "Setup";
    c.nav = NAV
        .iter()
        .map(|(href, label)| NavItem {
            href,
            label,
            current: *href == current,
        })
        .collect();
    c
}

fn org(s: &Signed) -> &str {
    &s.session.org.id
}

fn messages(d: &Done) -> Option<&'static str> {
    Some(match d.done.as_deref()? {
        "created" => "Created.",
        "saved" => "Saved.",
        "added" => "The range was added.",
        "removed" => "The range was removed.",
        "deactivate" => "The user was deactivated: every login fails and every session ended.",
        "reactivate" => "The user was reactivated.",
        "unlock" => "The user was unlocked.",
        "reset-token" => "A new security token was emailed to the user.",
        "password" => {
            "The password was reset: the user's sessions ended and a new token was emailed."
        }
        "remove-mfa" => "The authenticator app was removed.",
        "end-session" => "The session was ended.",
        "revoke-refresh-token" => "The refresh token was revoked.",
        "retried" => "The mail was queued for delivery again.",
        "client-disable" => {
            "The client was disabled: its access tokens ended, and its refresh tokens and every \
             grant are refused until it is enabled."
        }
        "client-enable" => "The client was enabled.",
        "client-delete" => "The client was deleted, with every token issued to it.",
        "unchanged" => "Nothing changed.",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Users

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
struct NewUserForm {
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
    profiles: Vec<ProfileRow>,
    form: NewUserForm,
    rules: String,
}

/// Users per page of the Users list.
const USERS_PAGE: i64 = 200;

#[derive(Deserialize, Default)]
struct UsersParams {
    q: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

async fn render_users(
    state: &AppState,
    s: &Signed,
    rid: &RequestId,
    c: Chrome,
    form: NewUserForm,
    params: &UsersParams,
) -> Page {
    let sv = &state.services;
    let e = |e| WebError::service(e, rid);
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
    let profiles = sv
        .list_profiles(&s.actor, org(s))
        .await
        .map_err(|e| WebError::service(e, rid))?;
    let names: HashMap<&str, &str> = profiles
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let now = sv.now_ms();
    let users = users
        .iter()
        .map(|u| UserLine {
            id: id18(&u.id),
            name: {
                let n = u.full_name();
                if n.is_empty() { u.username.clone() } else { n }
            },
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
        rules: policy_of(&s.session.org).rules_text(),
    }))
}

async fn users_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(p): Query<UsersParams>,
) -> Page {
    let d = Done {
        done: p.done.clone(),
    };
    let c = chrome(&s, "Users", "/setup/users").with_notice(messages(&d));
    render_users(&state, &s, &rid, c, NewUserForm::default(), &p).await
}

async fn create_user(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Users", "/setup/users").with_error(msg);
            render_users(
                &state,
                &s,
                &rid,
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
    profiles: Vec<ProfileRow>,
    last_login: String,
    password_changed: String,
    token_issued: String,
    token_refusal: Option<String>,
    totp: bool,
    sessions: Vec<SessionLine>,
    refresh_tokens: Vec<RefreshLine>,
    revoke_action: String,
    rules: String,
    /// The admin's own user: no admin reset of their own password.
    is_self: bool,
}

async fn render_user(state: &AppState, s: &Signed, rid: &RequestId, id: &str, c: Chrome) -> Page {
    let sv = &state.services;
    let err = |e| WebError::service(e, rid);
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
    let never = || "never".to_string();
    let name = {
        let n = v.user.full_name();
        if n.is_empty() {
            v.user.username.clone()
        } else {
            n
        }
    };
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
        sessions: session_lines(sessions, &s.session.session.digest),
        refresh_tokens: refresh_lines(refresh_tokens),
        revoke_action: format!("/setup/users/{}/revoke-refresh-token", id18(&v.user.id)),
        rules: policy_of(&s.session.org).rules_text(),
        is_self: v.user.id == s.session.user.id,
        v,
    }))
}

async fn user_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "User", "/setup/users").with_notice(messages(&d));
    render_user(&state, &s, &rid, &id, c).await
}

#[derive(Deserialize)]
struct EditUserForm {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    profile: Option<String>,
    current_password: Option<String>,
}

async fn edit_user(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "User", "/setup/users").with_error(msg);
            render_user(&state, &s, &rid, &id, c).await
        }
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    refresh_token: String,
}

async fn user_action(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
        _ => Err(ServiceError::NotFound(format!("no action {action:?}"))),
    };
    match result {
        Ok(()) => Ok(done(&format!("/setup/users/{id}"), &action)),
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "User", "/setup/users").with_error(msg);
            render_user(&state, &s, &rid, &id, c).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles and IP ranges

#[derive(Template)]
#[template(path = "web/setup_profiles.html")]
struct ProfilesPage {
    chrome: Chrome,
    profiles: Vec<ProfileRow>,
    perms: Permissions,
}

async fn render_profiles(state: &AppState, s: &Signed, rid: &RequestId, c: Chrome) -> Page {
    let profiles = state
        .services
        .list_profiles(&s.actor, org(s))
        .await
        .map_err(|e| WebError::service(e, rid))?;
    Ok(page(&ProfilesPage {
        chrome: c,
        profiles: profiles
            .into_iter()
            .map(|p| ProfileRow {
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

async fn profiles_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Profiles", "/setup/profiles").with_notice(messages(&d));
    render_profiles(&state, &s, &rid, c).await
}

#[derive(Deserialize)]
struct ProfileForm {
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

async fn create_profile(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Profiles", "/setup/profiles").with_error(msg);
            render_profiles(&state, &s, &rid, c).await
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
    ranges: Vec<IpRangeRow>,
}

fn ranges18(rows: Vec<IpRangeRow>) -> Vec<IpRangeRow> {
    rows.into_iter()
        .map(|r| IpRangeRow {
            id: id18(&r.id),
            ..r
        })
        .collect()
}

async fn render_profile(
    state: &AppState,
    s: &Signed,
    rid: &RequestId,
    id: &str,
    c: Chrome,
) -> Page {
    let sv = &state.services;
    let err = |e| WebError::service(e, rid);
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
        perms: crate::service::network::permissions_of(&p),
        ranges: ranges18(ranges),
    }))
}

async fn profile_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Profile", "/setup/profiles").with_notice(messages(&d));
    render_profile(&state, &s, &rid, &id, c).await
}

async fn edit_profile(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Profile", "/setup/profiles").with_error(msg);
            render_profile(&state, &s, &rid, &id, c).await
        }
    }
}

#[derive(Deserialize)]
struct RangeForm {
    #[serde(default)]
    start: String,
    end: Option<String>,
    #[serde(default)]
    description: String,
}

async fn add_login_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
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
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Profile", "/setup/profiles").with_error(msg);
            render_profile(&state, &s, &rid, &id, c).await
        }
    }
}

#[derive(Deserialize)]
struct Nothing {}

async fn remove_login_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path((id, range)): Path<(String, String)>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    state
        .services
        .remove_login_range(&s.actor, org(&s), &id, &range)
        .await
        .map_err(|e| WebError::service(e, &rid))?;
    Ok(done(&format!("/setup/profiles/{id}"), "removed"))
}

#[derive(Template)]
#[template(path = "web/setup_network.html")]
struct NetworkPage {
    chrome: Chrome,
    ranges_action: String,
    ranges: Vec<IpRangeRow>,
}

async fn render_network(state: &AppState, s: &Signed, rid: &RequestId, c: Chrome) -> Page {
    let ranges = state
        .services
        .list_trusted_ranges(&s.actor, org(s))
        .await
        .map_err(|e| WebError::service(e, rid))?;
    Ok(page(&NetworkPage {
        chrome: c,
        ranges_action: "/setup/network".into(),
        ranges: ranges18(ranges),
    }))
}

async fn network_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "Network Access", "/setup/network").with_notice(messages(&d));
    render_network(&state, &s, &rid, c).await
}

async fn add_trusted_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    form: WebForm<RangeForm>,
) -> Page {
    s.check(&form)?;
    let f = &form.data;
    let result = state
        .services
        .add_trusted_range(&s.actor, org(&s), &f.start, given(&f.end), &f.description)
        .await;
    match result {
        Ok(_) => Ok(done("/setup/network", "added")),
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Network Access", "/setup/network").with_error(msg);
            render_network(&state, &s, &rid, c).await
        }
    }
}

async fn remove_trusted_range(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path(range): Path<String>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    state
        .services
        .remove_trusted_range(&s.actor, org(&s), &range)
        .await
        .map_err(|e| WebError::service(e, &rid))?;
    Ok(done("/setup/network", "removed"))
}

// ---------------------------------------------------------------------------------------------
// Policies, session settings, single sign-on

#[derive(Template)]
#[template(path = "web/setup_policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    p: OrgPolicy,
    complexities: Vec<(&'static str, &'static str)>,
}

fn complexity_label(c: Complexity) -> &'static str {
    match c {
        Complexity::None => "No restriction",
        Complexity::AlphaNumeric => "Must mix alpha and numeric characters",
        Complexity::AlphaNumericSpecial => "Must mix alpha, numeric and special characters",
        Complexity::UpperLowerNumeric => "Must mix numbers and uppercase and lowercase letters",
        Complexity::UpperLowerNumericSpecial => {
            "Must mix numbers, uppercase and lowercase letters, and special characters"
        }
    }
}

fn policies(c: Chrome, p: OrgPolicy) -> Response {
    page(&PoliciesPage {
        chrome: c,
        p,
        complexities: Complexity::ALL
            .iter()
            .map(|c| (c.as_str(), complexity_label(*c)))
            .collect(),
    })
}

async fn policies_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Password Policies", "/setup/password-policies").with_notice(messages(&d));
    let p = policy_of(&s.session.org);
    Ok(policies(c, p))
}

#[derive(Deserialize)]
struct PolicyForm {
    min_password_length: Option<String>,
    complexity: Option<String>,
    password_history: Option<String>,
    password_expiry_days: Option<String>,
    lockout_attempts: Option<String>,
    lockout_minutes: Option<String>,
    session_seconds: Option<String>,
    session_max_seconds: Option<String>,
}

fn number(field: &str, v: &Option<String>) -> Result<Option<u32>, String> {
    match given(v) {
        None => Ok(None),
        Some(s) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{field} must be a whole number (got {s:?})")),
    }
}

impl PolicyForm {
    fn change(&self) -> Result<PolicyChange, String> {
        Ok(PolicyChange {
            min_password_length: number("The minimum password length", &self.min_password_length)?,
            password_history: number("Passwords remembered", &self.password_history)?,
            password_expiry_days: number("The expiry", &self.password_expiry_days)?,
            lockout_attempts: number("Maximum invalid login attempts", &self.lockout_attempts)?,
            lockout_minutes: number("The lockout period", &self.lockout_minutes)?,
            session_seconds: number("The timeout", &self.session_seconds)?,
            session_max_seconds: number("The lifetime", &self.session_max_seconds)?,
            complexity: match given(&self.complexity) {
                None => None,
                Some(c) => {
                    Some(Complexity::parse(c).ok_or_else(|| format!("unknown complexity {c:?}"))?)
                }
            },
        })
    }
}

async fn save_policy(
    state: &AppState,
    s: &Signed,
    rid: &RequestId,
    form: &PolicyForm,
) -> Result<Result<(), String>, WebError> {
    let change = match form.change() {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    match state.services.set_policy(&s.actor, org(s), &change).await {
        Ok(_) => Ok(Ok(())),
        Err(e) => user_error(e, rid).map(Err),
    }
}

async fn save_policies(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    form: WebForm<PolicyForm>,
) -> Page {
    s.check(&form)?;
    let f = PolicyForm {
        session_seconds: None,
        session_max_seconds: None,
        ..form.data
    };
    match save_policy(&state, &s, &rid, &f).await? {
        Ok(()) => Ok(done("/setup/password-policies", "saved")),
        Err(m) => {
            let c = chrome(&s, "Password Policies", "/setup/password-policies").with_error(m);
            Ok(policies(c, policy_of(&s.session.org)))
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_sessions.html")]
struct SessionSettingsPage {
    chrome: Chrome,
    seconds: u32,
    max_seconds: u32,
}

fn session_settings(chrome: Chrome, p: &OrgPolicy) -> Response {
    page(&SessionSettingsPage {
        chrome,
        seconds: p.session_seconds,
        max_seconds: p.session_max_seconds,
    })
}

async fn session_settings_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Session Settings", "/setup/session-settings").with_notice(messages(&d));
    Ok(session_settings(c, &policy_of(&s.session.org)))
}

async fn save_session_settings(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    form: WebForm<PolicyForm>,
) -> Page {
    s.check(&form)?;
    let f = PolicyForm {
        session_seconds: form.data.session_seconds,
        session_max_seconds: form.data.session_max_seconds,
        min_password_length: None,
        complexity: None,
        password_history: None,
        password_expiry_days: None,
        lockout_attempts: None,
        lockout_minutes: None,
    };
    match save_policy(&state, &s, &rid, &f).await? {
        Ok(()) => Ok(done("/setup/session-settings", "saved")),
        Err(m) => {
            let c = chrome(&s, "Session Settings", "/setup/session-settings").with_error(m);
            Ok(session_settings(c, &policy_of(&s.session.org)))
        }
    }
}

#[derive(Template)]
#[template(path = "web/setup_sso.html")]
struct SsoPage {
    chrome: Chrome,
    url: String,
}

async fn sso_page(Admin(s): Admin, Query(d): Query<Done>) -> Page {
    let c = chrome(&s, "Single Sign-On", "/setup/sso").with_notice(messages(&d));
    Ok(page(&SsoPage {
        chrome: c,
        url: s.session.org.delegated_auth_url.clone().unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
struct SsoForm {
    url: Option<String>,
}

async fn save_sso(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    form: WebForm<SsoForm>,
) -> Page {
    s.check(&form)?;
    let url = given(&form.data.url);
    match state
        .services
        .set_delegated_auth(&s.actor, org(&s), url)
        .await
    {
        Ok(()) => Ok(done("/setup/sso", "saved")),
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Single Sign-On", "/setup/sso").with_error(msg);
            Ok(page(&SsoPage {
                chrome: c,
                url: url.unwrap_or("").to_string(),
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth clients

pub struct ClientLine {
    /// The client's id (`0H4…`), for the actions' paths.
    pub id: String,
    /// It runs as the admin viewing the page: rotating its secret takes their password.
    pub runs_as_you: bool,
    pub name: String,
    pub client_id: String,
    pub enabled: bool,
    pub refresh: &'static str,
    pub run_as: String,
    pub created: String,
}

pub struct CreatedClient {
    pub name: String,
    pub client_id: String,
    pub secret: String,
    /// A new secret for an existing client, rather than a new client.
    pub rotated: bool,
}

#[derive(Template)]
#[template(path = "web/setup_oauth.html")]
struct OAuthPage {
    chrome: Chrome,
    clients: Vec<ClientLine>,
    created: Option<CreatedClient>,
}

async fn render_oauth(
    state: &AppState,
    s: &Signed,
    rid: &RequestId,
    c: Chrome,
    created: Option<CreatedClient>,
) -> Page {
    let sv = &state.services;
    let clients = sv
        .list_oauth_clients(&s.actor, org(s))
        .await
        .map_err(|e| WebError::service(e, rid))?;
    // Only the few run-as users, not the whole org.
    let mut name_of: HashMap<String, String> = HashMap::new();
    for id in clients.iter().filter_map(|c| c.run_as_user_id.as_deref()) {
        if let Ok(v) = sv.show_user(&s.actor, id).await {
            name_of.insert(id.to_string(), v.user.username);
        }
    }
    Ok(page(&OAuthPage {
        chrome: c,
        clients: clients
            .iter()
            .map(|c| ClientLine {
                id: id18(&c.id),
                runs_as_you: c.run_as_user_id.as_deref() == Some(s.session.user.id.as_str()),
                name: c.name.clone(),
                client_id: c.client_id.clone(),
                enabled: c.enabled,
                refresh: if c.issue_refresh_tokens { "yes" } else { "no" },
                run_as: c
                    .run_as_user_id
                    .as_deref()
                    .map(|id| name_of.get(id).cloned().unwrap_or_default())
                    .unwrap_or_else(|| "—".into()),
                created: fmt_ms(c.created_at),
            })
            .collect(),
        created,
    }))
}

async fn oauth_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_notice(messages(&d));
    render_oauth(&state, &s, &rid, c, None).await
}

/// Rotate a client's secret (the new one is shown on the answer itself, once), disable,
/// enable or delete it.
async fn oauth_client_action(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path((id, action)): Path<(String, String)>,
    form: WebForm<PasswordField>,
) -> Page {
    s.check(&form)?;
    let sv = &state.services;
    let password = given(&form.data.password).map(Password::new);
    let result = match action.as_str() {
        "rotate-secret" => match sv
            .rotate_client_secret(&s.actor, &id, password.as_ref())
            .await
        {
            Ok((row, secret)) => {
                let c = chrome(&s, "OAuth Clients", "/setup/oauth");
                let rotated = CreatedClient {
                    name: row.name,
                    client_id: row.client_id,
                    secret: secret.0,
                    rotated: true,
                };
                return render_oauth(&state, &s, &rid, c, Some(rotated)).await;
            }
            Err(e) => Err(e),
        },
        "disable" => sv
            .set_client_enabled(&s.actor, &id, false)
            .await
            .map(|_| ()),
        "enable" => sv.set_client_enabled(&s.actor, &id, true).await.map(|_| ()),
        "delete" => sv.delete_oauth_client(&s.actor, &id).await,
        _ => Err(ServiceError::NotFound(format!("no action {action:?}"))),
    };
    match result {
        Ok(()) => Ok(done("/setup/oauth", &format!("client-{action}"))),
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_error(msg);
            render_oauth(&state, &s, &rid, c, None).await
        }
    }
}

#[derive(Deserialize)]
struct ClientForm {
    #[serde(default)]
    name: String,
    refresh_tokens: Option<String>,
    run_as: Option<String>,
    /// The admin's own password, needed when the client runs as them.
    current_password: Option<String>,
}

/// A form whose one field, the acting admin's password, some actions need.
#[derive(Deserialize)]
struct PasswordField {
    password: Option<String>,
}

/// Creates a client and shows its secret, once, on the answer itself (no redirect: the
/// secret must not travel in a URL).
async fn create_oauth_client(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    form: WebForm<ClientForm>,
) -> Page {
    s.check(&form)?;
    let f = &form.data;
    let password = given(&f.current_password).map(Password::new);
    let options = ClientOptions {
        refresh_tokens: checked(&f.refresh_tokens),
        run_as: given(&f.run_as),
        current_password: password.as_ref(),
    };
    let result = state
        .services
        .create_oauth_client(&s.actor, org(&s), &f.name, &options)
        .await;
    match result {
        Ok((row, secret)) => {
            let c = chrome(&s, "OAuth Clients", "/setup/oauth");
            let created = CreatedClient {
                name: row.name,
                client_id: row.client_id,
                secret: secret.0,
                rotated: false,
            };
            render_oauth(&state, &s, &rid, c, Some(created)).await
        }
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_error(msg);
            render_oauth(&state, &s, &rid, c, None).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login history: filters, table, CSV, chart

/// The filters as typed; absent `from`/`to` mean the last 24 hours, empty ones no bound.
#[derive(Deserialize, Default)]
struct HistoryParams {
    user: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    login_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The filter values as the form shows them again.
pub struct ShownQuery {
    pub user: String,
    pub status: String,
    pub login_type: String,
    pub from: String,
    pub to: String,
}

const PAGE_ROWS: i64 = 500;

fn local_datetime(field: &str, s: &str) -> Result<i64, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let fmt_s = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &fmt_s))
        .map(|t| crate::clock::ms(t.assume_utc()))
        .map_err(|_| format!("{field} is not a date and time like 2026-11-25T10:00 (got {s:?})"))
}

fn datetime_local(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    crate::clock::from_ms(ms).format(&fmt).unwrap_or_default()
}

fn history_query(
    p: &HistoryParams,
    now: i64,
    limit: i64,
) -> Result<(HistoryQuery, ShownQuery), String> {
    let day = 24 * 3_600_000;
    let bound =
        |field: &str, v: &Option<String>, default: Option<i64>| match v.as_deref().map(str::trim) {
            None => Ok(default),
            Some("") => Ok(None),
            Some(s) => local_datetime(field, s).map(Some),
        };
    let from = bound("From", &p.from, Some(now - day))?;
    let to = bound("To", &p.to, None)?;
    let q = HistoryQuery {
        user: given(&p.user).map(str::to_string),
        status: given(&p.status).map(str::to_string),
        login_type: given(&p.login_type).map(str::to_string),
        from,
        to,
        limit,
    };
    let shown = ShownQuery {
        user: q.user.clone().unwrap_or_default(),
        status: q.status.clone().unwrap_or_default(),
        login_type: q.login_type.clone().unwrap_or_default(),
        from: from.map(datetime_local).unwrap_or_default(),
        to: to.map(datetime_local).unwrap_or_default(),
    };
    Ok((q, shown))
}

pub struct HistoryLine {
    pub time: String,
    pub username: String,
    pub source_ip: String,
    pub login_type: String,
    pub status: String,
    pub client: String,
    pub api_version: String,
}

#[derive(Template)]
#[template(path = "web/setup_history.html")]
struct HistoryPage {
    chrome: Chrome,
    q: ShownQuery,
    query: String,
    statuses: Vec<&'static str>,
    types: Vec<&'static str>,
    rows: Vec<HistoryLine>,
    limit: i64,
    chart: String,
    chart_range: String,
}

async fn history_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(p): Query<HistoryParams>,
) -> Page {
    let sv = &state.services;
    let mut c = chrome(&s, "Login History", "/setup/login-history");
    let (q, shown) = match history_query(&p, sv.now_ms(), PAGE_ROWS) {
        Ok(v) => v,
        Err(m) => {
            c.error = Some(m);
            history_query(&HistoryParams::default(), sv.now_ms(), PAGE_ROWS)
                .map_err(WebError::BadForm)?
        }
    };
    let (rows, hours) = match (
        sv.search_login_history(&s.actor, org(&s), &q).await,
        sv.login_history_per_hour(&s.actor, org(&s), &q).await,
    ) {
        (Ok(r), Ok(h)) => (r, h),
        (Err(e), _) | (_, Err(e)) => {
            c.error = Some(user_error_or_missing(e, &rid)?);
            (Vec::new(), Vec::new())
        }
    };
    let query = serde_urlencoded::to_string([
        ("user", shown.user.as_str()),
        ("status", shown.status.as_str()),
        ("type", shown.login_type.as_str()),
        ("from", shown.from.as_str()),
        ("to", shown.to.as_str()),
    ])
    .unwrap_or_default();
    let chart_range = match (hours.first(), hours.last()) {
        (Some(a), Some(b)) => format!("{} to {}", fmt_ms(a.hour), fmt_ms(b.hour + 3_600_000)),
        _ => String::new(),
    };
    Ok(page(&HistoryPage {
        chrome: c,
        q: shown,
        query,
        statuses: LoginStatus::ALL.iter().map(|s| s.as_str()).collect(),
        types: [
            Channel::Ui,
            Channel::SoapPartner,
            Channel::SoapEnterprise,
            Channel::OAuth,
        ]
        .iter()
        .map(|c| c.login_type())
        .collect(),
        rows: rows
            .into_iter()
            .map(|r| HistoryLine {
                time: fmt_ms(r.login_at),
                username: r.username.unwrap_or_default(),
                source_ip: r.source_ip,
                login_type: r.login_type,
                status: r.status,
                client: r.client,
                api_version: r.api_version,
            })
            .collect(),
        limit: PAGE_ROWS,
        chart: chart_svg(&hours),
        chart_range,
    }))
}

/// A filter naming a user who does not exist (or is in another org) shows an empty result with
/// the reason, like a bad value; anything else is an error page.
fn user_error_or_missing(e: ServiceError, rid: &RequestId) -> Result<String, WebError> {
    match e {
        ServiceError::NotFound(m) => Ok(capitalise(&m)),
        other => user_error(other, rid),
    }
}

async fn history_csv(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(p): Query<HistoryParams>,
) -> Page {
    let sv = &state.services;
    let (q, _) = history_query(&p, sv.now_ms(), crate::service::admin::MAX_ROWS)
        .map_err(WebError::BadForm)?;
    let rows = sv
        .search_login_history(&s.actor, org(&s), &q)
        .await
        .map_err(|e| WebError::service(e, &rid))?;
    let mut listing = Listing::new(&[
        "login_time",
        "username",
        "user_id",
        "source_ip",
        "login_type",
        "status",
        "client",
        "api_version",
        "login_url",
    ]);
    for r in rows {
        listing.push(vec![
            crate::service::fmt_api_ms(r.login_at).into(),
            r.username.unwrap_or_default().into(),
            r.user_id.as_deref().map(id18).unwrap_or_default().into(),
            r.source_ip.into(),
            r.login_type.into(),
            r.status.into(),
            r.client.into(),
            r.api_version.into(),
            r.login_url.into(),
        ]);
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"login-history.csv\"",
            ),
        ],
        listing.render(Format::Csv),
    )
        .into_response())
}

/// One bar of the chart, in SVG user units.
pub struct Bar {
    pub x: f64,
    pub w: f64,
    pub ok_y: f64,
    pub ok_h: f64,
    pub fail_y: f64,
    pub fail_h: f64,
    pub label: String,
}

pub struct Tick {
    pub x: f64,
    pub text: String,
}

#[derive(Template)]
#[template(path = "web/chart.svg", escape = "html")]
struct Chart {
    width: f64,
    height: f64,
    plot_bottom: f64,
    max: i64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    total_ok: i64,
    total_fail: i64,
}

/// The per-hour chart, server-rendered: stacked bars of successes and failures.
fn chart_svg(hours: &[HourCount]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 10.0;
    let max = hours
        .iter()
        .map(|h| h.success + h.failure)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = hours.len().max(1) as f64;
    let slot = (W - LEFT - 40.0) / n;
    let plot = H - BOTTOM - TOP;
    let scale = |v: i64| v as f64 / max as f64 * plot;
    let every = (hours.len() / 12).max(1);
    let fmt = time::macros::format_description!("[month]-[day] [hour]h");
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let ok_h = scale(h.success);
            let fail_h = scale(h.failure);
            let base = H - BOTTOM;
            Bar {
                x: LEFT + i as f64 * slot + slot * 0.1,
                w: (slot * 0.8).max(0.5),
                ok_y: base - ok_h,
                ok_h,
                fail_y: base - ok_h - fail_h,
                fail_h,
                label: format!(
                    "{}: {} success, {} failure",
                    fmt_ms(h.hour),
                    h.success,
                    h.failure
                ),
            }
        })
        .collect();
    let ticks = hours
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, h)| Tick {
            x: LEFT + i as f64 * slot,
            text: crate::clock::from_ms(h.hour)
                .format(&fmt)
                .unwrap_or_default(),
        })
        .collect();
    let chart = Chart {
        width: W,
        height: H,
        plot_bottom: H - BOTTOM,
        max,
        bars,
        ticks,
        total_ok: hours.iter().map(|h| h.success).sum(),
        total_fail: hours.iter().map(|h| h.failure).sum(),
    };
    chart.render().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Audit trail and email log

pub struct AuditLine {
    pub time: String,
    pub actor: String,
    pub section: String,
    pub display: String,
}

#[derive(Template)]
#[template(path = "web/setup_audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditLine>,
}

async fn audit_page(State(state): State<AppState>, Admin(s): Admin, rid: RequestId) -> Page {
    let rows = state
        .services
        .audit_trail(&s.actor, org(&s), 500)
        .await
        .map_err(|e| WebError::service(e, &rid))?;
    Ok(page(&AuditPage {
        chrome: chrome(&s, "Setup Audit Trail", "/setup/audit"),
        rows: rows
            .into_iter()
            .map(|r| AuditLine {
                time: fmt_ms(r.created_at),
                actor: r.actor,
                section: r.section,
                display: r.display,
            })
            .collect(),
    }))
}

pub struct MailLine {
    pub id: String,
    pub created: String,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "web/setup_mail.html")]
struct MailPage {
    chrome: Chrome,
    status: String,
    mails: Vec<MailLine>,
}

#[derive(Deserialize)]
struct MailParams {
    status: Option<String>,
}

async fn render_mail(
    state: &AppState,
    s: &Signed,
    rid: &RequestId,
    c: Chrome,
    status: Option<&str>,
) -> Page {
    let mails = state
        .services
        .org_mail(&s.actor, org(s), status, 500)
        .await
        .map_err(|e| WebError::service(e, rid))?;
    Ok(page(&MailPage {
        chrome: c,
        status: status.unwrap_or("").to_string(),
        mails: mails
            .into_iter()
            .map(|m| MailLine {
                id: id18(&m.id),
                created: fmt_ms(m.created_at),
                to: m.to_addr,
                subject: m.subject,
                status: m.status,
                attempts: m.attempts,
                last_error: m.last_error.unwrap_or_default(),
            })
            .collect(),
    }))
}

async fn mail_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Query(p): Query<MailParams>,
    RawQuery(raw): RawQuery,
) -> Page {
    let c = chrome(&s, "Email Log", "/setup/mail").with_notice(
        raw.as_deref()
            .filter(|q| q.contains("done=retried"))
            .map(|_| "The mail was queued for delivery again."),
    );
    render_mail(&state, &s, &rid, c, given(&p.status)).await
}

async fn retry_mail(
    State(state): State<AppState>,
    Admin(s): Admin,
    rid: RequestId,
    Path(id): Path<String>,
    form: WebForm<Nothing>,
) -> Page {
    s.check(&form)?;
    match state.services.retry_mail(&s.actor, org(&s), &id).await {
        Ok(()) => Ok(done("/setup/mail", "retried")),
        Err(e) => {
            let msg = user_error(e, &rid)?;
            let c = chrome(&s, "Email Log", "/setup/mail").with_error(msg);
            render_mail(&state, &s, &rid, c, None).await
        }
    }
}
