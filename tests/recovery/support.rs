//! What both recovery tests use: a data dir with `keyward` pointed at it, the mail it wrote,
//! SOAP logins, and waiting for a condition.

use crate::common::process::{Serve, keyward, run_ok};
use crate::common::server::login_envelope;
use crate::common::{TestDb, mails_in};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const SOAP: &str = "/services/Soap/u/59.0";

/// A data dir (and, on PostgreSQL, a database) with `keyward` pointed at it.
pub struct Setup {
    pub db: TestDb,
    pub data: PathBuf,
    /// Overrides the test database (the private PostgreSQL cluster of the outage test).
    pub database_url: Option<String>,
}

impl Setup {
    pub fn kw(&self, level: &str) -> Command {
        let mut c = keyward(&self.db, self.db.dir.path(), level);
        c.arg("--data-dir")
            .arg(&self.data)
            .env("KEYWARD_MAIL_POLL_MS", "100");
        if let Some(url) = &self.database_url {
            c.env("KEYWARD_DATABASE_URL", url);
        }
        c
    }

    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        run_ok(self.kw("warn"), args, stdin)
    }

    /// `keyward serve` on a free port, its output in `<dir>/<run>/`.
    pub fn serve(&self, run: &str) -> Serve {
        let dir = self.db.dir.path().join(run);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = self.kw("info");
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        Serve::start(c, &dir)
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data.join("mail")
    }

    /// A user of Acme with a first password (their first token is mailed); returns the id.
    pub fn user(&self, username: &str, password: &str, profile: &str) -> String {
        self.cli(
            &[
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                username,
                "--email",
                username,
                "--profile",
                profile,
                "--password-stdin",
            ],
            Some(password),
        )
        .trim()
        .to_string()
    }
}

/// The distinct tokens mailed to `to`, oldest first (a redelivery writes the same file again, so
/// a token appears once however often it was delivered).
pub fn tokens_to(mail_dir: &Path, to: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in mails_in(mail_dir).iter().filter(|m| m.to == to) {
        if let Some(t) = m.token()
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

/// Waits (up to `limit`) until `cond` holds: a condition, not a timing assertion.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// A client that gives up on an answer after `timeout` (a hang is a failure, not a wait).
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// A SOAP `login()`; (status, body).
pub async fn soap_login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    secret: &str,
) -> reqwest::Result<(u16, String)> {
    let r = http
        .post(format!("{base}{SOAP}"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(login_envelope(username, secret))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

/// The text of the first `<name>` element.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or("").to_string())
}
