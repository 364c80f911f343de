//! `keyward-bench seed`: an org with N users for the benchmarks, in batches.

use anyhow::Context;
use keyward::clock::ms;
use keyward::crypto::token_digest;
use keyward::domain::ids::KeyPrefix;
use keyward::domain::secret::Password;
use keyward::domain::token::SecurityToken;
use keyward::service::{Actor, new_id};
use keyward::test_support::store::Conn;
use keyward::test_support::store::profiles;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    store: crate::StoreArgs,
    /// How many users
    #[arg(long)]
    users: u64,
    /// The users' shared password
    #[arg(long, default_value = "Bench-Passw0rd")]
    password: String,
    /// Username prefix: users are <prefix><n>@bench.test
    #[arg(long, default_value = "user")]
    prefix: String,
    /// The first user's number (to add users to an existing org)
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Write "username,password+token" for the first this many users here
    #[arg(long)]
    credentials_out: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    credentials_count: u64,
    /// Write every this-many'th user's credentials (a sample spread over the whole table)
    #[arg(long, default_value_t = 1)]
    credentials_every: u64,
    /// Give each user whose credentials are written an integration token, and write
    /// "username,token" here
    #[arg(long)]
    integration_out: Option<PathBuf>,
    /// Argon2id memory of the users' password hash, in KiB [default: the server's]
    #[arg(long)]
    memory_kib: Option<u32>,
    /// Argon2id iterations [default: the server's]
    #[arg(long)]
    iterations: Option<u32>,
    /// Users per transaction
    #[arg(long, default_value_t = 50_000)]
    batch: u64,
    /// SQLite's page cache while seeding, in MiB: the indexes on random ids (users, token
    /// digests) outgrow the default 2 MiB early, and every insert then reads pages back
    #[arg(long, default_value_t = 1024)]
    sqlite_cache_mib: u32,
}

