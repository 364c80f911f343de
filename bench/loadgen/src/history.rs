//! `keyward-bench seed-history` and `query-history` (item 5 of BENCHMARKS.md): login-history
//! rows in bulk, and the cost of the two Setup queries over them.
//!
//! `seed-history --shape recent` writes the rows the queries look at: attempts of the org's
//! users over the last 14 days, one in 50 of them the measured user's. `--shape elsewhere`
//! writes rows the queries must not pay for: half the org's own older history (from a year to
//! 14 days ago, the measured user's share included), half other orgs' at any time in the year.
//! So a store with 10,000 `recent` rows and one with those plus 9,990,000 `elsewhere` rows hold
//! the same answers, and any difference in the queries' cost is the table's size.

use anyhow::Context;
use keyward::service::Actor;
use keyward::service::history::HistoryQuery;
use keyward::test_support::store::Conn;
use rand::{Rng, SeedableRng};
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;
/// Rows per INSERT statement (10 values each, within SQLite's 32,766 bound parameters).
const ROWS_PER_STATEMENT: usize = 1000;
const STATEMENTS_PER_TX: usize = 50;

#[derive(clap::Args)]
pub struct HistoryStoreArgs {
    #[command(flatten)]
    store: crate::StoreArgs,
    /// The user whose history is queried
    #[arg(long, default_value = "user0@bench.test")]
    user: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// The org's last 14 days: what the queries return
    Recent,
    /// The org's older history and other orgs' rows: what the queries must not pay for
    Elsewhere,
}

#[derive(clap::Args)]
pub struct SeedHistoryArgs {
    #[command(flatten)]
    store: HistoryStoreArgs,
    /// How many rows to add
    #[arg(long)]
    rows: u64,
    #[arg(long, value_enum)]
    shape: Shape,
    /// SQLite's page cache while loading, in MiB
    #[arg(long, default_value_t = 1024)]
    sqlite_cache_mib: u32,
}

#[derive(clap::Args)]
pub struct QueryHistoryArgs {
    #[command(flatten)]
    store: HistoryStoreArgs,
    /// Times each query runs (the median and p90 are reported)
    #[arg(long, default_value_t = 200)]
    repeat: usize,
}

