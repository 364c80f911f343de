//! `keyward serve` as a process, on SQLite and PostgreSQL: https with `keyward cert generate`
//! (what Data Loader needs), and secrets hygiene: after a full lifecycle over SOAP, OAuth, the
//! CLI and the web UI no response, log line (at trace level), login-history or audit row — and,
//! once the mail is out, no byte of the database — contains a password or a security token
//! (R-T2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::process::{Serve, keyward, run_ok};
use common::server::{login_envelope, session_envelope};
use common::{Backend, TestDb, latest_token, mails_in};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

on_both!(
    tls_serves_https_with_the_generated_certificates,
    r_t2_no_password_or_token_in_responses_logs_history_or_database,
);

/// Waits for the newest token mailed to `to` to differ from `old`.
fn next_token(mail_dir: &Path, to: &str, old: Option<&str>) -> String {
    let start = Instant::now();
    loop {
        let mails = mails_in(mail_dir);
        if mails.iter().any(|m| m.to == to && m.token().is_some()) {
            let t = latest_token(&mails, to);
            if Some(t.as_str()) != old {
                return t;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no new token mail to {to}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a verification-code mail to `to` and returns the newest code.
fn next_code(mail_dir: &Path, to: &str) -> String {
    let start = Instant::now();
    loop {
        let code = mails_in(mail_dir)
            .iter()
            .filter(|m| m.to == to && m.subject == "Verify your identity")
            .filter_map(|m| {
                m.text
                    .lines()
                    .find_map(|l| l.strip_prefix("Verification code: "))
                    .map(|c| c.trim().to_string())
            })
            .next_back();
        if let Some(code) = code {
            return code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no verification code mailed to {to}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A browser for the web UI: keeps its cookies, sends the page's CSRF token with every form,
/// and appends every answer (headers and body) to a transcript.
struct WebClient {
    http: reqwest::Client,
    base: String,
    cookies: std::collections::BTreeMap<String, String>,
    csrf: String,
}

impl WebClient {
    fn new(base: &str) -> WebClient {
        WebClient {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: Default::default(),
            csrf: String::new(),
        }
    }

    async fn keep(&mut self, r: reqwest::Response, transcript: &mut Vec<u8>) -> String {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        transcript.extend(format!("{:?}\n", r.headers()).into_bytes());
        let text = r.text().await.unwrap();
        if let Some(at) = text.find("name=\"csrf\" value=\"") {
            let rest = &text[at + 19..];
            self.csrf = rest[..rest.find('"').unwrap()].to_string();
        }
        transcript.extend(text.as_bytes());
        text
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str, transcript: &mut Vec<u8>) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(r, transcript).await
    }

    /// Opens a page for its form's CSRF token.
    async fn form_csrf(&mut self, path: &str, transcript: &mut Vec<u8>) {
        self.get(path, transcript).await;
        assert!(!self.csrf.is_empty(), "{path} has no form");
    }

    async fn post(
        &mut self,
        path: &str,
        pairs: &[(&str, &str)],
        transcript: &mut Vec<u8>,
    ) -> String {
        let mut all = vec![("csrf", self.csrf.clone())];
        all.extend(pairs.iter().map(|(k, v)| (*k, v.to_string())));
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .form(&all)
            .send()
            .await
            .unwrap();
        self.keep(r, transcript).await
    }
}

struct Setup {
    db: TestDb,
    data: std::path::PathBuf,
}

impl Setup {
    async fn new(b: Backend) -> Setup {
        let db = TestDb::new(b).await;
        let data = db.data_dir();
        Setup { db, data }
    }

    fn kw(&self, level: &str) -> Command {
        let mut c = keyward(&self.db, self.db.dir.path(), level);
        c.arg("--data-dir")
            .arg(&self.data)
            .env("KEYWARD_MAIL_POLL_MS", "100");
        c
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        run_ok(self.kw("warn"), args, stdin)
    }

    /// Org Acme with user ada@acme.test, whose first token is mailed.
    fn acme_with_ada(&self, password: &str) {
        self.cli(&["org", "create", "--name", "Acme"], None);
        let user = ["--username", "ada@acme.test", "--email", "ada@acme.test"];
        let mut args = vec!["user", "create", "--org", "Acme", "--password-stdin"];
        args.extend(user);
        self.cli(&args, Some(password));
    }
}

async fn tls_serves_https_with_the_generated_certificates(b: Backend) {
    let st = Setup::new(b).await;
    let tls = st.db.dir.path().join("tls");
    let printed = st.cli(&["cert", "generate", "--out", tls.to_str().unwrap()], None);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    let mut serve = st.kw("info");
    serve.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        tls.join("cert.pem").to_str().unwrap(),
        "--tls-key",
        tls.join("key.pem").to_str().unwrap(),
    ]);
    let server = Serve::start(serve, st.db.dir.path());
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    st.acme_with_ada("Passw0rd!tls");
    let token = next_token(&st.data.join("mail"), "ada@acme.test", None);
    // A client that trusts the generated CA (what Data Loader's trust store does).
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.pem")).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/services/Soap/u/64.0/", server.base))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .body(login_envelope(
            "ada@acme.test",
            &format!("Passw0rd!tls{token}"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "<serverUrl>{}/services/Soap/u/64.0/00D",
            server.base
        )),
        "serverUrl is the https address: {text}"
    );
    // The web UI's cookies are Secure over TLS.
    let page = http.get(format!("{}/", server.base)).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("kw_csrf=")
            && cookie.contains("; Secure")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Data Loader's way (docs/clients.md): the CA in a Java trust store, the JVM's TLS stack, a
    // gzip body to `https://localhost:PORT//services/Soap/u/64.0/`.
    let store = st.db.dir.path().join("keyward-truststore.p12");
    let keytool = Command::new("keytool")
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "keyward-local-ca",
            "-file",
        ])
        .arg(tls.join("ca.pem"))
        .arg("-keystore")
        .arg(&store)
        .args(["-storetype", "PKCS12", "-storepass", "changeit"])
        .output()
        .expect("keytool (a JDK) is needed: .ci/run installs default-jdk-headless");
    assert!(
        keytool.status.success(),
        "{}",
        String::from_utf8_lossy(&keytool.stderr)
    );
    let port = server.addr().rsplit(':').next().unwrap().to_string();
    let java = |trust: bool| {
        let mut c = Command::new("java");
        if trust {
            c.arg(format!("-Djavax.net.ssl.trustStore={}", store.display()))
                .arg("-Djavax.net.ssl.trustStorePassword=changeit");
        }
        c.arg(format!(
            "{}/tests/java/DataLoaderLogin.java",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("https://localhost:{port}"))
        .arg("ada@acme.test")
        .arg(format!("Passw0rd!tls{token}"))
        .output()
        .unwrap()
    };
    let out = java(true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("HTTP 200"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "<serverUrl>https://localhost:{port}/services/Soap/u/64.0/00D"
        )),
        "{stdout}"
    );
    let untrusted = java(false);
    assert!(!untrusted.status.success());
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("PKIX"),
        "the JVM refuses an unknown CA"
    );
    // A client that does not trust it is refused; plain http on the TLS port gets nothing.
    let untrusting = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        untrusting
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
    );
    let plain = format!("http://{}/healthz", server.addr());
    assert!(untrusting.get(plain).send().await.is_err());
    assert_eq!(server.stop(), 0);
    st.db.drop_db().await;
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

