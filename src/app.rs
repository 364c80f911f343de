//! Assembly: configuration → database, hash pool, mail transport, services; the server with its
//! workers and graceful shutdown; logging.

use crate::clock::SystemClock;
use crate::config::Config;
use crate::crypto::Hasher;
use crate::mail::transport::{SmtpSettings, Transport};
use crate::service::bootstrap::{InitRequest, Initialised};
use crate::service::outbox::RetryPolicy;
use crate::service::{Outbox, ServiceError, Services, id18};
use crate::store::{Db, DbOptions};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Logs go to stderr. Commands other than `serve` only log warnings unless a level is
/// configured, so their stdout and stderr stay readable.
pub fn init_logging(config: &Config, serving: bool) {
    let level = if !serving && config.log.level == "info" {
        "warn"
    } else {
        config.log.level.as_str()
    };
    // sqlx warns about a database URL's unknown parameters with their values, which may be
    // secrets (sslpassword=…): only its errors, unless the operator asked for that target.
    let level = if level.contains("sqlx_postgres") {
        level.to_string()
    } else {
        format!("{level},sqlx_postgres::options=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Whether a command may create the data directory and its SQLite database: `init` and `serve`
/// may; every other command refuses a data dir that holds no database, so a mistyped
/// `--data-dir` is an error instead of a new, empty store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    Yes,
    No,
}

/// Opens the database (creating the data dir and applying migrations when `create` allows it)
/// and builds the services.
pub async fn open(config: &Config, create: Create) -> anyhow::Result<Arc<Services>> {
    let options = DbOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_seconds),
    };
    let sqlite = config.database.url.is_empty();
    if create == Create::No && sqlite {
        require_database(config)?;
    }
    // The data dir holds the SQLite database and the file transport's mail (which the file
    // transport creates when it first writes).
    if create == Create::Yes && (sqlite || config.mail.transport == "file") {
        crate::private_fs::create_dir(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let db = if sqlite {
        // Created private before SQLite opens it; SQLite gives its -wal and -shm files the
        // same mode.
        let db_path = config.sqlite_path();
        crate::private_fs::create_file(&db_path, false)
            .and_then(|_| crate::private_fs::restrict(&db_path))
            .with_context(|| format!("cannot create {}", db_path.display()))?;
        Db::open_sqlite(&db_path, &options)
            .await
            .with_context(|| format!("cannot open {}", config.sqlite_path().display()))?
    } else {
        Db::open_postgres(&config.database.url, &options)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to PostgreSQL at {}",
                    database_location(&config.database.url)
                )
            })?
    };
    db.migrate().await?;
    let hasher = Arc::new(
        Hasher::new(
            config.hash_params(),
            config.password_hash.pool_size as usize,
        )?
        .with_max_queue(config.password_hash.max_queue as usize),
    );
    let transport = match config.mail.transport.as_str() {
        "smtp" => Transport::smtp(&SmtpSettings {
            host: config.mail.smtp.host.clone(),
            port: config.mail.smtp.port,
            security: config.smtp_security()?,
            username: config.mail.smtp.username.clone(),
            password: config.mail.smtp.password.0.clone(),
            timeout: Duration::from_secs(config.mail.smtp.timeout_seconds),
        })?,
        _ => Transport::file(config.mail_dir()),
    };
    let clock = Arc::new(SystemClock);
    let outbox = Arc::new(Outbox::new(
        db.clone(),
        transport,
        config.mail.from.clone(),
        clock.clone(),
        RetryPolicy {
            max_attempts: config.mail.max_attempts,
            base: Duration::from_millis(config.mail.retry_base_ms),
            max: Duration::from_millis(config.mail.retry_max_ms),
        },
        Duration::from_millis(config.mail.poll_ms.max(50)),
    ));
    Ok(Arc::new(
        Services::new(db, hasher, clock, outbox)
            .with_delegated_auth(config.delegated_auth())
            .with_address_limit(config.address_limit()?)
            .with_session_cache(
                config.session_cache.ttl_ms,
                config.session_cache.entries as usize,
            )
            .with_integration_tokens_per_user(config.integration_tokens.per_user),
    ))
}

/// Refuses a data dir without a SQLite database, naming the path and what creates one.
fn require_database(config: &Config) -> anyhow::Result<()> {
    let dir = config.data_dir.display();
    let creates =
        format!("`keyward init --data-dir {dir}` creates one, as does the first `keyward serve`");
    match std::fs::metadata(&config.data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!("the data directory {dir} is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "the data directory {dir} does not exist (check --data-dir or KEYWARD_DATA_DIR; \
             {creates})"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {dir}"))),
    }
    let db = config.sqlite_path();
    match std::fs::metadata(&db) {
        // An empty file is no database (SQLite would make it one, unbootstrapped).
        Ok(m) if m.is_file() && m.len() > 0 => Ok(()),
        Ok(_) => anyhow::bail!("{} is not a keyward database ({creates})", db.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "the data directory {dir} holds no keyward database (keyward.db; {creates})"
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", db.display()))),
    }
}

/// Where a database URL points, without its password: `user@host:port/database`.
fn database_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let user = if u.username().is_empty() {
                String::new()
            } else {
                format!("{}@", u.username())
            };
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{user}{}{port}{}", u.host_str().unwrap_or(""), u.path())
        }
        Err(_) => "the configured URL".to_string(),
    }
}