pub async fn run(a: SeedArgs) -> anyhow::Result<()> {
    let services = a.store.open().await?;
    let actor = Actor::Cli("bench".into());
    let org = {
        let mut c = keyward::test_support::db(&services).conn().await?;
        keyward::test_support::store::orgs::find_by_name(&mut c.as_conn(), &a.store.org).await?
    };
    let org_id = match org {
        Some(o) => o.id,
        None => services.create_org(&actor, &a.store.org).await?.id,
    };
    let profile = {
        let mut c = keyward::test_support::db(&services).conn().await?;
        profiles::find_by_name(&mut c.as_conn(), &org_id, "Standard User")
            .await?
            .context("the org has no Standard User profile")?
    };
    // One hash with the server's parameters, stored for every user: the benchmark measures
    // logins, not seeding.
    let defaults = keyward::crypto::HashParams::default();
    let params = keyward::crypto::HashParams {
        memory_kib: a.memory_kib.unwrap_or(defaults.memory_kib),
        iterations: a.iterations.unwrap_or(defaults.iterations),
        ..defaults
    };
    let hash = keyward::crypto::Hasher::new(params, 1)?
        .hash(&Password::new(a.password.clone()))
        .await?;
    let every = a.credentials_every.max(1);
    let mut written = 0u64;
    let mut credentials = match &a.credentials_out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut rng = rand::rngs::OsRng;
    let mut sampled = Vec::new();
    let started = Instant::now();
    let total = a.users;
    let mut done = 0u64;
    while done < total {
        let n = a.batch.min(total - done);
        let now = ms(services.now());
        let mut rows = Vec::with_capacity(n as usize);
        for i in 0..n {
            let number = a.start + done + i;
            let username = format!("{}{number}@bench.test", a.prefix);
            let token = SecurityToken::generate(&mut rng);
            if let Some(out) = credentials.as_mut()
                && written < a.credentials_count
                && (done + i).is_multiple_of(every)
            {
                writeln!(out, "{username},{}{}", a.password, token.expose())?;
                written += 1;
                sampled.push(username.clone());
            }
            rows.push(Seeded {
                id: new_id(KeyPrefix::User),
                last_name: format!("User {number}"),
                username,
                token_digest: token_digest(&token),
            });
        }
        let mut tx = keyward::test_support::db(&services).begin().await?;
        crate::sqlite_cache(&mut tx.as_conn(), a.sqlite_cache_mib).await?;
        for chunk in rows.chunks(USERS_PER_STATEMENT) {
            let batch = Batch {
                org_id: &org_id,
                profile_id: &profile.id,
                hash: &hash,
                now,
                rows: chunk,
            };
            batch.insert(&mut tx.as_conn()).await?;
        }
        tx.commit().await?;
        done += n;
        let secs = started.elapsed().as_secs_f64();
        eprint!(
            "\rseeded {done}/{total} users ({:.0}%), {:.0} users/s, {:.0} s",
            100.0 * done as f64 / total as f64,
            done as f64 / secs.max(0.001),
            secs
        );
    }
    eprintln!();
    if let Some(mut out) = credentials {
        out.flush()?;
    }
    if let Some(path) = &a.integration_out {
        integration_tokens(&services, &org_id, &sampled, path).await?;
    }
    services.close().await;
    println!(
        "{}",
        serde_json::json!({
            "org": a.store.org,
            "org_id": keyward::service::id18(&org_id),
            "users": total,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// One integration token for each of these users, as `create_integration_token` stores it
/// (without its mail), written as "username,token".
async fn integration_tokens(
    services: &keyward::service::Services,
    org_id: &str,
    usernames: &[String],
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use keyward::domain::integration::IntegrationToken;
    use keyward::test_support::store::integration::{IntegrationTokenRow, insert};
    use keyward::test_support::store::users;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let now = ms(services.now());
    let mut tx = keyward::test_support::db(services).begin().await?;
    for username in usernames {
        let user = users::find_by_username(&mut tx.as_conn(), username)
            .await?
            .context("a seeded user is missing")?;
        let token = IntegrationToken::generate(&mut rand::rngs::OsRng);
        let row = IntegrationTokenRow {
            id: new_id(KeyPrefix::IntegrationToken),
            org_id: org_id.to_string(),
            user_id: user.id,
            name: "bench".into(),
            digest: keyward::crypto::digest(token.expose()),
            created_at: now,
            expires_at: now + 90 * 86_400_000,
            revoked_at: None,
            replaced_at: None,
            predecessor_id: None,
            next_reminder_at: None,
            grace_until: None,
        };
        anyhow::ensure!(insert(&mut tx.as_conn(), &row).await?, "token collision");
        writeln!(out, "{username},{}", token.expose())?;
    }
    tx.commit().await?;
    out.flush()?;
    Ok(())
}

/// Users per multi-row `INSERT` (12 parameters a user, within SQLite's 32,766).
const USERS_PER_STATEMENT: usize = 500;

struct Seeded {
    id: String,
    username: String,
    last_name: String,
    token_digest: String,
}

/// A batch of users as the services would leave them after a create, a password set and a
/// first token (`store::users::insert`, `set_password`, `set_token`): the username claim, the
/// user row, its password history and token history — four multi-row statements for the
/// batch instead of six statements a user, so a million users take minutes on PostgreSQL too.
struct Batch<'a> {
    org_id: &'a str,
    profile_id: &'a str,
    hash: &'a str,
    now: i64,
    rows: &'a [Seeded],
}

impl Batch<'_> {
    async fn insert(&self, c: &mut Conn<'_>) -> anyhow::Result<()> {
        let sqlite = matches!(c, Conn::Sqlite(_));
        let n = self.rows.len();
        let claims = format!(
            "INSERT INTO usernames (username, org_id, user_id) VALUES {}",
            crate::values(sqlite, n, 3, "")
        );
        let users = format!(
            "INSERT INTO users (id, org_id, profile_id, username, email, last_name, \
             password_hash, password_changed_at, token_digest, token_issued_at, created_at, \
             updated_at, first_name, active, failed_logins) VALUES {}",
            crate::values(sqlite, n, 12, ", 'Bench', TRUE, 0")
        );
        let passwords = format!(
            "INSERT INTO password_history (org_id, user_id, password_hash, created_at) VALUES {}",
            crate::values(sqlite, n, 4, "")
        );
        let tokens = format!(
            "INSERT INTO token_history (digest, org_id, user_id, issued_at, reason) VALUES {}",
            crate::values(sqlite, n, 4, ", 'first_password'")
        );
        let (org, profile, hash, now) = (self.org_id, self.profile_id, self.hash, self.now);
        macro_rules! run {
            ($e:expr) => {{
                let mut q = sqlx::query(&claims);
                for r in self.rows {
                    q = q.bind(&r.username).bind(org).bind(&r.id);
                }
                q.execute(&mut **$e).await?;
                let mut q = sqlx::query(&users);
                for r in self.rows {
                    q = q
                        .bind(&r.id)
                        .bind(org)
                        .bind(profile)
                        .bind(&r.username)
                        .bind(&r.username)
                        .bind(&r.last_name)
                        .bind(hash)
                        .bind(now)
                        .bind(&r.token_digest)
                        .bind(now)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut **$e).await?;
                let mut q = sqlx::query(&passwords);
                for r in self.rows {
                    q = q.bind(org).bind(&r.id).bind(hash).bind(now);
                }
                q.execute(&mut **$e).await?;
                let mut q = sqlx::query(&tokens);
                for r in self.rows {
                    q = q.bind(&r.token_digest).bind(org).bind(&r.id).bind(now);
                }
                q.execute(&mut **$e).await?;
            }};
        }
        match c {
            Conn::Sqlite(e) => run!(e),
            Conn::Postgres(e) => run!(e),
        }
        Ok(())
    }
}
