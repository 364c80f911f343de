//! Integration tokens on the wire: SOAP `login()` and the OAuth password grant take one as the
//! password, from an untrusted address, and answer the generic refusals once it is revoked,
//! expired or past its rotation's grace window.

use super::support::{INVALID_LOGIN, SOAP, USER, cli, fixture, last_status, login};
use crate::common::server::password_grant;
use crate::common::server::{TestServer, session_envelope};
use crate::common::{Backend, oauth_client};
use crate::on_both;
use time::Duration;

on_both!(
    integration_tokens_on_soap_and_oauth,
    what_a_token_logged_in_ends_with_it,
);

async fn token_from_mail(srv: &crate::common::server::TestServer) -> String {
    srv.mails()
        .await
        .iter()
        .rev()
        .find_map(crate::common::Mail::integration_token)
        .expect("an integration-token mail")
}

async fn integration_tokens_on_soap_and_oauth(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (client_id, secret) = oauth_client(s, "Acme", false, None).await;
    let created = s
        .create_integration_token(&cli(), USER, "Data Loader", Some(30))
        .await
        .unwrap();
    let token = token_from_mail(srv).await;
    // SOAP: the token alone as the password; the test client is outside every trusted range.
    let a = login(srv, USER, &token).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.xml("sessionId").is_some());
    // OAuth: simple-salesforce's way, an empty security_token field beside it.
    let a = srv
        .form(
            "/services/oauth2/token",
            &[
                ("grant_type", "password"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("username", USER),
                ("password", &token),
                ("security_token", ""),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.json()["access_token"].as_str().is_some());
    let a = password_grant(srv, &client_id, &secret, USER, &token).await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Rotated: the old token works for the grace window, then gets the one generic answer.
    s.rotate_integration_token(&cli(), &created.id)
        .await
        .unwrap();
    let new = token_from_mail(srv).await;
    assert_eq!(login(srv, USER, &token).await.status, 200);
    srv.env.clock.advance(Duration::hours(24));
    let a = login(srv, USER, &token).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    assert_eq!(a.xml("faultstring").unwrap(), INVALID_LOGIN);
    let a = password_grant(srv, &client_id, &secret, USER, &token).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(
        last_status(s, USER).await,
        "Failed: integration token invalid"
    );

    // Expired: the same answers, its own login-history status.
    assert_eq!(login(srv, USER, &new).await.status, 200);
    srv.env.clock.advance(Duration::days(30));
    let a = login(srv, USER, &new).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    let a = password_grant(srv, &client_id, &secret, USER, &new).await;
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(
        last_status(s, USER).await,
        "Failed: integration token expired"
    );

    // Revoked.
    let fresh = s
        .create_integration_token(&cli(), USER, "Tableau", None)
        .await
        .unwrap();
    let value = token_from_mail(srv).await;
    assert_eq!(login(srv, USER, &value).await.status, 200);
    s.revoke_integration_token(&cli(), &fresh.id).await.unwrap();
    let a = login(srv, USER, &value).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    let a = password_grant(srv, &client_id, &secret, USER, &value).await;
    assert_eq!(a.json()["error"], "invalid_grant");
    f.srv.finish().await;
}

async fn session_works(srv: &TestServer, sid: &str) -> bool {
    let a = srv
        .soap(
            SOAP,
            &session_envelope(sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await;
    a.status == 200
}

async fn refresh(
    srv: &TestServer,
    rt: &str,
    id: &str,
    secret: &str,
) -> crate::common::server::Answer {
    srv.form(
        "/services/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await
}

/// A leaked integration token's holder keeps nothing once it is revoked: the sessions and the
/// refresh tokens its logins created end with it, and a refresh token stops when the token
/// expires. Sessions made with the password live on.
async fn what_a_token_logged_in_ends_with_it(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (client_id, secret) = oauth_client(s, "Acme", true, None).await;
    let created = s
        .create_integration_token(&cli(), USER, "ETL", Some(10))
        .await
        .unwrap();
    let token = token_from_mail(srv).await;
    let soap_sid = login(srv, USER, &token).await.xml("sessionId").unwrap();
    let password_sid = login(srv, USER, &format!("{}{}", super::support::PW, f.token))
        .await
        .xml("sessionId")
        .unwrap();
    let j = password_grant(srv, &client_id, &secret, USER, &token)
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    let access = j["access_token"].as_str().unwrap().to_string();
    let refreshed = refresh(srv, &rt, &client_id, &secret).await.json();
    let refreshed_access = refreshed["access_token"].as_str().unwrap().to_string();
    for sid in [&soap_sid, &access, &refreshed_access, &password_sid] {
        assert!(session_works(srv, sid).await);
    }
    s.revoke_integration_token(&cli(), &created.id)
        .await
        .unwrap();
    for sid in [&soap_sid, &access, &refreshed_access] {
        assert!(!session_works(srv, sid).await, "ended with the token");
    }
    assert!(
        session_works(srv, &password_sid).await,
        "the password's session lives on"
    );
    let a = refresh(srv, &rt, &client_id, &secret).await;
    assert_eq!(a.json()["error"], "invalid_grant", "{}", a.text);

    // Expiry: the refresh token stops with its integration token.
    s.create_integration_token(&cli(), USER, "ETL", Some(1))
        .await
        .unwrap();
    let token = token_from_mail(srv).await;
    let j = password_grant(srv, &client_id, &secret, USER, &token)
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(srv, &rt, &client_id, &secret).await.status, 200);
    srv.env.clock.advance(Duration::days(1));
    let a = refresh(srv, &rt, &client_id, &secret).await;
    assert_eq!(a.json()["error"], "invalid_grant", "{}", a.text);
    f.srv.finish().await;
}
