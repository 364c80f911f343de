//! Setup, for admins of the org (R-M1: every page and action is scoped to the acting admin's
//! org by the services; another org's ids answer 404). One file per Setup section; this one holds
//! the routes, the Setup navigation and notices, and what several sections share.

mod audit;
mod history;
mod network;
mod oauth;
mod policies;
mod profiles;
mod users;

use audit::{audit_page, mail_page, retry_mail};
use history::{history_csv, history_page};
use network::{add_trusted_range, network_page, remove_trusted_range};
use oauth::{create_oauth_client, oauth_client_action, oauth_page};
use policies::{
    policies_page, save_policies, save_session_settings, save_sso, session_settings_page, sso_page,
};
use profiles::{
    add_login_range, create_profile, edit_profile, profile_page, profiles_page, remove_login_range,
};
use users::{create_user, edit_user, user_action, user_page, users_page};

use super::auth::Signed;
use super::{Chrome, Done, NavItem, WebError};
use crate::http::AppState;
use crate::service::id18;
use crate::service::views::IpRange;
use axum::Router;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

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
    s.session.org_id()
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
        "revoke-integration-token" => {
            "The integration token was revoked: no new login with it works. Sessions it opened \
             already last until they end."
        }
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

fn ranges18(rows: Vec<IpRange>) -> Vec<IpRange> {
    rows.into_iter()
        .map(|r| IpRange {
            id: id18(&r.id),
            ..r
        })
        .collect()
}

#[derive(Deserialize)]
struct RangeForm {
    #[serde(default)]
    start: String,
    end: Option<String>,
    #[serde(default)]
    description: String,
}
