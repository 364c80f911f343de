//! `keyward-bench login`: SOAP and OAuth logins, or plain GETs, against a running server.
//!
//! Closed loop by default: `concurrency` workers each send a request, wait for its answer and
//! send the next. With `--rate`, open loop: requests start on a fixed schedule (at most
//! `concurrency` in flight), and each one's latency is measured from when it was due, so a
//! server that falls behind shows it in the percentiles instead of slowing the generator down.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// SOAP login() on the partner endpoint
    Soap,
    /// OAuth username-password flow
    Oauth,
    /// GET --path (with --bearer)
    Get,
    /// SOAP getUserInfo() with --bearer as the session id
    UserInfo,
    /// POST /services/oauth2/introspect of --bearer, as the OAuth client
    Introspect,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "soap")]
    kind: Kind,
    /// "username,password+token" per line (keyward-bench seed --credentials-out)
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Send a wrong password instead of the right one (the credentials' usernames) — or, with
    /// --unknown, usernames nobody has
    #[arg(long)]
    wrong: bool,
    #[arg(long)]
    unknown: bool,
    /// Send the right password without its security token (the last 24 characters of the
    /// credentials' secret): what someone who holds only the password can send
    #[arg(long)]
    no_token: bool,
    #[arg(long, default_value = "")]
    client_id: String,
    #[arg(long, default_value = "")]
    client_secret: String,
    /// For --kind get
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Bearer token / session id for get, user-info and introspect
    #[arg(long, default_value = "")]
    bearer: String,
    /// Requests in flight at most (closed loop: exactly)
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Open loop: start this many requests per second
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds before measuring (connections set up, caches warm)
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Source addresses: a list and/or ranges, "127.0.0.2-127.0.0.9,127.0.1.1"
    #[arg(long, default_value = "127.0.0.1")]
    sources: String,
    /// A name for this run in the JSON
    #[arg(long, default_value = "")]
    label: String,
}

/// One completed request.
struct Sample {
    ok: bool,
    status: u16,
    latency: Duration,
}

struct Shared {
    args: LoginArgs,
    clients: Vec<reqwest::Client>,
    credentials: Vec<(String, String)>,
    next: AtomicUsize,
    measure_from: Instant,
    until: Instant,
    samples: Mutex<Vec<Sample>>,
    /// This process's CPU seconds when measuring began (set once, at `measure_from`).
    cpu_at_start: std::sync::OnceLock<f64>,
}

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let sources = parse_sources(&args.sources)?;
    let credentials = match &args.credentials {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .lines()
            .filter_map(|l| l.split_once(','))
            .map(|(u, s)| (u.to_string(), s.to_string()))
            .collect(),
        None => Vec::new(),
    };
    if matches!(args.kind, Kind::Soap | Kind::Oauth) && credentials.is_empty() {
        bail!("--credentials is needed for logins");
    }
    let clients = sources
        .iter()
        .map(|ip| {
            reqwest::Client::builder()
                .local_address(*ip)
                .no_proxy()
                .pool_max_idle_per_host(args.concurrency)
                .timeout(Duration::from_secs(60))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    let shared = Arc::new(Shared {
        args,
        clients,
        credentials,
        next: AtomicUsize::new(0),
        measure_from,
        until,
        samples: Mutex::new(Vec::new()),
        cpu_at_start: std::sync::OnceLock::new(),
    });
    let marker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(shared.measure_from.into()).await;
            let _ = shared.cpu_at_start.set(process_cpu_seconds());
        })
    };
    match shared.args.rate {
        None => closed_loop(&shared).await?,
        Some(rate) => open_loop(&shared, rate).await?,
    }
    marker.await?;
    report(&shared, &sources).await
}

