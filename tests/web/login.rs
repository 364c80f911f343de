//! Logging in with a browser: verification codes (R-U1), an expired password (R-L6), API-only
//! users and lockouts (R-L8, R-L5), and the per-address limit.

use super::support::{PW, cli};
use crate::common;
use crate::common::browser::{browser, csrf_in, set_cookie};
use crate::common::server::{Answer, TestServer, answer, form_body};
use crate::common::{Backend, org};
use crate::on_both;
use keyward::service::Services;

on_both!(
    r_u1_codes_are_limited_expire_and_stay_with_their_address,
    r_l6_an_expired_password_opens_only_the_change_password_page,
    r_l8_r_l5_api_only_users_and_lockouts_in_the_browser,
    address_limit_in_the_browser_counts_wrong_codes_and_says_when_to_return,
);

/// A browser that can say where it is: the server trusts 127.0.0.1 as a proxy (R-L11), so
/// `X-Forwarded-For` sets the client address.
struct Visitor {
    http: reqwest::Client,
    base: String,
    ip: String,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Visitor {
    fn new(srv: &TestServer, ip: &str) -> Visitor {
        Visitor {
            http: browser(),
            base: srv.base.clone(),
            ip: ip.into(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, a: &Answer) {
        for v in a.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let a = answer(
            self.http
                .get(format!("{}{path}", self.base))
                .header("Cookie", self.cookie_header())
                .header("X-Forwarded-For", &self.ip)
                .send()
                .await
                .unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let csrf = match self.cookies.get("kw_csrf") {
            Some(c) => c.clone(),
            None => {
                self.get("/").await;
                self.cookies["kw_csrf"].clone()
            }
        };
        let mut all = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "csrf") {
            all.insert(0, ("csrf", csrf.as_str()));
        }
        let a = answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Cookie", self.cookie_header())
                .header("X-Forwarded-For", &self.ip)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(&all))
                .send()
                .await
                .unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    async fn login(&mut self, username: &str, password: &str) -> Answer {
        self.post("/login", &[("username", username), ("password", password)])
            .await
    }
}

/// The newest verification code mailed to `to`, and how many such mails there are.
async fn code_for(srv: &TestServer, to: &str) -> (String, usize) {
    let codes: Vec<String> = srv
        .mails()
        .await
        .iter()
        .filter(|m| m.to == to && m.subject == "Verify your identity")
        .filter_map(|m| {
            m.text
                .lines()
                .find_map(|l| l.strip_prefix("Verification code: "))
                .map(|c| c.trim().to_string())
        })
        .collect();
    (codes.last().cloned().unwrap_or_default(), codes.len())
}

async fn statuses(s: &Services, user: &str) -> Vec<String> {
    let mut rows: Vec<String> = s
        .login_history(&cli(), None, &crate::common::history_query(Some(user), 100))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    rows.reverse();
    rows
}

async fn proxied(b: Backend) -> TestServer {
    TestServer::start_with(b, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await
}

async fn r_u1_codes_are_limited_expire_and_stay_with_their_address(b: Backend) {
    let srv = proxied(b).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let ada = "ada@acme.test";
    common::create_user(s, "Acme", ada, Some(PW), None).await;

    // A challenge, then its code sent from another address: refused, and the challenge is gone.
    let mut v = Visitor::new(&srv, "203.0.113.5");
    let r = v.login(ada, PW).await;
    assert_eq!((r.status, r.header("location")), (303, "/verify"));
    let (code, n) = code_for(&srv, ada).await;
    assert_eq!((code.len(), n), (6, 1));
    let page = v.get("/verify").await;
    assert!(page.text.contains("a***@acme.test"), "{}", page.text);
    assert!(!page.text.contains(&code));
    v.ip = "198.51.100.7".into();
    let r = v.post("/verify", &[("code", &code)]).await;
    assert!(r.text.contains("expired or was used up"), "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    v.ip = "203.0.113.5".into();
    let r = v.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.status, 303, "the challenge survived: {}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));

    // Five tries: four wrong codes say how many are left, the fifth ends the challenge, and
    // then even the right code is refused.
    v.login(ada, PW).await;
    let (code, n) = code_for(&srv, ada).await;
    assert_eq!(n, 2);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let r = v.post("/verify", &[("code", wrong)]).await;
        let plural = if left == 1 { "" } else { "s" };
        assert!(
            r.text
                .contains(&format!("You can try {left} more time{plural}.")),
            "{}",
            r.text
        );
    }
    let r = v.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("expired or was used up"));
    v.get("/").await;
    assert!(!v.cookies.contains_key("kw_challenge"));

    // A code older than 10 minutes is refused.
    v.login(ada, PW).await;
    let (code, _) = code_for(&srv, ada).await;
    srv.env.clock.advance(time::Duration::minutes(11));
    let r = v.post("/verify", &[("code", &code)]).await;
    assert!(r.text.contains("expired or was used up"));

    // A new login replaces the pending challenge: only the newest code works.
    v.login(ada, PW).await;
    let (first, _) = code_for(&srv, ada).await;
    let mut other = Visitor::new(&srv, "203.0.113.5");
    other.login(ada, PW).await;
    let r = v.post("/verify", &[("code", &first)]).await;
    assert!(r.text.contains("expired or was used up"));
    let (second, _) = code_for(&srv, ada).await;
    let r = other.post("/verify", &[("code", &second)]).await;
    assert_eq!((r.status, r.header("location")), (303, "/settings"));
    let browser_cookie = set_cookie(&r, "kw_browser").unwrap();
    assert!(browser_cookie.contains("Max-Age=31536000") && browser_cookie.contains("HttpOnly"));

    // Every step is in login history, type Application (R-L9).
    let want = [
        "Failed: Computer activation required",
        "Failed: Verification code invalid",
        "Failed: Computer activation required",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Verification code invalid",
        "Failed: Computer activation required",
        "Failed: Computer activation required",
        "Failed: Computer activation required",
        "Success",
    ];
    assert_eq!(statuses(s, ada).await, want);
    let rows = s
        .login_history(&cli(), None, &crate::common::history_query(Some(ada), 100))
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.login_type == "Application"));
    assert_eq!(rows[0].source_ip, "203.0.113.5");
    // The verified browser logs in without a code from anywhere; a new one is challenged.
    other.ip = "192.0.2.44".into();
    other.cookies.remove("kw_sid");
    let r = other.login(ada, PW).await;
    assert_eq!(r.header("location"), "/settings");
    let r = Visitor::new(&srv, "192.0.2.44").login(ada, PW).await;
    assert_eq!(r.header("location"), "/verify");

    // Wrong codes count as failed logins (R-L5): a new login gives a new challenge but no new
    // budget of guesses. With a lockout after 3, the third wrong code locks the user, the lock
    // mail goes out, and then even the right code is refused.
    s.set_policy(
        &cli(),
        "Acme",
        &keyward::service::orgs::PolicyChange {
            lockout_attempts: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut w = Visitor::new(&srv, "203.0.113.9");
    w.login(ada, PW).await;
    w.post("/verify", &[("code", "000001")]).await;
    w.post("/verify", &[("code", "000002")]).await;
    w.login(ada, PW).await;
    let (code, _) = code_for(&srv, ada).await;
    let wrong = if code == "000003" { "000004" } else { "000003" };
    let r = w.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("You can try 4 more times."), "{}", r.text);
    assert!(s.show_user(&cli(), ada).await.unwrap().locked);
    assert!(
        srv.mails()
            .await
            .iter()
            .any(|m| m.to == ada && m.subject == "Your account is locked")
    );
    let r = w.post("/verify", &[("code", &code)]).await;
    assert!(
        r.text.contains("Please check your username and password"),
        "{}",
        r.text
    );
    assert!(!w.cookies.contains_key("kw_sid"));
    assert_eq!(statuses(s, ada).await.last().unwrap(), "Password lockout");
    srv.finish().await;
}

async fn r_l6_an_expired_password_opens_only_the_change_password_page(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    srv.env.clock.advance(time::Duration::days(91));
    let mut v = Visitor::new(&srv, "127.0.0.1");
    let r = v.login(&acme.user, PW).await;
    assert_eq!(r.header("location"), "/settings/password?done=expired");
    for path in ["/settings", "/settings/token", "/settings/sessions"] {
        let r = v.get(path).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, "/settings/password"),
            "{path}"
        );
    }
    let page = v.get("/settings/password").await;
    assert!(page.text.contains("Your password has expired"));
    let csrf = csrf_in(&page.text);
    let r = v
        .post(
            "/settings/password",
            &[
                ("csrf", &csrf),
                ("current", PW),
                ("new", "N3w-password-1"),
                ("confirm", "N3w-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(v.get("/settings").await.status, 200);
    srv.finish().await;
}

async fn r_l8_r_l5_api_only_users_and_lockouts_in_the_browser(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    common::create_user(
        s,
        "Acme",
        "bot@acme.test",
        Some(PW),
        Some("API Only Integration"),
    )
    .await;
    let mut v = Visitor::new(&srv, "127.0.0.1");
    let r = v.login("bot@acme.test", PW).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("API-only user"), "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    assert_eq!(
        statuses(s, "bot@acme.test").await,
        ["Failed: API-only user"]
    );
    // Ten wrong passwords lock the user; the page says the same thing every time (R-L4), and
    // the right password no longer works.
    let generic = "Please check your username and password.";
    for _ in 0..10 {
        let r = v.login(&acme.user, "Wr0ng-password").await;
        assert!(r.text.contains(generic));
    }
    let r = v.login(&acme.user, PW).await;
    assert!(r.text.contains(generic) && !v.cookies.contains_key("kw_sid"));
    let r = v.login("nobody@acme.test", PW).await;
    assert!(r.text.contains(generic));
    assert_eq!(
        statuses(s, &acme.user).await.last().unwrap(),
        "Password lockout"
    );
    assert!(s.show_user(&cli(), &acme.user).await.unwrap().locked);
    srv.finish().await;
}

/// Issue 5's per-address limit in the browser: wrong passwords, challenges (the right password
/// without its verification) and wrong verification codes count against the address; once over, the
/// login page answers 429 with when to come back — and says nothing about the account — and a
/// pending challenge cannot be answered from it.
async fn address_limit_in_the_browser_counts_wrong_codes_and_says_when_to_return(b: Backend) {
    let env = common::Env::new_with(b, |s| {
        s.with_address_limit(keyward::domain::throttle::AddressLimit {
            failures: 3,
            window: time::Duration::minutes(10),
            exempt: Vec::new(),
        })
    })
    .await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    let ada = "ada@acme.test";
    common::create_user(s, "Acme", ada, Some(PW), None).await;

    let mut v = Visitor::new(&srv, "203.0.113.5");
    let r = v.login(ada, "wrong-password").await;
    assert!(r.text.contains("Please check your username and password"));
    // The right password from a new browser: a challenge (it counts too, issue 14: the right
    // password without its second factor), then a wrong code.
    let r = v.login(ada, PW).await;
    assert_eq!(r.header("location"), "/verify");
    let (code, _) = code_for(&srv, ada).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let hashes = s.hasher.invocations();
    let r = v.post("/verify", &[("code", wrong)]).await;
    assert!(r.text.contains("You can try 4 more times."), "{}", r.text);
    // The third failure engaged the limit: the right code is refused, and so is a login.
    let r = v.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(!v.cookies.contains_key("kw_sid"));
    let r = v.login(ada, PW).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "600");
    assert!(
        r.text
            .contains("Too many failed logins from your network address. Try again in 10 minutes"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Please check your username"));
    assert_eq!(
        s.hasher.invocations(),
        hashes,
        "no hash for a refused address"
    );
    // Another address logs in (through its own verification).
    let mut other = Visitor::new(&srv, "198.51.100.8");
    assert_eq!(other.login(ada, PW).await.header("location"), "/verify");
    let (code, _) = code_for(&srv, ada).await;
    let r = other.post("/verify", &[("code", &code)]).await;
    assert_eq!(r.header("location"), "/settings");
    // When the window ends, the first address may try again.
    srv.env.clock.advance(time::Duration::minutes(10));
    assert_eq!(v.login(ada, PW).await.header("location"), "/verify");
    srv.finish().await;
}
