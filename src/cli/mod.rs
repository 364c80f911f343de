//! The `keyward` command line (docs/rules.md, Interfaces): clap commands turned into service calls. Admin
//! commands act on the database directly, with or without a running server. A command that
//! creates something prints its 18-character id and nothing else; list commands take
//! `--format table|json|csv`; errors are one line on stderr and a non-zero exit, and change
//! nothing.

mod args;
mod backup;
mod cert;
mod integration;
mod mail;
mod network;
mod oauth;
mod org;
mod policy;
mod user;

pub use args::{
    AddressLimitCommand, AuditTrailArgs, CertCommand, Cli, Command, ConfigCommand, FormatArg,
    InitArgs, IntegrationCommand, LoginHistoryArgs, LoginIpCommand, MailCommand, NetworkCommand,
    OauthClientCommand, OauthCommand, OrgCommand, PolicyCommand, ProfileCommand, ServeArgs,
    TokenCommand, UserCommand,
};

use crate::app;
use crate::config::Config;
use crate::domain::secret::Password;
use crate::listing::{Format, Listing};
use crate::service::bootstrap::InitRequest;
use crate::service::history::HistoryQuery;
use crate::service::integration::CREDENTIAL_USE_COLUMNS;
use crate::service::views::LOGIN_ATTEMPT_COLUMNS;
use crate::service::{Actor, ServiceError, Services, fmt_ms, id18};
use serde_json::{Value, json};
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

/// A command's failure: one line for stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Setup(String),
}

impl CliError {
    /// A setup failure with its whole cause chain on one line ("cannot listen on ADDR: Address
    /// already in use (os error 98)"): the outermost context alone hides the cause.
    fn setup(e: anyhow::Error) -> CliError {
        CliError::Setup(format!("{e:#}"))
    }
}

/// Reads a password from stdin: everything up to the end, minus one trailing line break (the
/// line break is the terminal's, not the password's; nothing else is trimmed).
fn read_password_stdin() -> Result<Password, CliError> {
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .map_err(|e| CliError::Usage(format!("could not read the password from stdin: {e}")))?;
    if let Some(stripped) = s.strip_suffix('\n') {
        s.truncate(stripped.strip_suffix('\r').unwrap_or(stripped).len());
    }
    if s.is_empty() {
        return Err(CliError::Usage(
            "no password on stdin (pipe it in: printf '%s' \"$PW\" | keyward …)".into(),
        ));
    }
    Ok(Password::new(s))
}

fn ms_json(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(fmt_ms(m)))
}

