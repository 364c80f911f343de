//! `keyward-bench seed`: an org with N users for the benchmarks, in batches.

use anyhow::Context;
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
    /// Argon2id memory of the users' password hash, in KiB [default: the server's]
    #[arg(long)]
    memory_kib: Option<u32>,
    /// Argon2id iterations [default: the server's]
    #[arg(long)]
    iterations: Option<u32>,
    /// Users per transaction
    #[arg(long, default_value_t = 2000)]
    batch: u64,
}

pub async fn run(a: SeedArgs) -> anyhow::Result<()> {
    let services = a.store.open().await?;
    let actor = Actor::Cli("bench".into());
    let org = {
        let mut c = services.db.conn().await?;
        keyward::store::orgs::find_by_name(&mut c.c(), &a.store.org).await?
    };
    let org = match org {
        Some(o) => o,
        None => services.create_org(&actor, &a.store.org).await?,
    };
    let profile = {
        let mut c = services.db.conn().await?;
        profiles::find_by_name(&mut c.c(), &org.id, "Standard User")
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
                && written < a.credentials_count
                && (done + i).is_multiple_of(every)
            {
                writeln!(out, "{username},{}{}", a.password, token.expose())?;
                written += 1;
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
