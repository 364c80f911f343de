//! `keyward` as a separate process, as a user runs it: the CLI, and `keyward serve` on a free
//! port with its stdout and stderr in files.

use super::TestDb;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `keyward` with cheap hashing, fast mail polling, the test's database and no inherited
/// `KEYWARD_*`, run in `cwd`, its data dir `data_dir`.
pub fn keyward(db: &TestDb, cwd: &Path, log_level: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYWARD_") {
            c.env_remove(k);
        }
    }
    c.current_dir(cwd)
        .env("KEYWARD_PASSWORD_HASH_MEMORY_KIB", "256")
        .env("KEYWARD_PASSWORD_HASH_ITERATIONS", "1")
        .env("KEYWARD_LOG_LEVEL", log_level);
    if !db.url.is_empty() {
        c.env("KEYWARD_DATABASE_URL", &db.url);
    }
    c
}

/// Runs a `keyward` command that must succeed, with `stdin` on its standard input; returns
/// stdout.
pub fn run_ok(mut c: Command, args: &[&str], stdin: Option<&str>) -> String {
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
    assert!(
        out.status.success(),
        "keyward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TCP port nothing listens on now (for servers the tests start: SMTP, PostgreSQL).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 30 s) until the file's text satisfies `pred`; returns the text.
pub fn wait_for(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {}: {text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `keyward serve`.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Serve {
    /// Runs `command` (a `keyward … serve --listen 127.0.0.1:0 …`) with output to files in
    /// `dir`, and waits for it to say where it listens.
    pub fn start(mut command: Command, dir: &Path) -> Serve {
        let out = dir.join("serve.out");
        let err = dir.join("serve.err");
        let mut child = command
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let text = loop {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            if text.contains("keyward listening on ") {
                break text;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited with {status}: {text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let base = text
            .split("keyward listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("serve did not start: {text}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        Serve {
            child,
            base,
            out,
            err,
        }
    }

    /// `host:port`
    pub fn addr(&self) -> String {
        self.base.split("://").nth(1).unwrap().to_string()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> Vec<u8> {
        std::fs::read(&self.err).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(mut self) -> i32 {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL — a crash: no graceful shutdown, nothing flushed — then waits for the exit.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
