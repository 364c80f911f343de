//! The only module that knows SQL. One `Db` over SQLite (the default, one file in the data dir,
//! WAL) and PostgreSQL (several nodes sharing one database). Each query is written once, in the
//! dialect both understand (`$1` placeholders, `RETURNING`, `ON CONFLICT`), and the [`q!`] macro
//! runs it on whichever backend the connection belongs to; where the dialects differ the code
//! branches explicitly on [`Conn`].
//!
//! Times are stored as milliseconds since the Unix epoch (BIGINT), booleans as BOOLEAN, ids as
//! their 15-character text. No state that matters lives in one process: lockout counters,
//! sessions, the outbox and the bootstrap flag are all rows, updated with single atomic
//! statements or leases, so any number of nodes can share one PostgreSQL.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub mod address_failures;
mod args;
pub mod audit;
pub mod backup;
pub mod integration;
pub mod login_history;
pub mod logins;
pub mod meta;
pub mod oauth;
pub mod orgs;
pub mod outbox;
pub mod profiles;
pub mod ranges;
pub mod sessions;
pub mod users;
pub mod verification;
mod writers;

pub use writers::{WriterTurn, Writers};

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names what was duplicated.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database cannot be reached or is shutting down (HTTP 503, CLI retry later).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A newer keyward migrated the database further than this binary knows.
    #[error(
        "the database's schema is at migration {applied}, newer than this keyward knows (up to \
         {known}): run the newer keyward, or restore the backup taken before the upgrade \
         (docs/deployment.md)"
    )]
    SchemaTooNew { applied: i64, known: i64 },
    /// The database refused a value as text (PostgreSQL refuses NUL characters, which SQLite
    /// stores): bad input, not a fault.
    #[error("the text contains a character that cannot be stored (such as NUL)")]
    BadText,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // 22021: character_not_in_repertoire ("invalid byte sequence for encoding UTF8:
            // 0x00"), 22P05: untranslatable_character.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021") | Some("22P05")) =>
            {
                StoreError::BadText
            }
            // The server going away under a query: class 08 (connection exception), 57P01
            // admin_shutdown (a fast shutdown cuts every session off), 57P02 crash_shutdown,
            // 57P03 cannot_connect_now (shutting down or starting up). An outage, not a fault.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
                }) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // PostgreSQL names the constraint; SQLite names the columns in the message.
                let what = db
                    .constraint()
                    .map(str::to_string)
                    .unwrap_or_else(|| db.message().to_string());
                StoreError::Conflict(what)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The database: which backend is chosen once, at start, from the URL.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool, Writers),
    Postgres(PgPool),
}