async fn r_t2_no_password_or_token_in_responses_logs_history_or_database(b: Backend) {
    let st = Setup::new(b).await;
    let mail_dir = st.data.join("mail");
    let server = Serve::start(
        {
            let mut c = st.kw("trace");
            c.args(["serve", "--listen", "127.0.0.1:0"]);
            c
        },
        st.db.dir.path(),
    );
    let base = server.base.clone();
    let (p1, p2) = ("First-Secret-Passw0rd", "Second-Secret-Passw0rd");
    st.acme_with_ada(p1);
    let client = st.cli(
        &[
            "oauth",
            "client",
            "create",
            "--org",
            "Acme",
            "--name",
            "app",
            "--refresh-tokens",
        ],
        None,
    );
    let mut lines = client.lines();
    let (client_id, client_secret) = (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    );
    let t1 = next_token(&mail_dir, "ada@acme.test", None);

    let http = common::server::client();
    let mut transcript: Vec<u8> = Vec::new();
    let soap = |body: String| {
        let http = http.clone();
        let url = format!("{base}/services/Soap/u/59.0");
        async move {
            let r = http
                .post(url)
                .header("Content-Type", "text/xml")
                .body(body)
                .send()
                .await
                .unwrap();
            let mut t = format!("{:?}\n", r.headers()).into_bytes();
            t.extend(r.text().await.unwrap().into_bytes());
            t
        }
    };
    let form = |path: &str, pairs: Vec<(&str, String)>| {
        let http = http.clone();
        let url = format!("{base}{path}");
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        async move {
            let r = http.post(url).form(&pairs).send().await.unwrap();
            let mut t = format!("{:?}\n", r.headers()).into_bytes();
            t.extend(r.text().await.unwrap().into_bytes());
            t
        }
    };
    let sid_of = |t: &[u8]| {
        let s = String::from_utf8_lossy(t).to_string();
        s.split("<sessionId>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };
    // SOAP: success, password alone, wrong password, unknown user, changeOwnPassword and logout.
    let ok = soap(login_envelope("ada@acme.test", &format!("{p1}{t1}"))).await;
    let sid = sid_of(&ok);
    transcript.extend(ok);
    transcript.extend(soap(login_envelope("ada@acme.test", p1)).await);
    transcript.extend(soap(login_envelope("ada@acme.test", &format!("wrong{t1}"))).await);
    transcript.extend(soap(login_envelope("nobody@acme.test", &format!("{p1}{t1}"))).await);
    transcript.extend(soap(login_envelope(&format!("{p1}{t1}"), &format!("{p1}{t1}"))).await);
    transcript.extend(
        soap(session_envelope(
            &sid,
            &format!("<changeOwnPassword xmlns=\"urn:partner.soap.sforce.com\"><oldPassword>{p1}</oldPassword><newPassword>{p2}</newPassword></changeOwnPassword>"),
        ))
        .await,
    );
    let t2 = next_token(&mail_dir, "ada@acme.test", Some(&t1));
    transcript.extend(
        soap(session_envelope(
            &sid,
            "<logout xmlns=\"urn:partner.soap.sforce.com\"/>",
        ))
        .await,
    );
    // OAuth: password grant with the token appended and in its own field, a wrong secret,
    // refresh, introspect, revoke.
    let grant = |pw: String, extra: Option<(&'static str, String)>, secret: String| {
        let mut p = vec![
            ("grant_type", "password".to_string()),
            ("client_id", client_id.clone()),
            ("client_secret", secret),
            ("username", "ada@acme.test".to_string()),
            ("password", pw),
        ];
        p.extend(extra);
        p
    };
    let g = form(
        "/services/oauth2/token",
        grant(format!("{p2}{t2}"), None, client_secret.clone()),
    )
    .await;
    let gj: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&g).split('\n').nth(1).unwrap()).unwrap();
    transcript.extend(g);
    transcript.extend(
        form(
            "/services/oauth2/token",
            grant(
                p2.to_string(),
                Some(("security_token", t2.clone())),
                client_secret.clone(),
            ),
        )
        .await,
    );
    transcript.extend(
        form(
            "/services/oauth2/token",
            grant(format!("{p2}{t2}"), None, "wrong".into()),
        )
        .await,
    );
    transcript.extend(
        form(
            "/services/oauth2/token",
            grant(p2.to_string(), None, client_secret.clone()),
        )
        .await,
    );
    let rt = gj["refresh_token"].as_str().unwrap().to_string();
    let access = gj["access_token"].as_str().unwrap().to_string();
    transcript.extend(
        form(
            "/services/oauth2/token",
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt.clone()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
        )
        .await,
    );
    transcript.extend(
        form(
            "/services/oauth2/introspect",
            vec![
                ("token", access.clone()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
        )
        .await,
    );
    transcript.extend(form("/services/oauth2/revoke", vec![("token", rt)]).await);
    // An admin token reset while the server runs: the server's worker mails it.
    st.cli(&["token", "reset", "ada@acme.test"], None);
    let t3 = next_token(&mail_dir, "ada@acme.test", Some(&t2));
    transcript.extend(soap(login_envelope("ada@acme.test", &format!("{p2}{t3}"))).await);
    assert!(String::from_utf8_lossy(&transcript).contains("loginResponse"));

    // The web UI: a wrong password (the password+token string typed into the browser), the
    // login with identity verification (127.0.0.1 is outside the trusted ranges), a token
    // reset, a password change refused for a wrong current password, then one that succeeds.
    let p3 = "Third-Secret-Passw0rd";
    let mut web = WebClient::new(&base);
    web.get("/", &mut transcript).await;
    let r = web
        .post(
            "/login",
            &[
                ("username", "ada@acme.test"),
                ("password", &format!("{p2}{t3}")),
            ],
            &mut transcript,
        )
        .await;
    assert!(r.contains("Please check your username and password"), "{r}");
    web.post(
        "/login",
        &[("username", "ada@acme.test"), ("password", p2)],
        &mut transcript,
    )
    .await;
    let code = next_code(&mail_dir, "ada@acme.test");
    web.post("/verify", &[("code", &code)], &mut transcript)
        .await;
    assert!(web.cookies.contains_key("kw_sid"), "the verified login");
    web.form_csrf("/settings", &mut transcript).await;
    web.post("/settings/token", &[], &mut transcript).await;
    let t4 = next_token(&mail_dir, "ada@acme.test", Some(&t3));
    web.form_csrf("/settings/password", &mut transcript).await;
    let refused = web
        .post(
            "/settings/password",
            &[("current", &format!("{p3}x")), ("new", p3), ("confirm", p3)],
            &mut transcript,
        )
        .await;
    assert!(!refused.contains("Your password was changed"), "{refused}");
    web.post(
        "/settings/password",
        &[("current", p2), ("new", p3), ("confirm", p3)],
        &mut transcript,
    )
    .await;
    let t5 = next_token(&mail_dir, "ada@acme.test", Some(&t4));
    transcript.extend(soap(login_envelope("ada@acme.test", &format!("{p3}{t5}"))).await);
    assert!(
        String::from_utf8_lossy(&transcript)
            .matches("<sessionId>")
            .count()
            >= 3,
        "the web UI's new password and token log in over SOAP"
    );

    let history = st.cli(
        &["login-history", "--org", "Acme", "--format", "json"],
        None,
    );
    let audit = st.cli(&["audit-trail", "Acme", "--format", "json"], None);
    let all_history = st.cli(&["login-history", "--format", "csv"], None);
    assert!(history.contains("Failed: API security token required"));
    assert_eq!(server.stop(), 0);
    let log = std::fs::read(st.db.dir.path().join("serve.err")).unwrap();
    // Every statement sqlx runs is logged at this level: the bound values are not.
    assert!(
        count(&log, "DEBUG sqlx::query") > 20,
        "the log is at the most verbose level"
    );
    assert!(count(&log, "login attempt") >= 8);
    let dump = st.db.dump();
    for secret in [
        p1,
        p2,
        p3,
        t1.as_str(),
        t2.as_str(),
        t3.as_str(),
        t4.as_str(),
        t5.as_str(),
    ] {
        for (what, hay) in [
            ("an HTTP response", transcript.as_slice()),
            ("the server log", log.as_slice()),
            ("login history", history.as_bytes()),
            ("login history (all orgs)", all_history.as_bytes()),
            ("the audit trail", audit.as_bytes()),
            ("the database", dump.as_slice()),
        ] {
            assert_eq!(count(hay, secret), 0, "{what} contains a password or token");
        }
    }
    assert_eq!(
        count(&log, &client_secret),
        0,
        "the log contains the client secret"
    );
    assert_eq!(
        count(&dump, &client_secret),
        0,
        "the database contains the client secret"
    );
    st.db.drop_db().await;
}
