//! The `keyward` command line (docs/rules.md, Interfaces): clap commands turned into service calls. Admin
//! commands act on the database directly, with or without a running server. A command that
//! creates something prints its 18-character id and nothing else; list commands take
//! `--format table|json|csv`; errors are one line on stderr and a non-zero exit, and change
//! nothing.

use crate::app;

mod backup;
use crate::config::Config;
use crate::domain::policy::Complexity;
use crate::domain::profile::Permissions;
use crate::domain::secret::Password;
use crate::listing::{Format, Listing};
use crate::service::bootstrap::{DEFAULT_ADMIN, DEFAULT_ORG, InitRequest};
use crate::service::oauth::ClientOptions;
use crate::service::orgs::PolicyChange;
use crate::service::users::NewUser;
use crate::service::{Actor, ServiceError, Services, fmt_ms, id18};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "keyward",
    version,
    about = "A login server for the Salesforce-style security-token model",
    long_about = None,
)]
pub struct Cli {
    /// Data directory: SQLite database and mail files [default: ./keyward-data]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "KEYWARD_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (see docs/configuration.md)
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "KEYWARD_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of SQLite in the data directory
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "KEYWARD_DATABASE_URL",
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (on an empty data dir, initialise it first)
    Serve(ServeArgs),
    /// Create the first org and its administrator
    Init(InitArgs),
    /// Organisations
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users
    #[command(subcommand)]
    User(UserCommand),
    /// Security tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Trusted IP ranges of an org (Network Access)
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Profiles and their login IP ranges
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Password policy, lockout and session settings of an org
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// OAuth clients (connected apps)
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Login attempts, newest first
    LoginHistory(LoginHistoryArgs),
    /// The setup audit trail of an org, newest first
    AuditTrail(AuditTrailArgs),
    /// The mail outbox
    #[command(subcommand)]
    Mail(MailCommand),
    /// Certificates for serving https locally
    #[command(subcommand)]
    Cert(CertCommand),
    /// The per-address failed-login limit (address_limit.*): who is refused, and letting an
    /// address in again
    #[command(subcommand)]
    AddressLimit(AddressLimitCommand),
    /// The configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Copy the SQLite database to FILE, consistently, while servers run
    Backup {
        /// The copy to write (a new file; it holds password hashes)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Make a backup the database of a data dir that has none (SQLite)
    Restore {
        /// The file `keyward backup` wrote
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print a configuration file with every key, its default and what it means
    Sample,
}

#[derive(Subcommand, Debug)]
pub enum AddressLimitCommand {
    /// Addresses refused now (or, with --min-failures, with at least that many failures in
    /// their current window), most failures first
    List {
        /// Also addresses not refused yet with at least this many failures [default: refused
        /// ones only]
        #[arg(long, default_value_t = 0)]
        min_failures: u32,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Let an address (an IPv6 address: its /64) log in again at once
    Clear {
        /// An IP address (IPv6: its /64)
        address: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Write a local CA (ca.pem) and a certificate for localhost, 127.0.0.1 and ::1 signed by
    /// it (cert.pem, key.pem); prints the three paths
    Generate {
        /// Directory to write to [default: <data-dir>/tls]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace existing files
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: server.listen, 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<String>,
    /// URL clients reach this server at
    #[arg(long)]
    pub public_url: Option<String>,
    /// Serve https with this PEM certificate chain (see `keyward cert generate`)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Name of the first org
    #[arg(long, default_value = DEFAULT_ORG)]
    pub org_name: String,
    /// Username of its administrator (email-shaped)
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin_username: String,
    /// The administrator's email [default: the admin username]
    #[arg(long)]
    pub admin_email: Option<String>,
    /// Read the admin password from stdin instead of generating one
    #[arg(long)]
    pub admin_password_stdin: bool,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an org with the default profiles and policy; prints its id
    Create {
        /// The org's name (unique, case-insensitive)
        #[arg(long)]
        name: String,
    },
    /// List orgs
    List(FormatArg),
    /// Set the delegated-authentication URL that checks SSO users' credentials ("" clears it)
    SetDelegatedAuth {
        /// The org: its id or name
        org: String,
        /// The delegated-authentication endpoint (https); empty to remove it
        url: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; prints its id. With --password-stdin the first token is emailed.
    Create {
        /// The org the user belongs to: its id or name
        #[arg(long)]
        org: String,
        /// The login name: email-shaped, unique across all orgs
        #[arg(long)]
        username: String,
        /// Where token, verification and notice mails go
        #[arg(long)]
        email: String,
        /// Given name
        #[arg(long, default_value = "")]
        first_name: String,
        /// Family name
        #[arg(long, default_value = "")]
        last_name: String,
        /// Profile name or id [default: Standard User]
        #[arg(long)]
        profile: Option<String>,
        /// Read the first password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (admin reset): a new token is emailed and sessions end
    SetPassword {
        /// The user: username or id
        user: String,
        /// Read the password from stdin (required)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Deactivate: every login fails and sessions end; the token is kept
    Deactivate {
        /// The user: username or id
        user: String,
    },
    /// Reactivate: the same token works again
    Reactivate {
        /// The user: username or id
        user: String,
    },
    /// Clear a lockout
    Unlock {
        /// The user: username or id
        user: String,
    },
    /// Show a user (never a secret)
    Show {
        /// The user: username or id
        user: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the users of an org
    List {
        /// The org: its id or name
        org: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Reset a user's security token and email the new one to the user
    Reset {
        /// The user: username or id
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Add a trusted IP range: START END, a single address, or a CIDR; prints its id
    Add {
        /// The org: its id or name
        org: String,
        /// First address, a single address (a range of one), or a CIDR such as 10.0.0.0/8
        start: String,
        /// Last address, inclusive [default: START]
        end: Option<String>,
        /// What the range is (shown in lists and the audit trail)
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List trusted IP ranges
    List {
        /// The org: its id or name
        org: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Remove a trusted IP range
    Remove {
        /// The org: its id or name
        org: String,
        /// The range's id (from the list command)
        range_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Create a profile; prints its id
    Create {
        /// The org: its id or name
        #[arg(long)]
        org: String,
        /// The profile's name (unique in the org)
        #[arg(long)]
        name: String,
        /// API logins only, never the web UI
        #[arg(long)]
        api_only: bool,
        /// Exempt from password expiry
        #[arg(long)]
        password_never_expires: bool,
        /// No API logins
        #[arg(long)]
        no_api: bool,
        /// Credentials checked by the org's delegated authentication (SSO)
        #[arg(long)]
        sso: bool,
        /// May administer the org
        #[arg(long)]
        manage_users: bool,
    },
    /// List the profiles of an org
    List {
        /// The org: its id or name
        org: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// A profile's login IP ranges
    #[command(subcommand)]
    LoginIp(LoginIpCommand),
}

#[derive(Subcommand, Debug)]
pub enum LoginIpCommand {
    /// Add a login IP range: START END, a single address, or a CIDR; prints its id
    Add {
        /// The org: its id or name
        org: String,
        /// The profile: name or id
        profile: String,
        /// First address, a single address (a range of one), or a CIDR such as 10.0.0.0/8
        start: String,
        /// Last address, inclusive [default: START]
        end: Option<String>,
        /// What the range is (shown in lists and the audit trail)
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a profile's login IP ranges
    List {
        /// The org: its id or name
        org: String,
        /// The profile: name or id
        profile: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Remove a login IP range
    Remove {
        /// The org: its id or name
        org: String,
        /// The profile: name or id
        profile: String,
        /// The range's id (from the list command)
        range_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Change settings; the others keep their values
    Set {
        /// The org: its id or name
        org: String,
        /// Failed logins in a row that lock the user; 0 = no limit
        #[arg(long)]
        lockout_attempts: Option<u32>,
        /// How long a lockout lasts; 0 = until an admin unlocks
        #[arg(long)]
        lockout_minutes: Option<u32>,
        /// Days until a password expires; 0 = never
        #[arg(long)]
        password_expiry_days: Option<u32>,
        /// Idle timeout: a session ends this long after its last use (300-86400)
        #[arg(long)]
        session_seconds: Option<u32>,
        /// Absolute lifetime: a session ends this long after it began, however much it is used
        /// (from the idle timeout to 2592000)
        #[arg(long)]
        session_max_seconds: Option<u32>,
        /// Shortest password accepted (5-50)
        #[arg(long)]
        min_password_length: Option<u32>,
        /// Previous passwords that may not be reused
        #[arg(long)]
        password_history: Option<u32>,
        /// none, alpha_numeric, alpha_numeric_special, upper_lower_numeric,
        /// upper_lower_numeric_special
        #[arg(long)]
        complexity: Option<String>,
    },
    /// Show the settings
    Show {
        /// The org: its id or name
        org: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum OauthCommand {
    /// OAuth clients
    #[command(subcommand)]
    Client(OauthClientCommand),
}

#[derive(Subcommand, Debug)]
pub enum OauthClientCommand {
    /// Create a client; prints the client id, then the client secret (shown only now)
    Create {
        /// The org: its id or name
        #[arg(long)]
        org: String,
        /// The client's name (the connected app's label)
        #[arg(long)]
        name: String,
        /// Issue refresh tokens with access tokens (for the refresh_token grant)
        #[arg(long)]
        refresh_tokens: bool,
        /// The user client_credentials tokens act as (username or id, in the same org)
        #[arg(long, value_name = "U")]
        run_as: Option<String>,
    },
    /// List the clients of an org (never the secret)
    List {
        /// The org: its id or name
        org: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Give a client a new secret and print it (shown only now); the old one is refused from
    /// now on, tokens already issued keep working
    RotateSecret {
        /// The consumer key (3MVG9…) or the client's id (0H4…)
        #[arg(value_name = "CLIENT_ID")]
        client: String,
    },
    /// Disable a client: its access tokens end, every grant and its refresh tokens are refused
    Disable {
        /// The consumer key (3MVG9…) or the client's id (0H4…)
        #[arg(value_name = "CLIENT_ID")]
        client: String,
    },
    /// Enable a disabled client again (its refresh tokens work again)
    Enable {
        /// The consumer key (3MVG9…) or the client's id (0H4…)
        #[arg(value_name = "CLIENT_ID")]
        client: String,
    },
    /// Delete a client and every access and refresh token issued to it
    Delete {
        /// The consumer key (3MVG9…) or the client's id (0H4…)
        #[arg(value_name = "CLIENT_ID")]
        client: String,
    },
}

#[derive(Args, Debug)]
pub struct LoginHistoryArgs {
    /// Only this org's attempts: its id or name
    #[arg(long)]
    pub org: Option<String>,
    /// Only this user's attempts: username or id
    #[arg(long)]
    pub user: Option<String>,
    /// At most this many rows, newest first (1-10000)
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Args, Debug)]
pub struct AuditTrailArgs {
    /// The org: its id or name
    pub org: String,
    /// At most this many entries, newest first (1-10000)
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List queued, sent and dead mail, oldest first (tokens are never shown)
    List {
        /// Only mail to this address
        #[arg(long)]
        to: Option<String>,
        /// At most this many, the newest (1-10000)
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show one mail (its token line redacted)
    Show {
        /// The mail's id (from `mail list`)
        id: String,
    },
    /// Wait until the mail to ADDRESS is delivered; print the newest one's file (file
    /// transport) or id (smtp)
    Wait {
        /// The recipient's address
        #[arg(long)]
        to: String,
        /// Give up after this many seconds (exit 1; at most 86400)
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
        timeout: u64,
    },
}

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
        return match cert_generate(&dir, *force) {
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
            services.db.close().await;
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
        services.db.close().await;
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

/// `mail wait`: polls the outbox until no mail to `to` is queued and one was delivered. With
/// no server running, it delivers the queued mail itself, as every command does.
async fn mail_wait(s: &Services, to: &str, timeout: u64) -> Result<(), CliError> {
    use crate::service::history::MailTo;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let state = s.mail_to(to).await?;
        match &state {
            MailTo::Delivered { id, file } => {
                let shown = match file {
                    None => id.clone(),
                    Some(f) if f.is_file() => f.display().to_string(),
                    // Delivered by a server with another data dir (another node, or before a
                    // restore): its file is there, not here.
                    Some(f) => {
                        return Err(CliError::Setup(format!(
                            "the newest mail to {to} ({id}) was delivered, but not to {}",
                            f.display()
                        )));
                    }
                };
                print(&format!("{shown}\n"));
                return Ok(());
            }
            MailTo::Dead { id, error } => {
                return Err(CliError::Setup(format!(
                    "the newest mail to {to} ({id}) could not be delivered: {error}"
                )));
            }
            MailTo::Queued(_) => deliver_unless_served(s).await,
            MailTo::Nothing => {}
        }
        if std::time::Instant::now() >= deadline {
            let what = match state {
                MailTo::Queued(n) => format!("{n} still queued"),
                _ => "none was queued".to_string(),
            };
            return Err(CliError::Setup(format!(
                "no mail to {to} was delivered within {timeout} s ({what})"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
        Command::Org(c) => org(s, &actor, c).await,
        Command::User(c) => user(s, &actor, c).await,
        Command::Token(TokenCommand::Reset { user }) => {
            let u = s.reset_token(&actor, &user).await?;
            note(&format!(
                "The security token of {} was reset; the new token was emailed to {}.",
                u.username, u.email
            ));
            Ok(())
        }
        Command::Network(c) => network(s, &actor, c).await,
        Command::Profile(c) => profile(s, &actor, c).await,
        Command::Policy(c) => policy(s, &actor, c).await,
        Command::Oauth(OauthCommand::Client(c)) => oauth(s, &actor, c).await,
        Command::LoginHistory(a) => {
            let rows = s
                .login_history(&actor, a.org.as_deref(), a.user.as_deref(), a.limit)
                .await?;
            let mut l = Listing::new(&[
                "time",
                "username",
                "source_ip",
                "login_type",
                "status",
                "client",
                "api_version",
                "login_url",
                "user_id",
                "org_id",
            ]);
            for r in rows {
                l.push(vec![
                    json!(fmt_ms(r.login_at)),
                    json!(r.username),
                    json!(r.source_ip),
                    json!(r.login_type),
                    json!(r.status),
                    json!(r.client),
                    json!(r.api_version),
                    json!(r.login_url),
                    json!(r.user_id.as_deref().map(id18)),
                    json!(r.org_id.as_deref().map(id18)),
                ]);
            }
            print(&l.render(a.format.format));
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
        Command::Mail(c) => mail(s, c).await,
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

fn cert_generate(dir: &std::path::Path, force: bool) -> Result<(), CliError> {
    let paths = [
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ];
    if !force && let Some(existing) = paths.iter().find(|p| p.exists()) {
        return Err(CliError::Usage(format!(
            "{} already exists (use --force to replace the certificates)",
            existing.display()
        )));
    }
    let certs = crate::crypto::cert::generate_local(time::OffsetDateTime::now_utc())
        .map_err(|e| CliError::Setup(format!("could not generate the certificates: {e}")))?;
    let io = |p: &std::path::Path, e: std::io::Error| {
        CliError::Setup(format!("cannot write {}: {e}", p.display()))
    };
    crate::private_fs::create_dir(dir).map_err(|e| io(dir, e))?;
    for (path, text) in [
        (&paths[0], &certs.ca_pem),
        (&paths[1], &certs.chain_pem),
        (&paths[2], &certs.key_pem),
    ] {
        crate::private_fs::write(path, text.as_bytes()).map_err(|e| io(path, e))?;
    }
    print(&format!(
        "{}\n{}\n{}\n",
        paths[0].display(),
        paths[1].display(),
        paths[2].display()
    ));
    note("Trust ca.pem in your clients (see docs/clients.md); key.pem is readable by you alone.");
    Ok(())
}

async fn org(s: &Services, actor: &Actor, c: OrgCommand) -> Result<(), CliError> {
    match c {
        OrgCommand::Create { name } => {
            let org = s.create_org(actor, &name).await?;
            print(&format!("{}\n", id18(&org.id)));
        }
        OrgCommand::List(f) => {
            let mut l = Listing::new(&["id", "name", "delegated_auth_url", "created"]);
            for o in s.list_orgs().await? {
                l.push(vec![
                    json!(id18(&o.id)),
                    json!(o.name),
                    json!(o.delegated_auth_url),
                    json!(fmt_ms(o.created_at)),
                ]);
            }
            print(&l.render(f.format));
        }
        OrgCommand::SetDelegatedAuth { org, url } => {
            s.set_delegated_auth(actor, &org, Some(&url)).await?;
        }
    }
    Ok(())
}

async fn user(s: &Services, actor: &Actor, c: UserCommand) -> Result<(), CliError> {
    match c {
        UserCommand::Create {
            org,
            username,
            email,
            first_name,
            last_name,
            profile,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let u = s
                .create_user(
                    actor,
                    &NewUser {
                        org: &org,
                        username: &username,
                        email: &email,
                        first_name: &first_name,
                        last_name: &last_name,
                        profile: profile.as_deref(),
                    },
                    password.as_ref(),
                )
                .await?;
            print(&format!("{}\n", id18(&u.id)));
        }
        UserCommand::SetPassword {
            user,
            password_stdin,
        } => {
            if !password_stdin {
                return Err(CliError::Usage(
                    "give the password on stdin with --password-stdin (never as an argument)"
                        .into(),
                ));
            }
            let pw = read_password_stdin()?;
            let u = s.set_password(actor, &user, &pw).await?;
            note(&format!(
                "Password of {} set; a new security token was emailed to {}.",
                u.username, u.email
            ));
        }
        UserCommand::Deactivate { user } => {
            if !s.deactivate(actor, &user).await? {
                note("The user was already inactive.");
            }
        }
        UserCommand::Reactivate { user } => {
            if !s.reactivate(actor, &user).await? {
                note("The user was already active.");
            }
        }
        UserCommand::Unlock { user } => {
            if !s.unlock(actor, &user).await? {
                note("The user was not locked.");
            }
        }
        UserCommand::Show { user, format } => {
            let v = s.show_user(actor, &user).await?;
            let u = &v.user;
            let fields: Vec<(&'static str, Value)> = vec![
                ("id", json!(id18(&u.id))),
                ("username", json!(u.username)),
                ("email", json!(u.email)),
                ("first_name", json!(u.first_name)),
                ("last_name", json!(u.last_name)),
                ("org", json!(v.org_name)),
                ("org_id", json!(id18(&u.org_id))),
                ("profile", json!(v.profile_name)),
                ("profile_id", json!(id18(&u.profile_id))),
                ("active", json!(u.active)),
                ("locked", json!(v.locked)),
                (
                    "locked_until",
                    if v.locked {
                        ms_json(u.locked_until)
                    } else {
                        Value::Null
                    },
                ),
                ("failed_logins", json!(u.failed_logins)),
                ("password_set", json!(u.password_hash.is_some())),
                ("password_changed", ms_json(u.password_changed_at)),
                ("token_issued", ms_json(u.token_issued_at)),
                ("tokens_issued", json!(v.tokens_issued)),
                ("active_sessions", json!(v.active_sessions)),
                ("last_login", ms_json(u.last_login_at)),
                ("created", ms_json(Some(u.created_at))),
            ];
            print(&show(&fields, format.format));
        }
        UserCommand::List { org, format } => {
            let mut l = Listing::new(&["id", "username", "email", "name", "active", "locked"]);
            let now = s.now_ms();
            for u in s.list_users(actor, &org).await? {
                l.push(vec![
                    json!(id18(&u.id)),
                    json!(u.username),
                    json!(u.email),
                    json!(u.full_name()),
                    json!(u.active),
                    json!(u.locked_until.is_some_and(|t| t > now)),
                ]);
            }
            print(&l.render(format.format));
        }
    }
    Ok(())
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

fn ranges_listing(rows: Vec<crate::store::ranges::IpRangeRow>) -> Listing {
    let mut l = Listing::new(&["id", "start", "end", "description", "created"]);
    for r in rows {
        l.push(vec![
            json!(id18(&r.id)),
            json!(r.start_ip),
            json!(r.end_ip),
            json!(r.description),
            json!(fmt_ms(r.created_at)),
        ]);
    }
    l
}

async fn network(s: &Services, actor: &Actor, c: NetworkCommand) -> Result<(), CliError> {
    match c {
        NetworkCommand::Add {
            org,
            start,
            end,
            description,
        } => {
            let r = s
                .add_trusted_range(actor, &org, &start, end.as_deref(), &description)
                .await?;
            print(&format!("{}\n", id18(&r.id)));
        }
        NetworkCommand::List { org, format } => {
            let rows = s.list_trusted_ranges(actor, &org).await?;
            print(&ranges_listing(rows).render(format.format));
        }
        NetworkCommand::Remove { org, range_id } => {
            s.remove_trusted_range(actor, &org, &range_id).await?;
        }
    }
    Ok(())
}

async fn profile(s: &Services, actor: &Actor, c: ProfileCommand) -> Result<(), CliError> {
    match c {
        ProfileCommand::Create {
            org,
            name,
            api_only,
            password_never_expires,
            no_api,
            sso,
            manage_users,
        } => {
            let p = s
                .create_profile(
                    actor,
                    &org,
                    &name,
                    Permissions {
                        api_enabled: !no_api,
                        api_only,
                        password_never_expires,
                        sso_enabled: sso,
                        manage_users,
                    },
                )
                .await?;
            print(&format!("{}\n", id18(&p.id)));
        }
        ProfileCommand::List { org, format } => {
            let mut l = Listing::new(&[
                "id",
                "name",
                "api_enabled",
                "api_only",
                "password_never_expires",
                "sso_enabled",
                "manage_users",
            ]);
            for p in s.list_profiles(actor, &org).await? {
                l.push(vec![
                    json!(id18(&p.id)),
                    json!(p.name),
                    json!(p.api_enabled),
                    json!(p.api_only),
                    json!(p.password_never_expires),
                    json!(p.sso_enabled),
                    json!(p.manage_users),
                ]);
            }
            print(&l.render(format.format));
        }
        ProfileCommand::LoginIp(LoginIpCommand::Add {
            org,
            profile,
            start,
            end,
            description,
        }) => {
            let r = s
                .add_login_range(actor, &org, &profile, &start, end.as_deref(), &description)
                .await?;
            print(&format!("{}\n", id18(&r.id)));
        }
        ProfileCommand::LoginIp(LoginIpCommand::List {
            org,
            profile,
            format,
        }) => {
            let rows = s.list_login_ranges(actor, &org, &profile).await?;
            print(&ranges_listing(rows).render(format.format));
        }
        ProfileCommand::LoginIp(LoginIpCommand::Remove {
            org,
            profile,
            range_id,
        }) => {
            s.remove_login_range(actor, &org, &profile, &range_id)
                .await?;
        }
    }
    Ok(())
}

async fn policy(s: &Services, actor: &Actor, c: PolicyCommand) -> Result<(), CliError> {
    match c {
        PolicyCommand::Set {
            org,
            lockout_attempts,
            lockout_minutes,
            password_expiry_days,
            session_seconds,
            session_max_seconds,
            min_password_length,
            password_history,
            complexity,
        } => {
            let complexity = match complexity {
                None => None,
                Some(c) => Some(Complexity::parse(&c).ok_or_else(|| {
                    CliError::Usage(format!(
                        "unknown complexity {c:?}: use one of {}",
                        Complexity::ALL.map(|c| c.as_str()).join(", ")
                    ))
                })?),
            };
            s.set_policy(
                actor,
                &org,
                &PolicyChange {
                    lockout_attempts,
                    lockout_minutes,
                    password_expiry_days,
                    session_seconds,
                    session_max_seconds,
                    min_password_length,
                    password_history,
                    complexity,
                },
            )
            .await?;
        }
        PolicyCommand::Show { org, format } => {
            let o = s.get_org(actor, &org).await?;
            let p = crate::service::orgs::policy_of(&o);
            let fields: Vec<(&'static str, Value)> = vec![
                ("org", json!(o.name)),
                ("min_password_length", json!(p.min_password_length)),
                ("complexity", json!(p.complexity.as_str())),
                ("password_history", json!(p.password_history)),
                ("password_expiry_days", json!(p.password_expiry_days)),
                ("lockout_attempts", json!(p.lockout_attempts)),
                ("lockout_minutes", json!(p.lockout_minutes)),
                ("session_seconds", json!(p.session_seconds)),
                ("session_max_seconds", json!(p.session_max_seconds)),
            ];
            print(&show(&fields, format.format));
        }
    }
    Ok(())
}

async fn oauth(s: &Services, actor: &Actor, c: OauthClientCommand) -> Result<(), CliError> {
    match c {
        OauthClientCommand::Create {
            org,
            name,
            refresh_tokens,
            run_as,
        } => {
            let options = ClientOptions {
                refresh_tokens,
                run_as: run_as.as_deref(),
                current_password: None,
            };
            let (row, secret) = s.create_oauth_client(actor, &org, &name, &options).await?;
            print(&format!("{}\n{}\n", row.client_id, secret.0));
        }
        OauthClientCommand::List { org, format } => {
            let mut l = Listing::new(&[
                "id",
                "name",
                "client_id",
                "refresh_tokens",
                "run_as_user_id",
                "enabled",
                "created",
            ]);
            for c in s.list_oauth_clients(actor, &org).await? {
                l.push(vec![
                    json!(id18(&c.id)),
                    json!(c.name),
                    json!(c.client_id),
                    json!(c.issue_refresh_tokens),
                    c.run_as_user_id
                        .as_deref()
                        .map_or(Value::Null, |u| json!(id18(u))),
                    json!(c.enabled),
                    json!(fmt_ms(c.created_at)),
                ]);
            }
            print(&l.render(format.format));
        }
        OauthClientCommand::RotateSecret { client } => {
            let (_, secret) = s.rotate_client_secret(actor, &client, None).await?;
            print(&format!("{}\n", secret.0));
        }
        OauthClientCommand::Disable { client } => {
            if !s.set_client_enabled(actor, &client, false).await? {
                note("The client was already disabled.");
            }
        }
        OauthClientCommand::Enable { client } => {
            if !s.set_client_enabled(actor, &client, true).await? {
                note("The client was already enabled.");
            }
        }
        OauthClientCommand::Delete { client } => s.delete_oauth_client(actor, &client).await?,
    }
    Ok(())
}

async fn mail(s: &Services, c: MailCommand) -> Result<(), CliError> {
    match c {
        MailCommand::Wait { to, timeout } => mail_wait(s, &to, timeout).await?,
        MailCommand::List { to, limit, format } => {
            let mut l = Listing::new(&[
                "id",
                "created",
                "to",
                "subject",
                "status",
                "attempts",
                "sent",
                "last_error",
            ]);
            for m in s.list_mail(to.as_deref(), limit).await? {
                l.push(vec![
                    json!(id18(&m.id)),
                    json!(fmt_ms(m.created_at)),
                    json!(m.to_addr),
                    json!(m.subject),
                    json!(m.status),
                    json!(m.attempts),
                    ms_json(m.sent_at),
                    json!(m.last_error),
                ]);
            }
            print(&l.render(format.format));
        }
        MailCommand::Show { id } => {
            let m = s.show_mail(&id).await?;
            let mut out = format!(
                "Id: {}\nTo: {}\nSubject: {}\nCreated: {}\nStatus: {}\nAttempts: {}\n",
                id18(&m.id),
                m.to_addr,
                m.subject,
                fmt_ms(m.created_at),
                m.status,
                m.attempts
            );
            if let Some(sent) = m.sent_at {
                out.push_str(&format!("Sent: {}\n", fmt_ms(sent)));
            }
            if let Some(e) = &m.last_error {
                out.push_str(&format!("Last error: {e}\n"));
            }
            out.push('\n');
            out.push_str(&m.body);
            if !out.ends_with('\n') {
                out.push('\n');
            }
            print(&out);
        }
    }
    Ok(())
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