/// A connection of either backend, borrowed from a pool or a transaction. Every store function
/// takes one, so the same function serves a lone read and a step of a transaction.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    /// The lock a read takes for a transaction that will write the row: PostgreSQL's
    /// `FOR UPDATE`; nothing on SQLite, whose write transaction already excludes every other
    /// writer.
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => "FOR UPDATE",
        }
    }

    /// [`Conn::for_update`], passing over rows another transaction holds, so that several
    /// nodes each claim different rows.
    pub(crate) fn for_update_skip_locked(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Runs the same query text on whichever backend `$c` (a `&mut Conn`) is; `$e` is the
/// backend's `&mut Connection` inside `$body`, and both arms must produce the same type.
macro_rules! on_backend {
    ($c:expr, |$e:ident| $body:expr) => {
        match $c {
            $crate::store::Conn::Sqlite($e) => {
                let $e = &mut **$e;
                $body
            }
            $crate::store::Conn::Postgres($e) => {
                let $e = &mut **$e;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// A row struct from columns selected with a prefix in a join (`o_id`, `o_name`, …), where
/// the derived `FromRow`, which reads columns by their own names, cannot tell them apart.
macro_rules! prefixed {
    ($row:expr, $prefix:literal, $t:ident { $($f:ident),* $(,)? }) => {
        $t { $($f: sqlx::Row::try_get($row, concat!($prefix, stringify!($f)))?,)* }
    };
}
pub(crate) use prefixed;

/// A function decoding a row of either backend, `fn name(r: &R) -> sqlx::Result<T>`, where the
/// row's text, integer and boolean columns (and the user's own columns) can be read: the bounds
/// every joined-row decoder needs, written once.
macro_rules! row_decoder {
    ($(#[$m:meta])* $vis:vis fn $name:ident($r:ident) -> $t:ty $body:block) => {
        $crate::store::row_decoder! { $(#[$m])* $vis fn $name($r: &R) -> $t $body }
    };
    // The rows' type may be named `R` in the parameter: `fn decode(rows: &[R]) -> T`.
    ($(#[$m:meta])* $vis:vis fn $name:ident($r:ident: $rt:ty) -> $t:ty $body:block) => {
        $(#[$m])*
        $vis fn $name<R>($r: $rt) -> sqlx::Result<$t>
        where
            R: sqlx::Row,
            for<'a> &'a str: sqlx::ColumnIndex<R>,
            for<'a> $crate::store::users::UserRow: sqlx::FromRow<'a, R>,
            for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        $body
    };
}
pub(crate) use row_decoder;

/// `a.x AS <prefix>x, a.y AS <prefix>y` for the columns `x, y` of the table aliased `a`.
pub(crate) fn aliased(alias: &str, columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{c} AS {prefix}{c}", c = c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An id no row has (`!` is not base62): the key of the statements an attempt without a user
/// runs, and the org of the decoy rows, so that it makes the same round trips as one with a
/// user (R-L4).
pub const NO_ID: &str = "00000000000!!!!";

/// Executes one statement with its bound values on either backend; the rows it affected.
macro_rules! exec {
    ($c:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        $crate::store::on_backend!($c, |e| sqlx::query($sql)
            $(.bind($bind))*
            .execute(e)
            .await
            .map(|r| r.rows_affected()))
    };
}
pub(crate) use exec;

pub enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(&mut *c),
            Pooled::Postgres(c) => Conn::Postgres(&mut *c),
        }
    }

    /// Closes the connection instead of handing it back to the pool, for a connection whose
    /// state is not known (a batch that may have left a transaction open); the pool opens
    /// another when it needs one.
    pub async fn close(self) {
        let closed = match self {
            Pooled::Sqlite(c) => c.close().await,
            Pooled::Postgres(c) => c.close().await,
        };
        if let Err(e) = closed {
            tracing::warn!(error = %e, "could not close a database connection");
        }
    }
}

pub enum Tx {
    /// The transaction, then the writer's turn: fields drop in order, so the turn is given up
    /// after the transaction has ended (or its rollback has been sent).
    Sqlite(Transaction<'static, Sqlite>, WriterTurn),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t, _) => Conn::Sqlite(&mut *t),
            Tx::Postgres(t) => Conn::Postgres(&mut *t),
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t, _turn) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Opens the SQLite file (creating it) in WAL mode. `secure_delete` makes SQLite overwrite
    /// deleted content, so a scrubbed token mail leaves no copy in free pages (R-T3). The log
    /// is copied back into the file by the commit that takes it past 8,000 pages (32 MiB), not
    /// SQLite's 1,000: every writer waits in line behind that commit, and fewer, larger
    /// checkpoints copy a page rewritten many times once (BENCHMARKS.md, integration tokens).
    /// A checkpoint on a task of its own would not do: with writes going on, the log is never
    /// wholly copied when a writer starts, so SQLite never starts it again and it grows.
    pub async fn open_sqlite(path: &Path, opts: &DbOptions) -> Result<Db> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("secure_delete", "ON")
            .pragma("wal_autocheckpoint", "8000");
        // No ping before each use: a local file's connection does not go stale, and the ping
        // is a second hop to the connection's thread for every statement group.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool, Writers::default()))
    }

    pub async fn open_postgres(url: &str, opts: &DbOptions) -> Result<Db> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid database URL: {e}")))?
            .application_name("keyward");
        // One connection first, alone: the pool retries a refused connection until its acquire
        // timeout and then reports only the timeout, which hides a closed port's cause.
        use sqlx::Connection;
        sqlx::PgConnection::connect_with(&options)
            .await?
            .close()
            .await?;
        // No ping before each use (a round trip per acquire, on every request): a connection
        // that broke (a database restart) fails its next statement, which answers 503 and is
        // closed by the pool (tests/recovery/postgres.rs).
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Db::Postgres(pool))
    }

    /// Applies the migrations of this backend that have not run yet. Safe to run from several
    /// processes at once: sqlx takes an advisory lock on PostgreSQL, a lock file orders them on
    /// SQLite.
    ///
    /// A database a newer keyward has migrated further than this binary knows is refused with
    /// [`StoreError::SchemaTooNew`] before anything runs: its tables may mean things this binary
    /// would get wrong.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self {
            Db::Sqlite(..) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        let known = newest(migrator);
        if let Some(applied) = self.schema_version().await?
            && applied > known
        {
            return Err(StoreError::SchemaTooNew { applied, known });
        }
        let r = match self {
            Db::Sqlite(p, _) => {
                // sqlx locks the migrations table on PostgreSQL only: processes starting on one
                // new SQLite file would each create the tables. A lock file beside it orders them.
                let _held = migration_lock(p.connect_options().get_filename()).await?;
                migrator.run(p).await
            }
            Db::Postgres(p) => migrator.run(p).await,
        };
        r.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// The newest migration applied to this database, if any has been.
    pub async fn schema_version(&self) -> Result<Option<i64>> {
        let mut c = self.conn().await?;
        let exists = match &mut c {
            Pooled::Sqlite(c) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
                )
                .fetch_one(&mut **c)
                .await?
                    > 0
            }
            Pooled::Postgres(c) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&mut **c)
                    .await?
            }
        };
        if !exists {
            return Ok(None);
        }
        Ok(on_backend!(&mut c.as_conn(), |e| sqlx::query_scalar::<
            _,
            Option<i64>,
        >(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success"
        )
        .fetch_one(e)
        .await)?)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn conn(&self) -> Result<Pooled> {
        Ok(match self {
            Db::Sqlite(p, _) => Pooled::Sqlite(p.acquire().await?),
            Db::Postgres(p) => Pooled::Postgres(p.acquire().await?),
        })
    }

    /// A write transaction. On SQLite it waits for this process's previous writer to finish
    /// ([`Writers`]) and takes the write lock at once (`BEGIN IMMEDIATE`), so a transaction
    /// that reads and then writes waits for its turn instead of failing half way.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(p, writers) => {
                let turn = writers.turn(false).await;
                Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?, turn)
            }
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Is the database answering? (`/healthz`)
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn().await?;
        exec!(&mut c.as_conn(), "SELECT 1")?;
        Ok(())
    }

    /// Truncates SQLite's write-ahead log, so page images holding scrubbed secrets do not
    /// linger in `keyward.db-wal` (R-T3). A no-op on PostgreSQL. Readers holding old snapshots
    /// can keep it from finishing: false then, and the caller tries again later.
    pub async fn checkpoint(&self) -> Result<bool> {
        if let Db::Sqlite(p, _) = self {
            // (busy, log frames, checkpointed frames): busy = 1 when it could not finish.
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(p)
                .await?;
            return Ok(busy == 0);
        }
        Ok(true)
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p, _) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

fn newest(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest SQLite schema this binary knows.
pub fn sqlite_schema_known() -> i64 {
    newest(&SQLITE_MIGRATIONS)
}

/// `keyward.db` + `-wal` → `keyward.db-wal`: the files SQLite and keyward keep beside a
/// database.
pub fn beside(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Waits for, then holds, the lock on `<database>.migrate-lock` (released when dropped, or when
/// the process ends however it ends).
async fn migration_lock(db: &Path) -> Result<std::fs::File> {
    let path = beside(db, ".migrate-lock");
    let unavailable =
        |e: std::io::Error| StoreError::Unavailable(format!("cannot lock {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unavailable)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
        .map_err(unavailable)
}
