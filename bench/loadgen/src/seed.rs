//! `keyward-bench seed`: an org with N users for the benchmarks, in batches.

use anyhow::Context;
use keyward::config::Config;
use keyward::crypto::token_digest;
use keyward::domain::ids::KeyPrefix;
use keyward::domain::secret::Password;
use keyward::domain::token::SecurityToken;
use keyward::service::{Actor, new_id};
use keyward::store::users::{self, UserRow};
use keyward::store::{ms, profiles};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SeedArgs {
    /// keyward's data dir (SQLite unless --database-url is given)
    #[arg(long)]
    data_dir: PathBuf,
    /// PostgreSQL URL; empty: SQLite in the data dir
    #[arg(long, default_value = "")]
    database_url: String,
    /// The org to create (or add to)
    #[arg(long, default_value = "Bench")]
    org: String,
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
    /// Users per transaction
    #[arg(long, default_value_t = 2000)]
    batch: u64,
}

pub async fn run(a: SeedArgs) -> anyhow::Result<()> {
    let mut config = Config {
        data_dir: a.data_dir.clone(),
        ..Config::default()
    };
    config.database.url = a.database_url.clone();
    std::fs::create_dir_all(&a.data_dir)?;
    let services = keyward::app::open(&config).await?;
    let actor = Actor::Cli("bench".into());
    let org = {
        let mut c = services.db.conn().await?;
        keyward::store::orgs::find_by_name(&mut c.c(), &a.org).await?
    };
    let org = match org {
        Some(o) => o,
        None => services.create_org(&actor, &a.org).await?,
    };
    let profile = {
        let mut c = services.db.conn().await?;
        profiles::find_by_name(&mut c.c(), &org.id, "Standard User")
            .await?
            .context("the org has no Standard User profile")?
    };
    // One hash with the server's parameters, stored for every user: the benchmark measures
    // logins, not seeding.
    let hash = services
        .hasher
        .hash(&Password::new(a.password.clone()))
        .await?;
    let mut credentials = match &a.credentials_out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut rng = rand::rngs::OsRng;
    let started = Instant::now();
    let total = a.users;
    let mut done = 0u64;
    while done < total {
        let n = a.batch.min(total - done);
        let now = ms(services.now());
        let mut tx = services.db.begin().await?;
        for i in 0..n {
            let number = a.start + done + i;
            let username = format!("{}{number}@bench.test", a.prefix);
            let row = UserRow {
                id: new_id(KeyPrefix::User),
                org_id: org.id.clone(),
                profile_id: profile.id.clone(),
                username: username.clone(),
                email: username.clone(),
                first_name: "Bench".into(),
                last_name: format!("User {number}"),
                active: true,
                password_hash: None,
                password_changed_at: None,
                token_digest: None,
                token_issued_at: None,
                failed_logins: 0,
                locked_until: None,
                last_login_at: None,
                created_at: now,
                updated_at: now,
            };
            users::insert(&mut tx.c(), &row).await?;
            users::set_password(&mut tx.c(), &org.id, &row.id, &hash, now).await?;
            let token = loop {
                let t = SecurityToken::generate(&mut rng);
                if users::set_token(
                    &mut tx.c(),
                    &org.id,
                    &row.id,
                    &token_digest(&t),
                    "first_password",
                    now,
                )
                .await?
                {
                    break t;
                }
            };
            if let Some(out) = credentials.as_mut()
                && done + i < a.credentials_count
            {
                writeln!(out, "{username},{}{}", a.password, token.expose())?;
            }
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
    services.db.close().await;
    println!(
        "{}",
        serde_json::json!({
            "org": org.name,
            "org_id": keyward::service::id18(&org.id),
            "users": total,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