/// What `init` (and the first start of `serve`) prints: the generated password, once.
pub fn init_banner(done: &Initialised, config: &Config) -> String {
    let mut s = format!(
        "keyward is initialised.\n  org:            {} ({})\n  administrator:  {} ({})\n",
        done.org.name,
        id18(&done.org.id),
        done.admin.username,
        id18(&done.admin.id),
    );
    if let Some(pw) = &done.generated_password {
        s.push_str(&format!(
            "  password:       {}\n  (shown only this once: store it now)\n",
            pw.expose()
        ));
    }
    let where_ = if config.mail.transport == "file" {
        format!(" (file transport: {})", config.mail_dir().display())
    } else {
        String::new()
    };
    s.push_str(&format!(
        "The administrator's security token was emailed to {}{where_}.\n",
        done.admin.email
    ));
    s
}

/// What `serve` takes hold of before it creates anything: its listening socket and TLS
/// configuration, so a busy port or a bad certificate fails before a data dir is initialised.
pub struct Bound {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Binds `server.listen` and loads the TLS configuration; creates nothing.
pub async fn bind(config: &Config) -> anyhow::Result<Bound> {
    let tls = if config.tls_enabled() {
        Some(
            crate::http::server::tls_acceptor(
                Path::new(&config.server.tls_cert),
                Path::new(&config.server.tls_key),
            )
            .context("cannot serve https")?,
        )
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    Ok(Bound { listener, tls })
}

/// `serve`'s hold on a SQLite database: one server per database (its writes are queued in the
/// process, and two servers would each run the mail worker over one file). The lock is on the
/// database file itself, so a second data dir reaching it through a symlink or a hard link is
/// refused too; `flock` does not touch the POSIX locks SQLite takes on the same file, and the
/// file stays open until the server has closed its database. Released when the process ends,
/// however it ends. PostgreSQL nodes share a database, so they take none.
pub struct DatabaseLock(#[allow(dead_code)] std::fs::File);

/// Locks `<data-dir>/keyward.db` (creating the data dir and an empty, private database file), and
/// notes this process in `<data-dir>/serve.lock`; or says which process holds it.
pub fn lock_database(config: &Config) -> anyhow::Result<Option<DatabaseLock>> {
    if !config.database.url.is_empty() {
        return Ok(None);
    }
    let dir = &config.data_dir;
    crate::private_fs::create_dir(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let db = config.sqlite_path();
    let file = crate::private_fs::create_file(&db, false)
        .with_context(|| format!("cannot open {}", db.display()))?;
    let note = dir.join("serve.lock");
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&note).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            };
            anyhow::bail!(
                "another keyward serve{who} is using the data directory {}: one server per \
                 SQLite database (stop it, or give this one another --data-dir)",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(anyhow::Error::new(e).context(format!("cannot lock {}", db.display())));
        }
    }
    // Only for the message above: the lock is the database's.
    let _ = std::fs::write(&note, std::process::id().to_string());
    Ok(Some(DatabaseLock(file)))
}

/// `keyward serve`: initialise an empty database, then run on the bound listener until SIGINT
/// or SIGTERM.
pub async fn serve(services: Arc<Services>, config: &Config, bound: Bound) -> anyhow::Result<()> {
    if !services.is_initialised().await? {
        match services.init(InitRequest::default()).await {
            Ok(done) => print!("{}", init_banner(&done, config)),
            // Another node initialised the shared database first.
            Err(ServiceError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Bound { listener, tls } = bound;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::debug!(%addr, database = services.database_name(), mail = services.outbox.transport_name(), "keyward listening");
    let shutdown = shutdown_signal();
    eprintln!("keyward listening on {scheme}://{addr}");
    run(services, config, listener, tls, shutdown).await;
    tracing::info!("keyward stopped");
    Ok(())
}

/// The server on a bound listener, with the mail worker and session housekeeping, until
/// `shutdown` resolves; then it stops accepting, finishes requests in flight and stops the
/// workers. Tests call it with a listener on port 0.
pub async fn run(
    services: Arc<Services>,
    config: &Config,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(services.outbox.clone().run(stop_rx.clone()));
    let reminders = tokio::spawn(reminders(services.clone(), stop_rx.clone()));
    let housekeeping = tokio::spawn(housekeeping(services.clone(), stop_rx));
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let state = crate::http::AppState {
        services: services.clone(),
        http: Arc::new(crate::http::HttpConfig::from_config(config, local)),
    };
    let options = crate::http::server::ServeOptions {
        tls,
        header_timeout: Duration::from_secs(config.server.header_timeout_seconds),
        max_connections: config.server.max_connections as usize,
    };
    crate::http::server::serve(listener, crate::http::app(state), options, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let _ = housekeeping.await;
    let _ = reminders.await;
}

/// Sends the integration-token expiry reminders that fell due, every 20 seconds, so each goes
/// out within a minute of its time; every node may run it, each reminder is claimed once.
async fn reminders(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = services.send_integration_reminders().await {
            tracing::warn!(error = %e, "could not send integration-token reminders");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(20)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Removes expired sessions and ended failed-login windows every ten minutes. Nothing depends
/// on it: a check refuses an expired session, and ignores an ended window, whether or not its
/// row is still there.
async fn housekeeping(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = services.purge_expired_sessions().await {
            tracing::warn!(error = %e, "could not purge expired sessions");
        }
        if let Err(e) = services.purge_address_failures().await {
            tracing::warn!(error = %e, "could not purge ended failed-login windows");
        }
    }
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first awaited: the caller says it is listening in between, and a signal sent as soon as
/// that line appears must stop the server cleanly rather than kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let (term, int) = (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        );
        async fn received(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        async move {
            tokio::select! {
                _ = received(term) => {}
                _ = received(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