pub async fn seed(a: SeedHistoryArgs) -> anyhow::Result<()> {
    let services = a.store.store.open().await?;
    let (org_id, user_id, others) = {
        let mut c = keyward::test_support::db(&services).conn().await?;
        let org =
            keyward::test_support::store::orgs::find_by_name(&mut c.as_conn(), &a.store.store.org)
                .await?
                .context("no such org: run keyward-bench seed first")?;
        let user =
            keyward::test_support::store::users::find_by_username(&mut c.as_conn(), &a.store.user)
                .await?
                .context("no such user")?;
        let others = user_ids(&mut c.as_conn(), &org.id).await?;
        (org.id, user.id, others)
    };
    let now = keyward::clock::ms(services.now());
    let mut rng = rand::rngs::StdRng::from_entropy();
    let started = Instant::now();
    let mut done = 0u64;
    let tag = format!("{:08x}", rng.r#gen::<u32>());
    let mut rebuild = Vec::new();
    if a.shape == Shape::Elsewhere {
        let mut c = keyward::test_support::db(&services).conn().await?;
        elsewhere_users(&mut c.as_conn(), &others).await?;
        // A bulk load's way: the secondary indexes go, and are built again after the load
        // from the rows in one sort each, instead of taking ten million inserts at random
        // places (login_at is random): 10M rows on SQLite took 10 minutes that way, slowing as
        // the indexes outgrew the page cache. The schema afterwards is the migrations' own.
        rebuild = secondary_indexes(&mut c.as_conn(), "login_history").await?;
        for (name, _) in &rebuild {
            exec(&mut c.as_conn(), &format!("DROP INDEX {name}")).await?;
        }
    }
    while done < a.rows {
        let mut tx = keyward::test_support::db(&services).begin().await?;
        crate::sqlite_cache(&mut tx.as_conn(), a.sqlite_cache_mib).await?;
        if a.shape == Shape::Elsewhere {
            // Generated in the database, 100,000 rows a statement: ten million rows in
            // minutes, not the hour that binding every value would take.
            let n = (a.rows - done).min(100_000);
            let ctx = Elsewhere {
                from: done,
                to: done + n,
                tag: &tag,
                org_id: &org_id,
                user_id: &user_id,
                users: others.len(),
                now,
            };
            ctx.insert(&mut tx.as_conn()).await?;
            done += n;
        }
        for _ in 0..STATEMENTS_PER_TX {
            if a.shape == Shape::Elsewhere {
                break;
            }
            let n = (a.rows - done).min(ROWS_PER_STATEMENT as u64) as usize;
            if n == 0 {
                break;
            }
            let rows: Vec<Row> = (0..n)
                .map(|i| {
                    let seq = done + i as u64;
                    Row {
                        id: format!("0Yb{tag}{seq:012}"),
                        org_id: org_id.clone(),
                        user_id: if seq.is_multiple_of(50) {
                            user_id.clone()
                        } else {
                            others[rng.gen_range(0..others.len())].clone()
                        },
                        login_at: now - rng.gen_range(1..14 * DAY_MS),
                        ok: rng.gen_range(0..10) != 0,
                    }
                })
                .collect();
            insert(&mut tx.as_conn(), &rows).await?;
            done += n as u64;
        }
        tx.commit().await?;
        let secs = started.elapsed().as_secs_f64();
        eprint!(
            "\rwrote {done}/{} login-history rows ({:.0}%), {:.0} rows/s, {:.0} s",
            a.rows,
            100.0 * done as f64 / a.rows as f64,
            done as f64 / secs.max(0.001),
            secs
        );
    }
    eprintln!();
    if !rebuild.is_empty() {
        let mut c = keyward::test_support::db(&services).conn().await?;
        crate::sqlite_cache(&mut c.as_conn(), a.sqlite_cache_mib).await?;
        if let Conn::Postgres(_) = c.as_conn() {
            exec(&mut c.as_conn(), "SET maintenance_work_mem = '1GB'").await?;
        }
        for (name, definition) in &rebuild {
            let t = Instant::now();
            eprint!("building index {name} ... ");
            exec(&mut c.as_conn(), definition).await?;
            eprintln!("{:.0} s", t.elapsed().as_secs_f64());
        }
    }
    // What the database's statistics daemon would do soon after a bulk load; without it,
    // PostgreSQL plans the queries for the table as it was.
    exec(
        &mut keyward::test_support::db(&services).conn().await?.as_conn(),
        "ANALYZE",
    )
    .await?;
    services.close().await;
    println!(
        "{}",
        serde_json::json!({
            "rows": a.rows,
            "seconds": started.elapsed().as_secs_f64(),
            "rows_per_second": a.rows as f64 / started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

struct Row {
    id: String,
    org_id: String,
    user_id: String,
    login_at: i64,
    ok: bool,
}

/// Up to 10,000 of the org's user ids, the rows' other users.
async fn user_ids(c: &mut Conn<'_>, org_id: &str) -> anyhow::Result<Vec<String>> {
    let sql = "SELECT id FROM users WHERE org_id = $1 ORDER BY id LIMIT 10000";
    let ids: Vec<String> = match c {
        Conn::Sqlite(e) => {
            sqlx::query_scalar(sql)
                .bind(org_id)
                .fetch_all(&mut **e)
                .await?
        }
        Conn::Postgres(e) => {
            sqlx::query_scalar(sql)
                .bind(org_id)
                .fetch_all(&mut **e)
                .await?
        }
    };
    anyhow::ensure!(!ids.is_empty(), "the org has no users");
    Ok(ids)
}

/// The org's users numbered 0.., for the generated rows to pick from.
async fn elsewhere_users(c: &mut Conn<'_>, ids: &[String]) -> anyhow::Result<()> {
    let sqlite = matches!(c, Conn::Sqlite(_));
    let create = "CREATE TABLE IF NOT EXISTS bench_users (n BIGINT PRIMARY KEY, id TEXT NOT NULL)";
    macro_rules! fill {
        ($e:expr) => {{
            sqlx::query(create).execute(&mut **$e).await?;
            sqlx::query("DELETE FROM bench_users")
                .execute(&mut **$e)
                .await?;
            for (chunk_no, chunk) in ids.chunks(ROWS_PER_STATEMENT).enumerate() {
                let sql = format!(
                    "INSERT INTO bench_users (n, id) VALUES {}",
                    crate::values(sqlite, chunk.len(), 2, "")
                );
                let mut q = sqlx::query(&sql);
                for (i, id) in chunk.iter().enumerate() {
                    q = q.bind((chunk_no * ROWS_PER_STATEMENT + i) as i64).bind(id);
                }
                q.execute(&mut **$e).await?;
            }
        }};
    }
    match c {
        Conn::Sqlite(e) => fill!(e),
        Conn::Postgres(e) => fill!(e),
    }
    Ok(())
}

/// One statement's worth of `elsewhere` rows, numbered `from..to`: even numbers are the org's
/// older history (one in 50 of those the measured user's), odd ones other orgs'.
struct Elsewhere<'a> {
    from: u64,
    to: u64,
    tag: &'a str,
    org_id: &'a str,
    user_id: &'a str,
    users: usize,
    now: i64,
}

impl Elsewhere<'_> {
    async fn insert(&self, c: &mut Conn<'_>) -> anyhow::Result<()> {
        // $1..$2: the numbers; $3 tag, $4 org, $5 user, $6 users, $7 now.
        let (series, id, rand) = match c {
            Conn::Sqlite(_) => (
                "WITH RECURSIVE s(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM s WHERE i < $2 - 1) \
                 SELECT i, abs(random() % 9007199254740993) AS r FROM s",
                "'0Yb' || $3 || printf('%012d', i)",
                "r",
            ),
            Conn::Postgres(_) => (
                "SELECT i, floor(random() * 9007199254740992)::bigint AS r \
                 FROM generate_series($1::bigint, $2::bigint - 1) AS i",
                "'0Yb' || $3 || lpad(i::text, 12, '0')",
                "r",
            ),
        };
        let day = DAY_MS;
        let sql = format!(
            "INSERT INTO login_history (id, org_id, user_id, login_at, source_ip, login_type, \
             status, client, api_version, login_url) \
             SELECT {id}, \
               CASE WHEN i % 2 = 0 THEN $4 ELSE '00Dbenchother' || ({rand} % 1000) END, \
               CASE WHEN i % 2 = 1 THEN '005benchother' || ({rand} % 1000000) \
                    WHEN i % 100 = 0 THEN $5 \
                    ELSE (SELECT b.id FROM bench_users b WHERE b.n = {rand} % $6) END, \
               CASE WHEN i % 2 = 0 THEN $7 - {d14} - ({rand} % {d351}) \
                    ELSE $7 - 1 - ({rand} % {d365}) END, \
               '203.0.113.9', 'SOAP Partner', \
               CASE WHEN {rand} % 10 = 0 THEN 'Invalid password' ELSE 'Success' END, \
               'keyward-bench', '59.0', 'https://login.bench.test/services/Soap/u/59.0' \
             FROM ({series}) AS g",
            d14 = 14 * day,
            d351 = 351 * day,
            d365 = 365 * day,
        );
        macro_rules! run {
            ($e:expr) => {
                sqlx::query(&sql)
                    .bind(self.from as i64)
                    .bind(self.to as i64)
                    .bind(self.tag)
                    .bind(self.org_id)
                    .bind(self.user_id)
                    .bind(self.users as i64)
                    .bind(self.now)
                    .execute(&mut **$e)
                    .await?
            };
        }
        match c {
            Conn::Sqlite(e) => {
                run!(e);
            }
            Conn::Postgres(e) => {
                run!(e);
            }
        }
        Ok(())
    }
}

async fn insert(c: &mut Conn<'_>, rows: &[Row]) -> anyhow::Result<()> {
    let sqlite = matches!(c, Conn::Sqlite(_));
    let sql = format!(
        "INSERT INTO login_history (id, org_id, user_id, login_at, status, client, source_ip, \
         login_type, api_version, login_url) VALUES {}",
        crate::values(
            sqlite,
            rows.len(),
            6,
            ", '203.0.113.9', 'SOAP Partner', '59.0', \
             'https://login.bench.test/services/Soap/u/59.0'"
        )
    );
    macro_rules! bind_rows {
        ($e:expr) => {{
            let mut q = sqlx::query(&sql);
            for r in rows {
                q = q
                    .bind(&r.id)
                    .bind(&r.org_id)
                    .bind(&r.user_id)
                    .bind(r.login_at)
                    .bind(if r.ok { "Success" } else { "Invalid password" })
                    .bind("keyward-bench");
            }
            q.execute(&mut **$e).await?;
        }};
    }
    match c {
        Conn::Sqlite(e) => bind_rows!(e),
        Conn::Postgres(e) => bind_rows!(e),
    }
    Ok(())
}

/// The indexes of `table` that no constraint owns (name, the statement that makes it), as
/// the database reports them: what a bulk load may drop and build again.
async fn secondary_indexes(c: &mut Conn<'_>, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(match c {
        Conn::Sqlite(e) => {
            // Indexes made by a constraint (sqlite_autoindex_*) have no statement.
            sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
                 AND sql IS NOT NULL ORDER BY name",
            )
            .bind(table)
            .fetch_all(&mut **e)
            .await?
        }
        Conn::Postgres(e) => {
            sqlx::query_as(
                "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
                 JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                 WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid) \
                 ORDER BY 1",
            )
            .bind(table)
            .fetch_all(&mut **e)
            .await?
        }
    })
}

