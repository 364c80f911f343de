//! The command line's shape: every command, subcommand and argument as clap types, with the
//! help text `keyward --help` prints. Kept apart from what the commands do, so the grammar can
//! be read in one place (mod.rs's tests keep it and docs/cli.md in step).

use crate::listing::Format;
use crate::service::bootstrap::{DEFAULT_ADMIN, DEFAULT_ORG};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Integration tokens: named API credentials of a user, mailed to the user, never shown
    #[command(subcommand)]
    Integration(IntegrationCommand),
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
    /// Where a user's security token was used: each client and source address, first and last
    /// seen, how often
    Usage {
        /// The user: username or id
        user: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum IntegrationCommand {
    /// Create an integration token and email it to the user; prints its id (never the token)
    Create {
        /// The user it belongs to: username or id
        user: String,
        /// What it is for, unique among the user's live tokens (at most 80 characters)
        #[arg(long)]
        name: String,
        /// Days until it expires (1 to the org's integration-max-days) [default: that maximum]
        #[arg(long, value_name = "N")]
        expires_days: Option<u32>,
    },
    /// List a user's integration tokens, newest first, with their last use (never a token)
    List {
        /// The user: username or id
        user: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Replace a token by a new one of the same name, emailed to the user; prints the new id
    /// (the old token works on for the org's integration grace hours)
    Rotate {
        /// The token's id (0Ik…, from the list command)
        id: String,
    },
    /// Revoke a token: logins with it fail from now on, and the sessions they made end
    Revoke {
        /// The token's id (0Ik…, from the list command)
        id: String,
    },
    /// Where a token was used: each client and source address, first and last seen, how often
    Usage {
        /// The token's id (0Ik…, from the list command)
        id: String,
        #[command(flatten)]
        format: FormatArg,
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
        /// The longest lifetime an integration token may get, in days (1-3650)
        #[arg(long)]
        integration_max_days: Option<u32>,
        /// How long a rotated integration token keeps working beside its successor (0-720)
        #[arg(long)]
        integration_grace_hours: Option<u32>,
        /// How long a reset security token keeps working beside the new one (0-720); a
        /// password change ends it at once
        #[arg(long)]
        token_grace_hours: Option<u32>,
        /// Days before expiry that integration-token reminders go out, e.g. 14,3,1; "" = none
        #[arg(long)]
        integration_reminder_days: Option<String>,
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
