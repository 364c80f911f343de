//! What every page sends: strict headers (CSP, no-store) and safe cookies, and forms without
//! the CSRF token change nothing.

use super::support::{PW, cli, soap_session};
use crate::common;
use crate::common::browser::{Browser, browser, set_cookie};
use crate::common::server::{TestServer, answer};
use crate::common::{Backend, org};
use crate::on_both;

on_both!(
    pages_send_strict_headers_and_safe_cookies,
    forms_without_the_csrf_token_change_nothing,
);

fn token_mails(mails: &[common::Mail], to: &str) -> usize {
    mails
        .iter()
        .filter(|m| m.to == to && m.token().is_some())
        .count()
}

async fn pages_send_strict_headers_and_safe_cookies(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let page = answer(
        browser()
            .get(format!("{}/", srv.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let csp = page.header("content-security-policy");
    for part in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !page.text.contains("<script"),
        "the login page has a script"
    );
    assert!(
        !page.text.contains("style="),
        "the login page has inline style"
    );
    assert_eq!(page.header("cache-control"), "no-store");
    let csrf = set_cookie(&page, "kw_csrf").unwrap();
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"),
        "{csrf}"
    );
    assert!(!csrf.contains("Secure"), "Secure on plain http: {csrf}");
    // The logged-in pages: not cached, same policy.
    let web = Browser::login(&srv, &acme.user).await;
    let settings = web.get("/settings").await;
    assert_eq!(settings.status, 200);
    assert_eq!(settings.header("cache-control"), "no-store");
    assert_eq!(settings.header("content-security-policy"), csp);
    assert!(settings.text.contains(&acme.user));
    // The stylesheet and the icon browsers ask for on every page view may be cached; they are
    // the only assets.
    let css = srv.get("/static/keyward.css", None).await;
    assert_eq!(css.status, 200);
    assert!(css.header("cache-control").starts_with("public"));
    let icon = srv.get("/favicon.ico", None).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), "image/x-icon");
    assert!(icon.header("cache-control").starts_with("public"));
    // Logged out: every personal page sends the browser to the login page.
    let anon = answer(
        browser()
            .get(format!("{}/settings/token", srv.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((anon.status, anon.header("location")), (303, "/"));
    // A session id from an API login is not a web session (its cookie is ignored).
    let api_sid = soap_session(&srv, &acme.user).await;
    let forged = answer(
        browser()
            .get(format!("{}/settings", srv.base))
            .header("Cookie", format!("kw_sid={api_sid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status, 303);
    srv.finish().await;
}

async fn forms_without_the_csrf_token_change_nothing(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let before = token_mails(&srv.mails().await, &acme.user);
    for pairs in [vec![], vec![("csrf", "0123456789abcdef0123456789abcdef")]] {
        let r = web.post("/settings/token", &pairs).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("Nothing was changed"));
    }
    assert_eq!(token_mails(&srv.mails().await, &acme.user), before);
    // A login form posted without its cookie is refused too, and is not a login attempt.
    let history = srv
        .services()
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some(&acme.user), 100),
        )
        .await
        .unwrap()
        .len();
    let r = srv
        .form(
            "/login",
            &[("csrf", "x"), ("username", &acme.user), ("password", PW)],
        )
        .await;
    assert_eq!(r.status, 403);
    let after = srv
        .services()
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some(&acme.user), 100),
        )
        .await
        .unwrap()
        .len();
    assert_eq!(after, history);
    // With the token: R-T5, a new token is mailed and the page says so.
    let csrf = web.csrf().await;
    let r = web.post("/settings/token", &[("csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings/token?done=sent")
    );
    assert!(
        web.get("/settings/token?done=sent")
            .await
            .text
            .contains("Check your email")
    );
    assert_eq!(token_mails(&srv.mails().await, &acme.user), before + 1);
    srv.finish().await;
}
