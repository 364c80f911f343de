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
    let filter = tracing_subscriber::EnvFilter::try_new(level)
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

/// Opens the database (creating the data dir and applying migrations) and builds the services.
pub async fn open(config: &Config) -> anyhow::Result<Arc<Services>> {
    let options = DbOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_seconds),
    };
    // The data dir holds the SQLite database and the file transport's mail.
    if config.database.url.is_empty() || config.mail.transport == "file" {
        crate::private_fs::create_dir(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let db = if config.database.url.is_empty() {
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
            .context("cannot connect to PostgreSQL")?
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
            ),
    ))
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

/// `keyward serve`: initialise an empty database, then run until SIGINT or SIGTERM.
pub async fn serve(services: Arc<Services>, config: &Config) -> anyhow::Result<()> {
    if !services.is_initialised().await? {
        match services.init(InitRequest::default()).await {
            Ok(done) => print!("{}", init_banner(&done, config)),
            // Another node initialised the shared database first.
            Err(ServiceError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
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
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::debug!(%addr, database = services.db.backend_name(), mail = services.outbox.transport_name(), "keyward listening");
    eprintln!("keyward listening on {scheme}://{addr}");
    run(services, config, listener, tls, shutdown_signal()).await;
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