async fn exec(c: &mut Conn<'_>, sql: &str) -> anyhow::Result<()> {
    match c {
        Conn::Sqlite(e) => {
            sqlx::query(sql).execute(&mut **e).await?;
        }
        Conn::Postgres(e) => {
            sqlx::query(sql).execute(&mut **e).await?;
        }
    }
    Ok(())
}

/// The two Setup queries through the service Setup calls, `repeat` times each: the measured
/// user's last 100 attempts, and the org's per-hour chart over the last week.
pub async fn query(a: QueryHistoryArgs) -> anyhow::Result<()> {
    let services = a.store.store.open().await?;
    let actor = Actor::Cli("bench".into());
    let now = keyward::clock::ms(services.now());
    let last_100 = HistoryQuery {
        user: Some(a.store.user.clone()),
        limit: 100,
        ..HistoryQuery::default()
    };
    let week = HistoryQuery {
        from: Some(now - 7 * DAY_MS),
        to: Some(now),
        limit: 100,
        ..HistoryQuery::default()
    };
    let mut user_ms = Vec::with_capacity(a.repeat);
    let mut chart_ms = Vec::with_capacity(a.repeat);
    let (mut rows, mut attempts) = (0, 0);
    for _ in 0..a.repeat {
        let t = Instant::now();
        rows = services
            .login_history(&actor, Some(&a.store.store.org), &last_100)
            .await?
            .len();
        user_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let hours = services
            .login_history_per_hour(&actor, &a.store.store.org, &week)
            .await?;
        chart_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        attempts = hours.iter().map(|h| h.success + h.failure).sum::<i64>();
    }
    services.close().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "repeat": a.repeat,
            "user_last_100": { "rows": rows, "ms": summary(&mut user_ms) },
            "chart_week": { "attempts": attempts, "ms": summary(&mut chart_ms) },
        }))?
    );
    Ok(())
}

fn summary(v: &mut [f64]) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    serde_json::json!({ "p50": at(0.5), "p90": at(0.9), "min": v[0] })
}
