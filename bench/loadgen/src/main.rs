//! keyward's benchmark tools (BENCHMARKS.md; `bench/run` drives them): `hash` (the raw
//! Argon2id rate, H), `seed` (an org of N users with tokens, as the services would leave them
//! but without audit rows or mails: a fixture, not an import), `login` (an HTTP load generator
//! for SOAP and OAuth logins from several loopback addresses), and `seed-history` and
//! `query-history` (login history in bulk, and the cost of Setup's queries over it).

mod history;
mod load;
mod seed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keyward-bench",
    about = "keyward's benchmark tools (BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Argon2id verifications per second on all cores (H), as JSON
    Hash(HashArgs),
    /// Create an org and N users with one shared password and their own tokens
    Seed(seed::SeedArgs),
    /// Send logins (or GETs) at a fixed concurrency; print throughput and latency as JSON
    Login(load::LoginArgs),
    /// Add login-history rows in bulk: the rows the Setup queries return, or rows elsewhere
    SeedHistory(history::SeedHistoryArgs),
    /// Time the Setup login-history queries: one user's last 100 rows, the week's chart
    QueryHistory(history::QueryHistoryArgs),
}

/// Where keyward's store is, and the benchmark's org in it.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// keyward's data dir (SQLite unless --database-url is given)
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// PostgreSQL URL; empty: SQLite in the data dir
    #[arg(long, default_value = "")]
    database_url: String,
    /// The org (created by `seed` if it does not exist)
    #[arg(long, default_value = "Bench")]
    org: String,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<std::sync::Arc<keyward::service::Services>> {
        let mut config = keyward::config::Config {
            data_dir: self.data_dir.clone(),
            ..keyward::config::Config::default()
        };
        config.database.url = self.database_url.clone();
        std::fs::create_dir_all(&self.data_dir)?;
        keyward::app::open(&config, keyward::app::Create::Yes).await
    }
}

/// `($1, …, $k<literal>), ($k+1, …)` for `rows` rows of `per_row` parameters each; on SQLite
/// `(?, …)`: SQLite finds a numbered parameter's name by walking the list of all of them, and
/// sqlx asks for every parameter's name, so a statement with thousands of `$n` costs time
/// quadratic in their number (half of seeding's CPU went there); `?` has no name to look up.
pub(crate) fn values(sqlite: bool, rows: usize, per_row: usize, literal: &str) -> String {
    (0..rows)
        .map(|i| {
            let params: Vec<String> = (1..=per_row)
                .map(|k| {
                    if sqlite {
                        "?".to_string()
                    } else {
                        format!("${}", i * per_row + k)
                    }
                })
                .collect();
            format!("({}{literal})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// On SQLite, a page cache of `mib` MiB for this connection (it stays with the connection);
/// bulk loads insert into indexes keyed by random values, which outgrow the default cache.
pub(crate) async fn sqlite_cache(
    c: &mut keyward::test_support::store::Conn<'_>,
    mib: u32,
) -> anyhow::Result<()> {
    if let keyward::test_support::store::Conn::Sqlite(e) = c {
        let kib = i64::from(mib) * 1024;
        sqlx::query(&format!("PRAGMA cache_size = -{kib}"))
            .execute(&mut **e)
            .await?;
    }
    Ok(())
}

#[derive(clap::Args)]
struct HashArgs {
    /// How long to measure
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Argon2id memory in KiB [default: the server's default]
    #[arg(long)]
    memory_kib: Option<u32>,
    #[arg(long)]
    iterations: Option<u32>,
    #[arg(long)]
    parallelism: Option<u32>,
    /// Hashes at once [default: one per CPU core, as the server's pool]
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Hash(a) => hash(a).await,
            Command::Seed(a) => seed::run(a).await,
            Command::Login(a) => load::run(a).await,
            Command::SeedHistory(a) => history::seed(a).await,
            Command::QueryHistory(a) => history::query(a).await,
        }
    })
}

/// H: verifications of a real hash with the server's code (`crypto::verify_blocking`), on
/// `threads` plain threads in a tight loop for `seconds` — the ceiling no server can pass.
async fn hash(a: HashArgs) -> anyhow::Result<()> {
    use keyward::crypto::{HashParams, Hasher, verify_blocking};
    use keyward::domain::secret::Password;
    use std::time::{Duration, Instant};
    let d = HashParams::default();
    let params = HashParams {
        memory_kib: a.memory_kib.unwrap_or(d.memory_kib),
        iterations: a.iterations.unwrap_or(d.iterations),
        parallelism: a.parallelism.unwrap_or(d.parallelism),
    };
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        a.threads
    };
    let phc = Hasher::new(params, 1)?
        .hash(&Password::new("Bench-Passw0rd"))
        .await?;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let phc = phc.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    if verify_blocking("Bench-Passw0rd", &phc) {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut n = 0;
    for w in workers {
        n += w
            .join()
            .map_err(|_| anyhow::anyhow!("a hashing thread failed"))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "measure": "argon2id verifications in-process, one tight loop per thread",
        "argon2": keyward::crypto::argon2_implementation(),
        "memory_kib": params.memory_kib,
        "iterations": params.iterations,
        "parallelism": params.parallelism,
        "threads": threads,
        "seconds": elapsed,
        "verifications": n,
        "per_second": n as f64 / elapsed,
        "per_second_per_thread": n as f64 / elapsed / threads as f64,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
