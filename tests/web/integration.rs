//! Integration tokens in the web UI: My Settings creates, rotates and revokes them (the value is
//! mailed, never shown) and shows where each was used; Setup lists a user's and revokes them;
//! Password Policies holds their org settings; the login page refuses them.

use super::support::{PW, cli};
use crate::common::browser::{Browser, browser, cookie_value, csrf_in, set_cookie};
use crate::common::server::{
    Answer, TestServer, answer, form_body, login_envelope, password_grant,
};
use crate::common::{Backend, latest_token, oauth_client, org};
use crate::on_both;
use keyward::service::integration::IntegrationTokenInfo;

on_both!(
    my_settings_creates_rotates_and_revokes_integration_tokens,
    the_usage_pages_list_the_clients_that_logged_in,
    integration_token_forms_need_csrf_and_the_users_own_token,
    setup_lists_a_users_integration_tokens_and_revokes_them,
    setup_password_policies_saves_the_integration_settings,
    the_login_page_refuses_an_integration_token,
);

/// The integration tokens mailed to `to` under `name`, oldest first (the mail file has the
/// value; the stored copy is redacted).
async fn mailed_tokens(srv: &TestServer, to: &str, name: &str) -> Vec<String> {
    let subject = format!("Your new integration token: {name}");
    srv.mails()
        .await
        .iter()
        .filter(|m| m.to == to && m.subject == subject)
        .filter_map(crate::common::Mail::integration_token)
        .collect()
}

async fn tokens_of(srv: &TestServer, user: &str) -> Vec<IntegrationTokenInfo> {
    srv.services()
        .list_integration_tokens(&cli(), user)
        .await
        .unwrap()
}

/// A SOAP login whose `Sforce-Call-Options` names the client, as Data Loader's does.
async fn soap_login(srv: &TestServer, user: &str, password: &str, client: &str) -> Answer {
    answer(
        srv.http
            .post(format!("{}/services/Soap/u/59.0", srv.base))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .header("Sforce-Call-Options", format!("client={client}"))
            .body(login_envelope(user, password))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The rows of the first table on a page, as the text of their cells.
fn rows(html: &str) -> Vec<Vec<String>> {
    let body = html.split("<tbody>").nth(1).unwrap_or("");
    let body = body.split("</tbody>").next().unwrap();
    body.split("<tr")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let inner = td[td.find('>').unwrap() + 1..].split("</td>").next();
                    text_of(inner.unwrap()).trim().to_string()
                })
                .collect()
        })
        .collect()
}

/// HTML without its tags.
fn text_of(html: &str) -> String {
    let mut inside = false;
    html.chars()
        .filter(|c| match c {
            '<' => {
                inside = true;
                false
            }
            '>' => {
                inside = false;
                false
            }
            _ => !inside,
        })
        .collect()
}

/// The `<input>` element of a form field, up to its closing `>`.
fn input<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("<input id=\"{id}\""))
        .unwrap_or_else(|| panic!("no field {id}"));
    &html[at..at + html[at..].find('>').unwrap()]
}