pub fn run(cli: Cli) -> ExitCode {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(mut c) => {
            if let Some(d) = &cli.data_dir {
                c.data_dir = d.clone();
            }
            if let Some(u) = &cli.database_url {
                c.database.url = u.clone();
            }
            if let Command::Serve(s) = &cli.command {
                if let Some(l) = &s.listen {
                    c.server.listen = l.clone();
                }
                if let Some(u) = &s.public_url {
                    c.server.public_url = u.clone();
                }
                if let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) {
                    c.server.tls_cert = cert.display().to_string();
                    c.server.tls_key = key.display().to_string();
                }
            }
            match c.validate() {
                Ok(()) => c,
                Err(e) => return fail(&CliError::Setup(format!("{e:#}"))),
            }
        }
        Err(e) => return fail(&CliError::Setup(format!("{e:#}"))),
    };
    let serving = matches!(cli.command, Command::Serve(_));
    app::init_logging(&config, serving);
    // Commands that need no database.
    if let Command::Config(ConfigCommand::Sample) = &cli.command {
        print(&crate::config::sample());
        return ExitCode::SUCCESS;
    }
    if let Command::Cert(CertCommand::Generate { out, force }) = &cli.command {
        let dir = out.clone().unwrap_or_else(|| config.data_dir.join("tls"));
        return match cert::cert_generate(&dir, *force) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&CliError::Setup(format!("cannot start the runtime: {e}"))),
    };
    let result = runtime.block_on(async move {
        if serving {
            // The port and the database's lock first: a server that cannot start creates
            // nothing.
            let bound = app::bind(&config).await.map_err(CliError::setup)?;
            let _lock = app::lock_database(&config).map_err(CliError::setup)?;
            let services = app::open(&config, app::Create::Yes)
                .await
                .map_err(CliError::setup)?;
            let result = app::serve(services.clone(), &config, bound)
                .await
                .map_err(CliError::setup);
            services.close().await;
            return result;
        }
        if let Command::Restore { from } = &cli.command {
            return backup::restore(&config, from).await;
        }
        let create = if matches!(cli.command, Command::Init(_)) {
            app::Create::Yes
        } else {
            app::Create::No
        };
        let services = app::open(&config, create).await.map_err(CliError::setup)?;
        let result = dispatch(&services, &config, cli.command).await;
        deliver_unless_served(&services).await;
        services.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        CliError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// Queued mail is the running server's to deliver (docs/rules.md, Interfaces); when no server runs, the command
/// delivers it before exiting.
async fn deliver_unless_served(services: &Services) {
    let pending = services.outbox.backlog().await.unwrap_or(0);
    if pending == 0 || services.outbox.server_worker_alive().await.unwrap_or(false) {
        return;
    }
    match services.outbox.deliver_due().await {
        Ok(r) => {
            if r.failed > 0 {
                eprintln!(
                    "warning: {} mail(s) could not be delivered yet; they stay queued and the server retries them",
                    r.failed
                );
            }
            if r.dead > 0 {
                eprintln!(
                    "warning: {} mail(s) could not be delivered and will not be tried again (`keyward mail list` shows them as dead)",
                    r.dead
                );
            }
        }
        Err(e) => eprintln!("warning: mail stays queued: {e}"),
    }
}
fn print(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`keyward … | head`) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

fn note(s: &str) {
    eprintln!("{s}");
}

async fn dispatch(
    services: &Arc<Services>,
    config: &Config,
    command: Command,
) -> Result<(), CliError> {
    let actor = Actor::cli();
    let s = services.as_ref();
    match command {
        Command::Serve(_) => Ok(()),
        Command::Init(a) => {
            let password = if a.admin_password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let email = a.admin_email.unwrap_or_else(|| a.admin_username.clone());
            let done = s
                .init(InitRequest {
                    org_name: a.org_name,
                    admin_username: a.admin_username,
                    admin_email: email,
                    admin_password: password,
                })
                .await?;
            print(&app::init_banner(&done, config));
            Ok(())
        }
        Command::Org(c) => org::org(s, &actor, c).await,
        Command::User(c) => user::user(s, &actor, c).await,
        Command::Token(TokenCommand::Reset { user }) => {
            let u = s.reset_token(&actor, &user).await?;
            note(&format!(
                "The security token of {} was reset; the new token was emailed to {}.",
                u.username, u.email
            ));
            Ok(())
        }
        Command::Token(TokenCommand::Usage { user, format }) => {
            let uses = s.security_token_usage(&actor, &user).await?;
            print(&Listing::of(&CREDENTIAL_USE_COLUMNS, &uses).render(format.format));
            Ok(())
        }
        Command::Integration(c) => integration::integration(s, &actor, c).await,
        Command::Network(c) => network::network(s, &actor, c).await,
        Command::Profile(c) => network::profile(s, &actor, c).await,
        Command::Policy(c) => policy::policy(s, &actor, c).await,
        Command::Oauth(OauthCommand::Client(c)) => oauth::oauth(s, &actor, c).await,
        Command::LoginHistory(a) => {
            let query = HistoryQuery {
                user: a.user,
                limit: a.limit,
                ..HistoryQuery::default()
            };
            let rows = s.login_history(&actor, a.org.as_deref(), &query).await?;
            print(&Listing::of(&LOGIN_ATTEMPT_COLUMNS, &rows).render(a.format.format));
            Ok(())
        }
        Command::AuditTrail(a) => {
            let rows = s.audit_trail(&actor, &a.org, a.limit).await?;
            let mut l =
                Listing::new(&["time", "actor", "section", "action", "display", "target_id"]);
            for r in rows {
                l.push(vec![
                    json!(fmt_ms(r.created_at)),
                    json!(r.actor),
                    json!(r.section),
                    json!(r.action),
                    json!(r.display),
                    json!(r.target_id.as_deref().map(id18)),
                ]);
            }
            print(&l.render(a.format.format));
            Ok(())
        }
        Command::Mail(c) => mail::mail(s, c).await,
        Command::Backup { to } => backup::backup(s, &to).await,
        Command::Cert(_) | Command::Config(_) | Command::Restore { .. } => Ok(()),
        Command::AddressLimit(AddressLimitCommand::List {
            min_failures,
            format,
        }) => {
            let mut l = Listing::new(&[
                "address",
                "failures",
                "refused",
                "window_started",
                "refused_until",
            ]);
            for a in s.limited_addresses(&actor, min_failures).await? {
                l.push(vec![
                    json!(a.address),
                    json!(a.failures),
                    json!(a.refused),
                    json!(a.window_started),
                    json!(a.refused_until),
                ]);
            }
            print(&l.render(format.format));
            Ok(())
        }
        Command::AddressLimit(AddressLimitCommand::Clear { address }) => {
            let key = s.clear_address(&actor, &address).await?;
            note(&format!("{key} may log in again."));
            Ok(())
        }
    }
}
/// One record: `key: value` lines, or a JSON object, or a one-row CSV.
fn show(fields: &[(&'static str, Value)], format: Format) -> String {
    match format {
        Format::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            fields
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Null => "-".to_string(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{k:width$}  {v}\n")
                })
                .collect()
        }
        Format::Json => {
            let obj: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            serde_json::to_string_pretty(&obj).unwrap_or_default() + "\n"
        }
        Format::Csv => {
            let mut l = Listing::new(&fields.iter().map(|(k, _)| *k).collect::<Vec<_>>());
            l.push(fields.iter().map(|(_, v)| v.clone()).collect());
            l.render(Format::Csv)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn leaves(prefix: &str, cmd: &clap::Command, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{prefix} {}", sub.get_name());
            if sub.has_subcommands() {
                leaves(&path, sub, out);
            } else {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_command_is_documented() {
        let doc = include_str!("../../docs/cli.md");
        let mut all = Vec::new();
        leaves("keyward", &Cli::command(), &mut all);
        assert!(all.len() > 25, "{all:?}");
        for path in all {
            assert!(
                doc.contains(&format!("`{path}")),
                "docs/cli.md lacks `{path}`"
            );
        }
    }

    /// Every argument and option of every command, with the command's path.
    fn arguments(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            out.push((prefix.to_string(), a.clone()));
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            arguments(&format!("{prefix} {}", sub.get_name()), sub, out);
        }
    }

    #[test]
    fn every_argument_has_a_one_line_description_and_globals_stand_apart() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        arguments("keyward", &cmd, &mut all);
        let mut missing = Vec::new();
        for (path, a) in &all {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() || help.contains('\n') {
                missing.push(format!("{path} {}", a.get_id()));
            }
            let heading = a.get_help_heading();
            if a.is_global_set() {
                assert_eq!(heading, Some("Global options"), "{path} {}", a.get_id());
            }
        }
        assert!(
            missing.is_empty(),
            "without a one-line description: {missing:#?}"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
