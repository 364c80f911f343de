//! OAuth clients: the list, creating one, rotating its secret, disabling, enabling, deleting.

use super::{Page, chrome, messages, org};
use crate::domain::secret::Password;
use crate::http::AppState;
use crate::http::web::auth::{Admin, Signed, done};
use crate::http::web::{Chrome, Done, WebForm, checked, given, page, user_error};
use crate::service::oauth::ClientOptions;
use crate::service::{ServiceError, fmt_ms, id18};
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use std::collections::HashMap;

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
    c: Chrome,
    created: Option<CreatedClient>,
) -> Page {
    let sv = &state.services;
    let clients = sv.list_oauth_clients(&s.actor, org(s)).await?;
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
                runs_as_you: c.run_as_user_id.as_deref() == Some(s.session.user_id()),
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

pub(super) async fn oauth_page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Query(d): Query<Done>,
) -> Page {
    let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_notice(messages(&d));
    render_oauth(&state, &s, c, None).await
}

/// Rotate a client's secret (the new one is shown on the answer itself, once), disable,
/// enable or delete it.
pub(super) async fn oauth_client_action(
    State(state): State<AppState>,
    Admin(s): Admin,
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
                return render_oauth(&state, &s, c, Some(rotated)).await;
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
            let msg = user_error(e)?;
            let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_error(msg);
            render_oauth(&state, &s, c, None).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ClientForm {
    #[serde(default)]
    name: String,
    refresh_tokens: Option<String>,
    run_as: Option<String>,
    /// The admin's own password, needed when the client runs as them.
    current_password: Option<String>,
}

/// A form whose one field, the acting admin's password, some actions need.
#[derive(Deserialize)]
pub(super) struct PasswordField {
    password: Option<String>,
}

/// Creates a client and shows its secret, once, on the answer itself (no redirect: the
/// secret must not travel in a URL).
pub(super) async fn create_oauth_client(
    State(state): State<AppState>,
    Admin(s): Admin,
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
            render_oauth(&state, &s, c, Some(created)).await
        }
        Err(e) => {
            let msg = user_error(e)?;
            let c = chrome(&s, "OAuth Clients", "/setup/oauth").with_error(msg);
            render_oauth(&state, &s, c, None).await
        }
    }
}