async fn my_settings_creates_rotates_and_revokes_integration_tokens(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let page = web.get("/settings/integration-tokens").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("No integration tokens yet."));
    assert!(page.text.contains("never shown on screen"));
    assert!(
        web.get("/settings")
            .await
            .text
            .contains("href=\"/settings/integration-tokens\"")
    );
    let csrf = csrf_in(&page.text);

    // Create: the token is mailed; the page lists it without its value.
    let r = web
        .post(
            "/settings/integration-tokens",
            &[
                ("csrf", &csrf),
                ("name", "Nightly export"),
                ("expires_days", "30"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings/integration-tokens?done=created"),
        "{}",
        r.text
    );
    let mailed = mailed_tokens(&srv, &acme.user, "Nightly export").await;
    assert_eq!(mailed.len(), 1);
    let first = mailed[0].clone();
    assert!(first.starts_with("kwi_") && first.len() == 40, "{first}");
    let page = web.get("/settings/integration-tokens?done=created").await;
    assert!(page.text.contains("on its way to your email"));
    assert!(!page.text.contains(&first) && !page.text.contains("kwi_"));
    let listed = rows(&page.text);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        &listed[0][..6],
        [
            "Nightly export",
            "active",
            "2026-11-24 09:00:00 UTC",
            "2026-12-24 09:00:00 UTC",
            "never",
            ""
        ]
    );
    let old = tokens_of(&srv, &acme.user).await[0].id.clone();

    // Rotate, a minute on: a successor with the same name is mailed; the old one is in grace
    // and both log in.
    srv.env.clock.advance(time::Duration::minutes(1));
    let r = web
        .post(
            &format!("/settings/integration-tokens/{old}/rotate"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings/integration-tokens?done=rotated"),
        "{}",
        r.text
    );
    let mailed = mailed_tokens(&srv, &acme.user, "Nightly export").await;
    assert_eq!(mailed.len(), 2);
    let second = mailed[1].clone();
    assert_ne!(first, second);
    let page = web.get("/settings/integration-tokens?done=rotated").await;
    assert!(
        page.text.contains("keeps working for 24 hours"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("kwi_"));
    let status: Vec<(String, String)> = rows(&page.text)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(
        status,
        [
            ("Nightly export".to_string(), "active".to_string()),
            ("Nightly export".to_string(), "in grace".to_string())
        ]
    );
    for token in [&first, &second] {
        let a = soap_login(&srv, &acme.user, token, "Loader").await;
        assert!(a.xml("sessionId").is_some(), "{}", a.text);
    }
    // A rotated token cannot be rotated again: the error is on the page, nothing changes.
    let r = web
        .post(
            &format!("/settings/integration-tokens/{old}/rotate"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("was rotated already"), "{}", r.text);
    assert_eq!(tokens_of(&srv, &acme.user).await.len(), 2);

    // Revoke the old one: it stops at once, its successor goes on.
    let r = web
        .post(
            &format!("/settings/integration-tokens/{old}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings/integration-tokens?done=revoked"),
        "{}",
        r.text
    );
    let page = web.get("/settings/integration-tokens").await;
    let status: Vec<String> = rows(&page.text).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(status, ["active", "revoked"]);
    let a = soap_login(&srv, &acme.user, &first, "Loader").await;
    assert_eq!(a.status, 500, "{}", a.text);
    assert!(a.text.contains("INVALID_LOGIN"), "{}", a.text);
    let a = soap_login(&srv, &acme.user, &second, "Loader").await;
    assert!(a.xml("sessionId").is_some(), "{}", a.text);

    // A bad expiry is shown on the page and creates nothing.
    for days in ["0", "91", "soon"] {
        let r = web
            .post(
                "/settings/integration-tokens",
                &[("csrf", &csrf), ("name", "Other"), ("expires_days", days)],
            )
            .await;
        assert_eq!(r.status, 200, "{days}: {}", r.text);
        assert!(r.text.contains("class=\"error\""), "{days}: {}", r.text);
        assert!(r.text.contains("value=\"Other\""), "the name was kept");
    }
    assert_eq!(tokens_of(&srv, &acme.user).await.len(), 2);
    srv.finish().await;
}

async fn the_usage_pages_list_the_clients_that_logged_in(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    s.create_integration_token(&cli(), &acme.user, "ETL", None)
        .await
        .unwrap();
    let token = mailed_tokens(&srv, &acme.user, "ETL").await.remove(0);
    let id = tokens_of(&srv, &acme.user).await[0].id.clone();

    // One SOAP login and two OAuth password grants with the token as the password.
    let a = soap_login(&srv, &acme.user, &token, "NightlyExport").await;
    assert!(a.xml("sessionId").is_some(), "{}", a.text);
    let (key, secret) = oauth_client(s, "Acme", false, None).await;
    for _ in 0..2 {
        let a = password_grant(&srv, &key, &secret, &acme.user, &token).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // And one with the password and the security token, for the security token's inventory.
    let security = latest_token(&srv.mails().await, &acme.user);
    let a = soap_login(&srv, &acme.user, &format!("{PW}{security}"), "Workbench").await;
    assert!(a.xml("sessionId").is_some(), "{}", a.text);

    let web = Browser::login(&srv, &acme.user).await;
    let list = rows(&web.get("/settings/integration-tokens").await.text);
    assert_eq!(list[0][4], "2026-11-24 09:00:00 UTC");
    assert_eq!(list[0][5], "127.0.0.1");
    let page = web.get(&format!("/settings/integration-tokens/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("<h1>ETL</h1>"));
    assert!(!page.text.contains("kwi_"));
    let mut usage = rows(&page.text);
    usage.sort();
    let expect = |client: &str, uses: &str| {
        vec![
            client.to_string(),
            "127.0.0.1".to_string(),
            "2026-11-24 09:00:00 UTC".to_string(),
            "2026-11-24 09:00:00 UTC".to_string(),
            uses.to_string(),
        ]
    };
    let mut want = vec![expect("NightlyExport", "1"), expect(&key, "2")];
    want.sort();
    assert_eq!(usage, want);
    // The 15-character id names the same token, and so does the 18-character one in any case.
    for other in [id[..15].to_string(), id.to_lowercase()] {
        let r = web
            .get(&format!("/settings/integration-tokens/{other}"))
            .await;
        assert_eq!(r.status, 200, "{other}");
    }

    // The security token's inventory is on Reset My Security Token, the integration token's
    // logins not among them.
    let page = web.get("/settings/token").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Where your security token was used"));
    let usage = rows(&page.text);
    assert_eq!(usage, [expect("Workbench", "1")]);

    // Login history names the credential of each login, for the user and in Setup.
    let mine = web.get("/settings/history").await.text;
    assert_eq!(mine.matches("<td>Integration token: ETL</td>").count(), 3);
    assert!(mine.contains("<td>Password + security token</td>"));
    let admin = Browser::login(&srv, &acme.admin).await;
    let setup = admin
        .get(&format!("/setup/login-history?user={}", acme.user))
        .await
        .text;
    assert!(setup.contains("<th scope=\"col\">Credential</th>"));
    assert_eq!(setup.matches("<td>Integration token: ETL</td>").count(), 3);
    srv.finish().await;
}

async fn integration_token_forms_need_csrf_and_the_users_own_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let globex = org(s, "Globex").await;
    for (user, name) in [
        (&acme.user, "Mine"),
        (&acme.admin, "Admin token"),
        (&globex.user, "Theirs"),
    ] {
        s.create_integration_token(&cli(), user, name, None)
            .await
            .unwrap();
    }
    let mine = tokens_of(&srv, &acme.user).await[0].id.clone();
    let admins = tokens_of(&srv, &acme.admin).await[0].id.clone();
    let theirs = tokens_of(&srv, &globex.user).await[0].id.clone();
    let web = Browser::login(&srv, &acme.user).await;
    let csrf = web.csrf().await;

    // No CSRF token, or another session's: refused, nothing changed.
    for bad in ["", "x"] {
        let r = web
            .post(
                "/settings/integration-tokens",
                &[("csrf", bad), ("name", "Forged")],
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
        for action in ["rotate", "revoke"] {
            let r = web
                .post(
                    &format!("/settings/integration-tokens/{mine}/{action}"),
                    &[("csrf", bad)],
                )
                .await;
            assert_eq!(r.status, 403, "{action}: {}", r.text);
        }
    }
    let r = web
        .post(
            &format!("/settings/integration-tokens/{mine}/revoke"),
            &[("name", "x")],
        )
        .await;
    assert_eq!(r.status, 403);

    // Another user's token — of this org or another — is not found, and stays as it was.
    for other in [&admins, &theirs] {
        for action in ["rotate", "revoke"] {
            let r = web
                .post(
                    &format!("/settings/integration-tokens/{other}/{action}"),
                    &[("csrf", &csrf)],
                )
                .await;
            assert_eq!(r.status, 404, "{action} {other}: {}", r.text);
        }
        let r = web
            .get(&format!("/settings/integration-tokens/{other}"))
            .await;
        assert_eq!(r.status, 404);
    }
    let r = web
        .post(
            &format!("/settings/integration-tokens/{mine}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);

    // An administrator's My Settings is about their own tokens too: a user's is Setup's.
    let admin = Browser::login(&srv, &acme.admin).await;
    let admin_csrf = admin.csrf().await;
    let r = admin
        .post(
            &format!("/settings/integration-tokens/{mine}/revoke"),
            &[("csrf", &admin_csrf)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(
        !admin
            .get("/settings/integration-tokens")
            .await
            .text
            .contains("Mine")
    );

    for (user, count) in [(&acme.user, 1), (&acme.admin, 1), (&globex.user, 1)] {
        let tokens = tokens_of(&srv, user).await;
        assert_eq!(tokens.len(), count);
        assert_eq!(tokens[0].status, "active", "{user}");
    }
    srv.finish().await;
}

async fn setup_lists_a_users_integration_tokens_and_revokes_them(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let globex = org(s, "Globex").await;
    for (user, name) in [
        (&acme.user, "Loader"),
        (&acme.admin, "Admin token"),
        (&globex.user, "Theirs"),
    ] {
        s.create_integration_token(&cli(), user, name, None)
            .await
            .unwrap();
    }
    let token = mailed_tokens(&srv, &acme.user, "Loader").await.remove(0);
    let loader = tokens_of(&srv, &acme.user).await[0].id.clone();
    let admins = tokens_of(&srv, &acme.admin).await[0].id.clone();
    let theirs = tokens_of(&srv, &globex.user).await[0].id.clone();
    let user18 = keyward::service::id18(&acme.user_id);
    let globex18 = keyward::service::id18(&globex.user_id);
    let web = Browser::login(&srv, &acme.admin).await;
    let csrf = web.csrf().await;

    let page = web.get(&format!("/setup/users/{user18}")).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<h2>Integration tokens</h2>"));
    assert!(page.text.contains(">Loader</td>") && !page.text.contains("Admin token"));
    assert!(!page.text.contains(&token) && !page.text.contains("kwi_"));

    // Another user's token through this user's page, another org's user or token: not found.
    let revoke = |user: &str| format!("/setup/users/{user}/revoke-integration-token");
    for (path, token) in [
        (revoke(&user18), &admins),
        (revoke(&user18), &theirs),
        (revoke(&globex18), &theirs),
        (revoke(&globex18), &loader),
    ] {
        let r = web
            .post(&path, &[("csrf", &csrf), ("integration_token", token)])
            .await;
        assert_eq!(r.status, 404, "{path} {token}: {}", r.text);
    }
    let r = web
        .post(&revoke(&user18), &[("integration_token", &loader)])
        .await;
    assert_eq!(r.status, 403);
    for user in [&acme.user, &acme.admin, &globex.user] {
        assert_eq!(tokens_of(&srv, user).await[0].status, "active", "{user}");
    }
    assert_eq!(
        web.get(&format!("/setup/users/{globex18}")).await.status,
        404
    );

    // Revoked: the page says so, and the token no longer logs in.
    let r = web
        .post(
            &revoke(&user18),
            &[("csrf", &csrf), ("integration_token", &loader)],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (
            303,
            format!("/setup/users/{user18}?done=revoke-integration-token").as_str()
        ),
        "{}",
        r.text
    );
    let page = web
        .get(&format!(
            "/setup/users/{user18}?done=revoke-integration-token"
        ))
        .await;
    assert!(page.text.contains("The integration token was revoked"));
    assert!(page.text.contains("badge bad\">revoked"), "{}", page.text);
    assert_eq!(tokens_of(&srv, &acme.user).await[0].status, "revoked");
    let a = soap_login(&srv, &acme.user, &token, "Loader").await;
    assert!(a.text.contains("INVALID_LOGIN"), "{}", a.text);
    // Revoking it again is refused on the page.
    let r = web
        .post(
            &revoke(&user18),
            &[("csrf", &csrf), ("integration_token", &loader)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("is revoked already"), "{}", r.text);
    srv.finish().await;
}

async fn setup_password_policies_saves_the_integration_settings(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    let web = Browser::login(&srv, &acme.admin).await;
    let page = web.get("/setup/password-policies").await;
    for (field, kind, value) in [
        ("integration_max_days", "number", "90"),
        ("integration_grace_hours", "number", "24"),
        ("integration_reminder_days", "text", "14,3,1"),
        ("token_grace_hours", "number", "0"),
    ] {
        let el = input(&page.text, field);
        assert!(
            el.contains(&format!("type=\"{kind}\"")) && el.contains(&format!("value=\"{value}\"")),
            "{el}"
        );
        assert!(
            page.text.contains(&format!("<label for=\"{field}\">")),
            "{field}"
        );
    }
    let csrf = csrf_in(&page.text);
    let policy = || async move { s.get_org(&cli(), "Acme").await.unwrap().policy };
    let before = policy().await;
    let form = |max: &'static str, grace: &'static str, days: &'static str, token: &'static str| {
        vec![
            ("integration_max_days", max),
            ("integration_grace_hours", grace),
            ("integration_reminder_days", days),
            ("token_grace_hours", token),
        ]
    };

    // Bad values: the error on the page, nothing changed.
    for (bad, says) in [
        (form("0", "24", "14,3,1", "0"), "between 1 and 3650"),
        (form("90", "721", "14,3,1", "0"), "between 0 and 720"),
        (form("90", "24", "14,3,1", "-1"), "must be a whole number"),
        (form("soon", "24", "14,3,1", "0"), "must be a whole number"),
        (form("90", "24", "14;3", "0"), "whole numbers of days"),
        (form("90", "24", "0", "0"), "between 1 and 365"),
        (form("90", "24", "30,20,10,5,2,1", "0"), "at most five"),
    ] {
        let mut pairs = bad.clone();
        pairs.push(("csrf", &csrf));
        let r = web.post("/setup/password-policies", &pairs).await;
        assert_eq!(r.status, 200, "{bad:?}: {}", r.text);
        assert!(r.text.contains("class=\"error\""), "{bad:?}: {}", r.text);
        assert!(
            r.text.contains(says),
            "{bad:?} should say {says}: {}",
            r.text
        );
        assert_eq!(policy().await, before, "{bad:?}");
    }
    // Without the CSRF token: refused.
    let r = web
        .post("/setup/password-policies", &form("30", "2", "7,1", "12"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(policy().await, before);

    // Saved, shown, and the longest lifetime binds new tokens.
    let mut pairs = form("30", "2", "1, 7", "12");
    pairs.push(("csrf", &csrf));
    let r = web.post("/setup/password-policies", &pairs).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/setup/password-policies?done=saved"),
        "{}",
        r.text
    );
    let p = policy().await;
    assert_eq!(
        (
            p.integration_max_days,
            p.integration_grace_hours,
            p.integration_reminder_days.to_string(),
            p.token_grace_hours
        ),
        (30, 2, "7,1".to_string(), 12)
    );
    assert_eq!(p.min_password_length, before.min_password_length);
    let page = web.get("/setup/password-policies?done=saved").await.text;
    assert!(page.contains("Saved."));
    assert!(input(&page, "integration_reminder_days").contains("value=\"7,1\""));
    assert!(input(&page, "integration_max_days").contains("value=\"30\""));
    assert!(input(&page, "token_grace_hours").contains("value=\"12\""));
    // Reset My Security Token tells what the grace period means.
    let token = web.get("/settings/token").await.text;
    assert!(token.contains("12 hours after the reset"), "{token}");
    // ... and so do the page and the mail after a reset.
    let r = web.post("/settings/token", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let sent = web.get("/settings/token?done=sent").await.text;
    assert!(sent.contains("keeps working\n  for 12 hours"), "{sent}");
    let mails = srv.mails().await;
    let mail = mails
        .iter()
        .rfind(|m| m.to == acme.admin && m.subject == "Your new security token")
        .unwrap();
    assert!(
        mail.text
            .contains("Your previous security token keeps working for 12 hours")
            && !mail.text.contains("stopped working"),
        "{}",
        mail.text
    );
    // An emptied reminder field means no reminders.
    let mut pairs = form("30", "2", "", "12");
    pairs.push(("csrf", &csrf));
    assert_eq!(
        web.post("/setup/password-policies", &pairs).await.status,
        303
    );
    assert!(policy().await.integration_reminder_days.days().is_empty());
    let mine = web.get("/settings/integration-tokens").await.text;
    assert!(mine.contains("max=\"30\""));
    let r = web
        .post(
            "/settings/integration-tokens",
            &[
                ("csrf", &csrf),
                ("name", "Too long"),
                ("expires_days", "31"),
            ],
        )
        .await;
    assert!(r.text.contains("1 to 30 days"), "{}", r.text);
    assert!(tokens_of(&srv, &acme.admin).await.is_empty());
    srv.finish().await;
}

async fn the_login_page_refuses_an_integration_token(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let acme = org(s, "Acme").await;
    s.create_integration_token(&cli(), &acme.user, "Loader", None)
        .await
        .unwrap();
    let token = mailed_tokens(&srv, &acme.user, "Loader").await.remove(0);
    let http = browser();
    let page = answer(http.get(format!("{}/", srv.base)).send().await.unwrap()).await;
    let csrf = cookie_value(set_cookie(&page, "kw_csrf").unwrap());
    let r = answer(
        http.post(format!("{}/login", srv.base))
            .header("Cookie", format!("kw_csrf={csrf}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("csrf", &csrf),
                ("username", &acme.user),
                ("password", &token),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // The usual answer to wrong credentials: the login page, the generic error, no session.
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("Please check your username and password."),
        "{}",
        r.text
    );
    assert!(!r.text.contains("integration") && !r.text.contains(&token));
    assert!(set_cookie(&r, "kw_sid").is_none());
    let last = s
        .login_history(
            &cli(),
            None,
            &crate::common::history_query(Some(&acme.user), 1),
        )
        .await
        .unwrap();
    assert_eq!(last[0].status, "Failed: integration token in the web UI");
    assert_eq!(last[0].login_type, "Application");
    // The token itself is untouched and still works where it belongs.
    let a = soap_login(&srv, &acme.user, &token, "Loader").await;
    assert!(a.xml("sessionId").is_some(), "{}", a.text);
    srv.finish().await;
}