/// This process's CPU time (user + system, all threads) from `/proc/self/stat`, in seconds;
/// 0 where there is no /proc. Linux reports it in USER_HZ ticks, 100 a second on every
/// architecture Linux runs on today.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses: utime is the 12th
    // and stime the 13th of them.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn closed_loop(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let workers: Vec<_> = (0..shared.args.concurrency)
        .map(|w| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let client = &shared.clients[w % shared.clients.len()];
                loop {
                    let due = Instant::now();
                    if due >= shared.until {
                        return;
                    }
                    let sample = one(&shared, client, due).await;
                    if due >= shared.measure_from {
                        shared.samples.lock().await.push(sample);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    Ok(())
}

async fn open_loop(shared: &Arc<Shared>, rate: f64) -> anyhow::Result<()> {
    if rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let in_flight = Arc::new(Semaphore::new(shared.args.concurrency));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0u64.. {
        let due = start + interval.mul_f64(n as f64);
        if due >= shared.until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        // Over the in-flight bound the request waits; its latency still counts from `due`.
        let permit = in_flight.clone().acquire_owned().await?;
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let client = &shared.clients[n as usize % shared.clients.len()];
            let sample = one(&shared, client, due).await;
            drop(permit);
            if due >= shared.measure_from {
                shared.samples.lock().await.push(sample);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// Sends one request; its latency runs from `due`.
async fn one(shared: &Shared, client: &reqwest::Client, due: Instant) -> Sample {
    let a = &shared.args;
    let base = a.url.trim_end_matches('/');
    let credential = || {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let (user, secret) = &shared.credentials[i % shared.credentials.len()];
        let user = if a.unknown {
            format!("nobody{i}@bench.test")
        } else {
            user.clone()
        };
        let secret = if a.wrong || a.unknown {
            format!("wrong-{i}")
        } else if a.no_token {
            let cut = secret.len().saturating_sub(24);
            secret[..cut].to_string()
        } else {
            secret.clone()
        };
        (user, secret)
    };
    let request = match a.kind {
        Kind::Soap => {
            let (user, secret) = credential();
            client
                .post(format!("{base}/services/Soap/u/59.0"))
                .header("Content-Type", "text/xml; charset=UTF-8")
                .header("SOAPAction", "login")
                .body(soap_login(&user, &secret))
        }
        Kind::Oauth => {
            let (user, secret) = credential();
            let form = [
                ("grant_type", "password"),
                ("client_id", &a.client_id),
                ("client_secret", &a.client_secret),
                ("username", &user),
                ("password", &secret),
            ];
            client
                .post(format!("{base}/services/oauth2/token"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(&form))
        }
        Kind::Get => client
            .get(format!("{base}{}", a.path))
            .bearer_auth(&a.bearer),
        Kind::UserInfo => client
            .post(format!("{base}/services/Soap/u/59.0"))
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "getUserInfo")
            .body(soap_user_info(&a.bearer)),
        Kind::Introspect => {
            let form = [
                ("token", a.bearer.as_str()),
                ("client_id", a.client_id.as_str()),
                ("client_secret", a.client_secret.as_str()),
            ];
            client
                .post(format!("{base}/services/oauth2/introspect"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(&form))
        }
    };
    let (status, ok) = match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            let ok = status == 200
                && match a.kind {
                    Kind::Soap => body.contains("<sessionId>"),
                    Kind::Oauth => body.contains("\"access_token\""),
                    Kind::Introspect => body.contains("\"active\":true"),
                    Kind::UserInfo => body.contains("<userId>"),
                    Kind::Get => true,
                };
            (status, ok)
        }
        Err(_) => (0, false),
    };
    Sample {
        ok,
        status,
        latency: due.elapsed(),
    }
}

async fn report(shared: &Shared, sources: &[IpAddr]) -> anyhow::Result<()> {
    let cpu_seconds = process_cpu_seconds() - shared.cpu_at_start.get().copied().unwrap_or(0.0);
    let samples = shared.samples.lock().await;
    let a = &shared.args;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples.iter() {
        *statuses.entry(s.status.to_string()).or_default() += 1;
    }
    let ok = samples.iter().filter(|s| s.ok).count();
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|s| s.latency.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if ms.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * ms.len() as f64).ceil() as usize;
        ms[i.clamp(1, ms.len()) - 1]
    };
    let mean = if ms.is_empty() {
        0.0
    } else {
        ms.iter().sum::<f64>() / ms.len() as f64
    };
    let kind = match a.kind {
        Kind::Soap => "soap",
        Kind::Oauth => "oauth",
        Kind::Get => "get",
        Kind::UserInfo => "user-info",
        Kind::Introspect => "introspect",
    };
    let out = serde_json::json!({
        "label": a.label,
        "kind": kind,
        "mode": if a.rate.is_some() { "open loop" } else { "closed loop" },
        "concurrency": a.concurrency,
        "rate": a.rate,
        "seconds": a.seconds,
        "sources": sources.len(),
        "requests": samples.len(),
        "ok": ok,
        "failed": samples.len() - ok,
        "statuses": statuses,
        "ok_per_second": ok as f64 / a.seconds,
        // The generator's own CPU from the start of measuring to the end of the run: on a
        // machine it shares with the server, what it takes away from the server.
        "cpu_seconds": cpu_seconds,
        "latency_ms": {
            "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0),
            "max": ms.last().copied().unwrap_or(0.0), "mean": mean,
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn parse_sources(s: &str) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
                    (from.parse()?, to.parse()?);
                let (from, to) = (u32::from(from), u32::from(to));
                if to < from || to - from > 65_535 {
                    bail!("bad source range {part}");
                }
                out.extend((from..=to).map(|n| IpAddr::V4(n.into())));
            }
            None => out.push(part.parse()?),
        }
    }
    if out.is_empty() {
        bail!("no source address");
    }
    Ok(out)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn soap_login(user: &str, secret: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><env:Envelope \
         xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Body>\
         <n1:login xmlns:n1=\"urn:partner.soap.sforce.com\"><n1:username>{}</n1:username>\
         <n1:password>{}</n1:password></n1:login></env:Body></env:Envelope>",
        xml_escape(user),
        xml_escape(secret)
    )
}

fn soap_user_info(session: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><env:Envelope \
         xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Header>\
         <SessionHeader xmlns=\"urn:partner.soap.sforce.com\"><sessionId>{}</sessionId>\
         </SessionHeader></env:Header><env:Body><getUserInfo \
         xmlns=\"urn:partner.soap.sforce.com\"/></env:Body></env:Envelope>",
        xml_escape(session)
    )
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
