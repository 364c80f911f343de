//! A browser's side of the web UI for HTTP tests: a client that shows redirects, cookies, the
//! CSRF token in forms, and a logged-in session.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::server::{Answer, TestServer, answer, form_body};

/// The password the tests give their users.
pub const PW: &str = "Passw0rd!one";

/// A client that shows redirects instead of following them, so cookies can be read.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// `name=value` of the `Set-Cookie` header that sets `name`, with its attributes.
pub fn set_cookie<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

pub fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// The CSRF token in a page's forms.
pub fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("no CSRF field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// A browser session: the login form's CSRF cookie, then the login.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: String,
}

impl Browser {
    pub async fn login(srv: &TestServer, username: &str) -> Browser {
        let http = browser();
        let page = answer(http.get(format!("{}/", srv.base)).send().await.unwrap()).await;
        let csrf_cookie = cookie_value(set_cookie(&page, "kw_csrf").unwrap());
        let csrf = csrf_in(&page.text);
        assert_eq!(csrf, csrf_cookie);
        let r = answer(
            http.post(format!("{}/login", srv.base))
                .header("Cookie", format!("kw_csrf={csrf_cookie}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(&[
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", PW),
                ]))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.header("location"), "/settings");
        let sid = cookie_value(set_cookie(&r, "kw_sid").expect("no session cookie"));
        Browser {
            http,
            base: srv.base.clone(),
            cookies: format!("kw_sid={sid}"),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.http
                .get(format!("{}{path}", self.base))
                .header("Cookie", &self.cookies)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Cookie", &self.cookies)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(pairs))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The CSRF token of this session, read from a page.
    pub async fn csrf(&self) -> String {
        csrf_in(&self.get("/settings").await.text)
    }
}
