//! `Kw`, which runs `keyward` against one test database and keeps everything it printed, its
//! `Out`, and `count`, for the secrets check.

use crate::common;
use crate::common::{Backend, TestDb, mails_in};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `keyward` against one test database, collecting everything it prints.
pub struct Kw {
    pub db: TestDb,
    /// Every stdout and stderr byte of every run, for the secrets check.
    pub transcript: std::cell::RefCell<Vec<u8>>,
    pub log_level: &'static str,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Kw {
    /// Over a store that exists (commands other than `init` and `serve` refuse a data dir
    /// without one).
    pub async fn new(b: Backend) -> Kw {
        let db = TestDb::new(b).await;
        db.open().await.close().await;
        Kw {
            db,
            transcript: Default::default(),
            log_level: "info",
        }
    }

    /// `keyward` with cheap hashing, this test's database and no inherited `KEYWARD_*`, in the
    /// default data dir (`./keyward-data` under `cwd`).
    pub fn base_command(&self, cwd: &Path) -> Command {
        common::process::keyward(&self.db, cwd, self.log_level)
    }

    pub fn command(&self) -> Command {
        let mut c = self.base_command(self.db.dir.path());
        c.arg("--data-dir").arg(self.db.data_dir());
        c
    }

    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let mut t = self.transcript.borrow_mut();
        t.extend(&out.stdout);
        t.extend(&out.stderr);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run_with(args, stdin);
        assert_eq!(o.code, 0, "keyward {args:?} failed: {}", o.stderr);
        o.stdout
    }

    /// Org Acme and its user ada@acme.test (mail to `email`) with `password`.
    pub fn acme_with_ada(&self, email: &str, password: &str) {
        self.ok(&["org", "create", "--name", "Acme"]);
        self.ok_with(
            &[
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "ada@acme.test",
                "--email",
                email,
                "--password-stdin",
            ],
            Some(password),
        );
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn mails(&self) -> Vec<common::Mail> {
        mails_in(&self.db.mail_dir())
    }
}

pub fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}
