//! A keyward HTTP server in the test process: the real router, middleware and accept loop on a
//! port-0 listener, over [`Env`]'s services (cheap hashing, file mail, a clock the test moves).

use super::{Backend, Env, Mail};
use keyward::config::Config;
use keyward::service::Services;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct TestServer {
    pub env: Env,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The text of the first element with this local name (SOAP answers).
    pub fn xml(&self, name: &str) -> Option<String> {
        let doc = roxmltree::Document::parse(&self.text).ok()?;
        doc.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| n.text().unwrap_or("").to_string())
    }
}

impl TestServer {
    pub async fn start(b: Backend) -> TestServer {
        TestServer::start_with(b, |_| {}).await
    }

    pub async fn start_with(b: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let env = Env::new(b).await;
        TestServer::on(env, tweak).await
    }

    /// A server over an existing environment (a second node over the same database, say).
    pub async fn on(env: Env, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        tweak(&mut config);
        let (base, stop, task) = serve(env.services.clone(), config).await;
        TestServer {
            env,
            base,
            http: client(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn services(&self) -> &Services {
        &self.env.services
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// A POST as if from `ip`: its `X-Forwarded-For` (believed when the server trusts
    /// 127.0.0.1 as a proxy, `server.trusted_proxies`).
    pub async fn post_from(
        &self,
        ip: &str,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .header("X-Forwarded-For", ip)
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn soap(&self, path: &str, envelope: &str) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(envelope.to_string())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let body = form_body(pairs);
        self.post(path, "application/x-www-form-urlencoded", body)
            .await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        answer(r.send().await.unwrap()).await
    }

    /// Every delivered mail, once nothing is left queued (the server's own worker may be
    /// delivering at the same time, so this delivers too and waits for the outbox to drain).
    pub async fn mails(&self) -> Vec<Mail> {
        for _ in 0..500 {
            self.env.deliver().await;
            if self.env.services.outbox.backlog().await.unwrap() == 0 {
                return self.env.mails();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("mail still queued after 10 s");
    }

    pub async fn stop(mut self) -> Env {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        self.env
    }

    pub async fn finish(self) {
        self.stop().await.finish().await;
    }
}

/// Runs `keyward`'s server for `services` on 127.0.0.1:0; returns its base URL, the stop
/// switch and the task.
pub async fn serve(
    services: Arc<Services>,
    config: Config,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = if config.tls_enabled() {
        Some(
            keyward::http::server::tls_acceptor(
                config.server.tls_cert.as_ref(),
                config.server.tls_key.as_ref(),
            )
            .unwrap(),
        )
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        keyward::app::run(services, &config, listener, tls, async {
            let _ = stopped.await;
        })
        .await;
    });
    (format!("{scheme}://127.0.0.1:{port}"), stop, task)
}

/// An OAuth password grant with the client's credentials in the form.
pub async fn password_grant(
    srv: &TestServer,
    id: &str,
    secret: &str,
    user: &str,
    pw: &str,
) -> Answer {
    srv.form(
        "/services/oauth2/token",
        &[
            ("grant_type", "password"),
            ("client_id", id),
            ("client_secret", secret),
            ("username", user),
            ("password", pw),
        ],
    )
    .await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}

/// A partner `login()` envelope as jsforce writes it (password escaped as XML).
pub fn login_envelope(username: &str, password: &str) -> String {
    login_envelope_ns(username, password, "urn:partner.soap.sforce.com")
}

pub fn login_envelope_ns(username: &str, password: &str, ns: &str) -> String {
    format!(
        "<se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\"><se:Header/>\
         <se:Body><login xmlns=\"{ns}\"><username>{}</username><password>{}</password></login>\
         </se:Body></se:Envelope>",
        xml_escape(username),
        xml_escape(password)
    )
}

/// A call with a `SessionHeader`: `<logout/>`, `<getUserInfo/>`, or a `setPassword`.
pub fn session_envelope(session: &str, operation: &str) -> String {
    format!(
        "<se:Envelope xmlns:se=\"http://schemas.xmlsoap.org/soap/envelope/\"><se:Header>\
         <SessionHeader xmlns=\"urn:partner.soap.sforce.com\"><sessionId>{}</sessionId>\
         </SessionHeader></se:Header><se:Body>{operation}</se:Body></se:Envelope>",
        xml_escape(session)
    )
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
