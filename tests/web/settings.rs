//! Personal settings: changing the email notifies the old address.

use super::support::{PW, cli};
use crate::common::browser::Browser;
use crate::common::server::TestServer;
use crate::common::{Backend, org};
use crate::on_both;

on_both!(changing_the_email_notifies_the_old_address);

async fn changing_the_email_notifies_the_old_address(b: Backend) {
    let srv = TestServer::start(b).await;
    let acme = org(srv.services(), "Acme").await;
    let web = Browser::login(&srv, &acme.user).await;
    let csrf = web.csrf().await;
    let r = web
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", "ada.king@acme.test"),
            ],
        )
        .await;
    // A session alone cannot move the address the tokens go to: the password is needed.
    assert_eq!(r.status, 200);
    assert!(
        r.text
            .contains("Enter your current password to confirm this change"),
        "{}",
        r.text
    );
    let v = srv.services().show_user(&cli(), &acme.user).await.unwrap();
    assert_eq!(v.user.email, acme.user);
    let r = web
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", "ada.king@acme.test"),
                ("current_password", PW),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/settings?done=saved")
    );
    let mails = srv.mails().await;
    let notice = mails
        .iter()
        .find(|m| m.subject == "Your email address was changed")
        .expect("no notice");
    assert_eq!(notice.to, acme.user);
    assert!(notice.text.contains("New address: ada.king@acme.test"));
    // Bad input: a clear error on the page, nothing changed.
    let r = web
        .post("/settings", &[("csrf", &csrf), ("email", "not-an-email")])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("class=\"error\""), "{}", r.text);
    let v = srv.services().show_user(&cli(), &acme.user).await.unwrap();
    assert_eq!(
        (v.user.email.as_str(), v.user.last_name.as_str()),
        ("ada.king@acme.test", "King")
    );
    // The token reset is refused for a user whose profile has login IP ranges (R-T9), by every
    // interface; the page is hidden from the navigation.
    let s = srv.services();
    s.create_profile(
        &cli(),
        "Acme",
        "Office",
        keyward::domain::profile::Permissions {
            api_enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_login_range(&cli(), "Acme", "Office", "127.0.0.0/8", None, "office")
        .await
        .unwrap();
    s.update_user(
        &cli(),
        &acme.user,
        &keyward::service::account::UserChange {
            profile: Some("Office".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nav = web.get("/settings").await.text;
    assert!(!nav.contains("href=\"/settings/token\""));
    let r = web.post("/settings/token", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("login IP ranges"));
    srv.finish().await;
}
