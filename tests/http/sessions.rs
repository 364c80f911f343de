//! Sessions (R-L10): SOAP `logout`, `getUserInfo` and the idle timeout, and what one node
//! ends or changes as another node sees it.

use super::support::{PW, SOAP, USER, cli, fixture, login, policy};
use crate::common;
use crate::common::Backend;
use crate::common::server::session_envelope;
use crate::on_both;
use keyward::domain::secret::Password;
use keyward::service::orgs::PolicyChange;
use time::Duration;

on_both!(
    r_l10_soap_sessions_logout_get_user_info_and_idle_timeout,
    r_l10_logout_on_one_node_is_seen_by_another,
    session_checks_show_this_nodes_changes_at_once,
);

async fn r_l10_soap_sessions_logout_get_user_info_and_idle_timeout(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let login_ok = || async { login(srv, USER, &format!("{PW}{}", f.token)).await };
    let sid = login_ok().await.xml("sessionId").unwrap();
    let info = srv
        .soap(
            SOAP,
            &session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert!(
        info.text
            .contains("<getUserInfoResponse><result><accessibilityMode>")
    );
    assert_eq!(info.xml("userName").unwrap(), USER);
    // Logout (jsforce posts it without the org suffix; beatbox with it).
    let out = srv
        .soap(
            &format!("{SOAP}/{}", f.org_id),
            &session_envelope(&sid, "<logout xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await;
    assert_eq!(out.status, 200);
    assert!(
        out.text
            .contains("<soapenv:Body><logoutResponse></logoutResponse></soapenv:Body>")
    );
    let dead = srv
        .soap(
            SOAP,
            &session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await;
    assert_eq!(dead.status, 500);
    // jsforce's session-expiry regex.
    assert!(
        dead.text
            .contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>")
    );
    assert!(dead.text.contains("xsi:type=\"sf:UnexpectedErrorFault\""));
    assert_eq!(
        dead.xml("faultstring").unwrap(),
        "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session"
    );
    // Junk and missing session headers.
    for sid in ["", "junk", "00D000000000001!short"] {
        let a = srv
            .soap(
                SOAP,
                &session_envelope(sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
            )
            .await;
        assert_eq!(
            a.xml("exceptionCode").unwrap(),
            "INVALID_SESSION_ID",
            "{sid:?}"
        );
    }
    // Idle timeout: used within the timeout it lives on; left idle longer it ends.
    let s = srv.services();
    policy(
        s,
        "Acme",
        PolicyChange {
            session_seconds: Some(600),
            ..PolicyChange::default()
        },
    )
    .await;
    let sid = login_ok().await.xml("sessionId").unwrap();
    let clock = &srv.env.clock;
    let call = |sid: String| async move {
        srv.soap(
            SOAP,
            &session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await
    };
    for _ in 0..3 {
        clock.advance(Duration::seconds(500));
        assert_eq!(
            call(sid.clone()).await.status,
            200,
            "used within the idle timeout"
        );
    }
    assert_eq!(
        call(sid.clone()).await.xml("sessionSecondsValid").unwrap(),
        "600"
    );
    clock.advance(Duration::seconds(601));
    assert_eq!(
        call(sid.clone()).await.xml("exceptionCode").unwrap(),
        "INVALID_SESSION_ID"
    );
    // R-T8: deactivation ends every session at once.
    let sid = login_ok().await.xml("sessionId").unwrap();
    s.deactivate(&cli(), USER).await.unwrap();
    assert_eq!(
        call(sid.clone()).await.xml("exceptionCode").unwrap(),
        "INVALID_SESSION_ID"
    );
    s.reactivate(&cli(), USER).await.unwrap();
    assert_eq!(
        call(sid).await.xml("exceptionCode").unwrap(),
        "INVALID_SESSION_ID",
        "reactivation does not revive sessions"
    );
    // An admin password reset ends every session (R-L10).
    let sid = login_ok().await.xml("sessionId").unwrap();
    s.set_password(&cli(), USER, &Password::new("Another-Passw0rd"))
        .await
        .unwrap();
    assert_eq!(
        call(sid).await.xml("exceptionCode").unwrap(),
        "INVALID_SESSION_ID"
    );
    f.srv.finish().await;
}

async fn r_l10_logout_on_one_node_is_seen_by_another(b: Backend) {
    let f = fixture(b).await;
    // A second node: its own services (own pools, own hasher) over the same database.
    let clock = f.srv.env.clock.clone();
    let node_b_services = common::services_on(
        &f.srv.env.db,
        clock.clone(),
        keyward::mail::transport::Transport::file(f.srv.env.db.mail_dir()),
    )
    .await;
    let (base_b, stop_b, task_b) =
        common::server::serve(node_b_services.clone(), keyward::config::Config::default()).await;
    let http = common::server::client();
    let srv = &f.srv;
    let sid = login(srv, USER, &format!("{PW}{}", f.token))
        .await
        .xml("sessionId")
        .unwrap();
    let info = session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>");
    let on_b = || async {
        http.post(format!("{base_b}{SOAP}"))
            .header("Content-Type", "text/xml")
            .body(info.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(on_b().await, 200, "node B accepts node A's session");
    let on_a = |body: String| async move { srv.soap(SOAP, &body).await };
    assert!(on_a(info.clone()).await.text.contains("<userId>"));
    on_a(session_envelope(
        &sid,
        "<logout xmlns=\"urn:partner.soap.sforce.com\"/>",
    ))
    .await;
    // Node A, where the logout was made, refuses the session at once, though it remembered the
    // check it made a moment ago; node B within its session cache's time (at most a second).
    assert_eq!(
        on_a(info.clone()).await.xml("exceptionCode").unwrap(),
        "INVALID_SESSION_ID"
    );
    clock.advance(Duration::milliseconds(
        keyward::service::SESSION_CACHE_TTL_MS as i64,
    ));
    assert_eq!(on_b().await, 500, "the logout on node A is seen on node B");
    let sid = login(srv, USER, &format!("{PW}{}", f.token))
        .await
        .xml("sessionId")
        .unwrap();
    let info2 = session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>");
    let on_b2 = || {
        http.post(format!("{base_b}{SOAP}"))
            .header("Content-Type", "text/xml")
            .body(info2.clone())
            .send()
    };
    assert_eq!(on_b2().await.unwrap().status(), 200);
    srv.services().deactivate(&cli(), USER).await.unwrap();
    clock.advance(Duration::milliseconds(
        keyward::service::SESSION_CACHE_TTL_MS as i64,
    ));
    let r = on_b2().await.unwrap();
    assert_eq!(r.status(), 500, "deactivation on node A is seen on node B");
    let _ = stop_b.send(());
    task_b.await.unwrap();
    node_b_services.close().await;
    f.srv.finish().await;
}

/// A node remembers a session check for up to `session_cache.ttl_ms`; a change it makes itself
/// to the user or the org still shows at the very next call (the clock does not move here).
async fn session_checks_show_this_nodes_changes_at_once(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let sid = login(srv, USER, &format!("{PW}{}", f.token))
        .await
        .xml("sessionId")
        .unwrap();
    let info = || async {
        srv.soap(
            SOAP,
            &session_envelope(&sid, "<getUserInfo xmlns=\"urn:partner.soap.sforce.com\"/>"),
        )
        .await
    };
    let before = info().await;
    assert_eq!(before.xml("sessionSecondsValid").unwrap(), "7200");
    assert_eq!(before.xml("userEmail").unwrap(), USER);
    s.set_policy(
        &cli(),
        "Acme",
        &PolicyChange {
            session_seconds: Some(600),
            ..PolicyChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(info().await.xml("sessionSecondsValid").unwrap(), "600");
    let change = keyward::service::account::UserChange {
        first_name: Some("Grace".into()),
        last_name: Some("Hopper".into()),
        email: Some("grace@acme.test".into()),
        profile: None,
        current_password: None,
    };
    s.update_user(&cli(), USER, &change).await.unwrap();
    let after = info().await;
    assert_eq!(after.xml("userFullName").unwrap(), "Grace Hopper");
    assert_eq!(after.xml("userEmail").unwrap(), "grace@acme.test");
    f.srv.finish().await;
}
