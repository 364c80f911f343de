//! Passwords over SOAP: an expired one allows only changing it (R-L6), and `changeOwnPassword`
//! ends the other sessions and mails a token (R-L10).

use super::support::{PW, SOAP, USER, add_user, cli, fixture, id18, last_status, login};
use crate::common::server::{password_grant, session_envelope, xml_escape};
use crate::common::{Backend, latest_token, oauth_client};
use crate::on_both;
use time::Duration;

on_both!(
    r_l6_expired_password_allows_only_changing_it,
    r_l10_change_own_password_ends_other_sessions_and_mails_a_token,
);

/// SOAP `changeOwnPassword(oldPassword, newPassword)` in a session.
fn change_own(sid: &str, old: &str, new: &str) -> String {
    session_envelope(
        sid,
        &format!(
            "<changeOwnPassword xmlns=\"urn:partner.soap.sforce.com\"><oldPassword>{}</oldPassword>\
             <newPassword>{}</newPassword></changeOwnPassword>",
            xml_escape(old),
            xml_escape(new)
        ),
    )
}

/// SOAP `setPassword(userId, password)` in a session.
fn set_password(sid: &str, user_id: &str, password: &str) -> String {
    session_envelope(
        sid,
        &format!(
            "<setPassword xmlns=\"urn:partner.soap.sforce.com\"><userId>{user_id}</userId>\
             <password>{}</password></setPassword>",
            xml_escape(password)
        ),
    )
}

async fn r_l6_expired_password_allows_only_changing_it(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    srv.env.clock.advance(Duration::days(91));
    let a = login(srv, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.xml("passwordExpired").unwrap(), "true");
    let sid = a.xml("sessionId").unwrap();
    let info = session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>");
    let a = srv.soap(SOAP, &info).await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.xml("faultstring").unwrap(),
        "INVALID_OPERATION_WITH_EXPIRED_PASSWORD: The users password has expired, you must call \
         changeOwnPassword before attempting any other API operations"
    );
    // OAuth has no password change: no token at all.
    let (client_id, secret) = oauth_client(srv.services(), "Acme", false, None).await;
    // And a resource server is told the expired password's session is not active.
    let a = srv
        .form(
            "/services/oauth2/introspect",
            &[
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("token", &sid),
            ],
        )
        .await;
    assert_eq!(a.json()["active"], false, "{}", a.text);
    let a = password_grant(srv, &client_id, &secret, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(a.json()["error_description"], "password expired");
    assert_eq!(
        last_status(srv.services(), USER).await,
        "Failed: Password expired"
    );
    // setPassword never sets one's own password, expired or not: the session alone proves
    // nothing about the current password.
    let a = srv
        .soap(
            SOAP,
            &set_password(&sid, &id18(&f.user_id), "Brand-New-Passw0rd"),
        )
        .await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "INSUFFICIENT_ACCESS",
        "{}",
        a.text
    );
    assert!(a.text.contains("changeOwnPassword"), "{}", a.text);
    // A wrong current password is refused with the WSDL's fault and counts as a failure.
    let a = srv
        .soap(
            SOAP,
            &change_own(&sid, "not-my-password1", "Brand-New-Passw0rd"),
        )
        .await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "INVALID_OLD_PASSWORD",
        "{}",
        a.text
    );
    assert!(
        a.text.contains("xsi:type=\"sf:InvalidOldPasswordFault\""),
        "{}",
        a.text
    );
    let shown = srv.services().show_user(&cli(), USER).await.unwrap();
    assert_eq!(
        shown.user.failed_logins, 1,
        "a wrong current password counts (R-L5)"
    );
    // A weak password is refused with the policy's reason.
    let a = srv.soap(SOAP, &change_own(&sid, PW, "short")).await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_NEW_PASSWORD");
    assert!(
        a.text.contains("xsi:type=\"sf:InvalidNewPasswordFault\""),
        "{}",
        a.text
    );
    let a = srv
        .soap(SOAP, &change_own(&sid, PW, "Brand-New-Passw0rd"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text
            .contains("<changeOwnPasswordResponse><result/></changeOwnPasswordResponse>")
    );
    // The same session now works, and a new token was mailed (R-T6).
    assert_eq!(srv.soap(SOAP, &info).await.status, 200);
    let new_token = latest_token(&srv.mails().await, USER);
    assert_ne!(new_token, f.token);
    let a = login(srv, USER, &format!("Brand-New-Passw0rd{new_token}")).await;
    assert_eq!(a.xml("passwordExpired").unwrap(), "false");
    f.srv.finish().await;
}

async fn r_l10_change_own_password_ends_other_sessions_and_mails_a_token(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let secret = format!("{PW}{}", f.token);
    let first = login(srv, USER, &secret).await.xml("sessionId").unwrap();
    let second = login(srv, USER, &secret).await.xml("sessionId").unwrap();
    let a = srv
        .soap(SOAP, &change_own(&first, PW, "Changed-Passw0rd"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let info =
        |sid: &str| session_envelope(sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>");
    assert_eq!(
        srv.soap(SOAP, &info(&first)).await.status,
        200,
        "the session that changed it lives"
    );
    assert_eq!(
        srv.soap(SOAP, &info(&second))
            .await
            .xml("exceptionCode")
            .unwrap(),
        "INVALID_SESSION_ID"
    );
    // Old token dead (R-T6), new one from the mail works.
    let a = login(srv, USER, &format!("Changed-Passw0rd{}", f.token)).await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    let t2 = latest_token(&srv.mails().await, USER);
    assert_eq!(
        login(srv, USER, &format!("Changed-Passw0rd{t2}"))
            .await
            .status,
        200
    );
    // A standard user cannot set another user's password; an admin can.
    let bob = add_user(s, "Acme", "bob@acme.test", None).await;
    let other = set_password(&first, &bob, "Hijack-Passw0rd");
    let a = srv.soap(SOAP, &other).await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INSUFFICIENT_ACCESS");
    let bad_id = other.replace(&bob, "not-an-id");
    assert_eq!(
        srv.soap(SOAP, &bad_id).await.xml("exceptionCode").unwrap(),
        "INVALID_ID_FIELD"
    );
    add_user(s, "Acme", "root@acme.test", Some("System Administrator")).await;
    let root_token = latest_token(&srv.mails().await, "root@acme.test");
    let root = login(srv, "root@acme.test", &format!("{PW}{root_token}"))
        .await
        .xml("sessionId")
        .unwrap();
    let by_admin = set_password(&root, &bob, "Reset-By-Admin1");
    assert_eq!(srv.soap(SOAP, &by_admin).await.status, 200);
    // An admin whose password has expired may change only their own (R-L6).
    srv.env.clock.advance(Duration::days(91));
    let old_root = login(srv, "root@acme.test", &format!("{PW}{root_token}")).await;
    assert_eq!(old_root.xml("passwordExpired").unwrap(), "true");
    let expired = by_admin.replace(
        &root_session(&by_admin),
        &old_root.xml("sessionId").unwrap(),
    );
    let a = srv.soap(SOAP, &expired).await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INSUFFICIENT_ACCESS");
    srv.env.clock.advance(Duration::days(-91));
    // An admin of another org finds no such user (R-M1).
    s.create_org(&cli(), "Other").await.unwrap();
    add_user(s, "Other", "eve@other.test", Some("System Administrator")).await;
    let eve_token = latest_token(&srv.mails().await, "eve@other.test");
    let eve = login(srv, "eve@other.test", &format!("{PW}{eve_token}"))
        .await
        .xml("sessionId")
        .unwrap();
    let cross = by_admin.replace(&root, &eve);
    assert_eq!(
        srv.soap(SOAP, &cross).await.xml("exceptionCode").unwrap(),
        "INVALID_ID_FIELD"
    );
    f.srv.finish().await;
}

/// The session id in a `SessionHeader` envelope.
fn root_session(envelope: &str) -> String {
    envelope
        .split("<sessionId>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string()
}
