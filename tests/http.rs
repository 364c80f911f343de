//! The HTTP interfaces end to end, through the real router, middleware and accept loop, on
//! SQLite and PostgreSQL: SOAP `login`/`logout`/`getUserInfo`/`setPassword`/`changeOwnPassword`
//! (docs/wire.md §1),
//! OAuth (§2), the identity URL, sessions (R-L10), client IP (R-L11), lockout under parallel
//! attempts (R-L5), equal hash work (R-L4), delegated authentication (R-L7), hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::server::password_grant;
use common::server::{
    Answer, TestServer, login_envelope, login_envelope_ns, session_envelope, xml_escape,
};
use common::{Backend, latest_token, oauth_client};
use keyward::domain::profile::Permissions;
use keyward::domain::secret::Password;
use keyward::service::orgs::PolicyChange;
use keyward::service::{Actor, Services};
use serde_json::Value;
use std::io::Write;
use time::Duration;

const PW: &str = "Passw0rd!one";
const SOAP: &str = "/services/Soap/u/59.0";
const TOKEN: &str = "/services/oauth2/token";
const MUST_USE_TOKEN: &str = "LOGIN_MUST_USE_SECURITY_TOKEN: Invalid username, password, \
security token; or user locked out. Are you at a new location? When accessing Salesforce--either \
via a desktop client or the API--from outside of your company\u{2019}s trusted networks, you must \
add a security token to your password to log in. To get your new security token, log in to \
Salesforce. From your personal settings, enter Reset My Security Token in the Quick Find box, \
then select Reset My Security Token.";
const INVALID_LOGIN: &str =
    "INVALID_LOGIN: Invalid username, password, security token; or user locked out.";

fn cli() -> Actor {
    Actor::Cli("test".into())
}

/// An org with one user whose first token has been mailed.
struct Fixture {
    srv: TestServer,
    org_id: String,
    user_id: String,
    token: String,
}

const USER: &str = "ada@acme.test";

async fn fixture(b: Backend) -> Fixture {
    fixture_with(b, |_| {}).await
}

async fn fixture_with(b: Backend, tweak: impl FnOnce(&mut keyward::config::Config)) -> Fixture {
    fixture_in(TestServer::start_with(b, tweak).await).await
}

/// The fixture over services built by the test.
async fn fixture_on(env: common::Env) -> Fixture {
    fixture_in(TestServer::on(env, |_| {}).await).await
}

async fn fixture_in(srv: TestServer) -> Fixture {
    let s = srv.services();
    let org_id = s.create_org(&cli(), "Acme").await.unwrap().id;
    let user_id = add_user(s, "Acme", USER, None).await;
    let token = latest_token(&srv.mails().await, USER);
    Fixture {
        srv,
        org_id,
        user_id,
        token,
    }
}

async fn add_user(s: &Services, org: &str, username: &str, profile: Option<&str>) -> String {
    common::create_user(s, org, username, Some(PW), profile).await
}

/// A profile whose login IP range (10.0.0.0/24) excludes the test's 127.0.0.1 (R-L1).
async fn office_only_profile(s: &Services) {
    let api = Permissions {
        api_enabled: true,
        ..Permissions::default()
    };
    s.create_profile(&cli(), "Acme", "Office Only", api)
        .await
        .unwrap();
    s.add_login_range(&cli(), "Acme", "Office Only", "10.0.0.0/24", None, "office")
        .await
        .unwrap();
}

async fn policy(s: &Services, org: &str, change: PolicyChange) {
    s.set_policy(&cli(), org, &change).await.unwrap();
}

async fn login(srv: &TestServer, username: &str, secret: &str) -> Answer {
    srv.soap(SOAP, &login_envelope(username, secret)).await
}

async fn history_statuses(s: &Services, username: &str) -> Vec<String> {
    s.login_history(&cli(), None, Some(username), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect()
}

async fn last_status(s: &Services, username: &str) -> String {
    history_statuses(s, username).await.remove(0)
}

fn id18(id15: &str) -> String {
    keyward::service::id18(id15)
}

on_both!(
    r_l3_soap_login_success_has_the_exact_shape_clients_parse,
    r_l3_soap_faults_are_exactly_salesforces,
    soap_accepts_every_path_variant_chunked_gzip_and_absolute_form,
    soap_enterprise_endpoint_uses_the_enterprise_namespaces,
    r_l10_soap_sessions_logout_get_user_info_and_idle_timeout,
    r_l6_expired_password_allows_only_changing_it,
    r_l10_change_own_password_ends_other_sessions_and_mails_a_token,
    malformed_soap_gets_a_fault_and_changes_nothing,
    r_l5_fifty_parallel_wrong_passwords_lock_at_exactly_the_limit,
    r_l4_every_refused_path_costs_one_hash,
    r_l8_api_disabled_profile,
    oauth_password_grant_success_and_errors,
    oauth_refresh_token_and_client_credentials,
    oauth_revoke_introspect_userinfo_and_identity,
    r_l10_logout_on_one_node_is_seen_by_another,
    session_checks_show_this_nodes_changes_at_once,
    r_l11_forwarded_for_only_from_trusted_proxies,
    r_l7_delegated_authentication,
    metrics_health_request_ids_and_security_headers,
    slow_clients_are_cut_off_after_the_header_timeout,
    hostile_fields_headers_and_forms_get_specific_errors,
    address_limit_refuses_a_guessing_address_before_any_hash_on_every_node,
    a_flood_from_some_addresses_does_not_refuse_or_starve_another,
);

async fn r_l3_soap_login_success_has_the_exact_shape_clients_parse(b: Backend) {
    let f = fixture(b).await;
    let a = login(&f.srv, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("content-type"), "text/xml; charset=utf-8");
    let org15 = &f.org_id;
    let base = &f.srv.base;
    let sid = a.xml("sessionId").unwrap();
    // R-L10: `<15-char org id>!<random>`.
    assert!(sid.starts_with(&format!("{org15}!")), "{sid}");
    assert!(sid.len() >= 15 + 1 + 22, "{sid}");
    // docs/wire.md §1.3: default namespace, no prefixes, WSDL order, no Header.
    let expected_start = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns=\"urn:partner.soap.sforce.com\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><loginResponse>\
         <result><metadataServerUrl>{base}/services/Soap/m/59.0/{org15}</metadataServerUrl>\
         <passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
         <serverUrl>{base}/services/Soap/u/59.0/{org15}</serverUrl><sessionId>{sid}</sessionId>\
         <userId>{}</userId><userInfo>",
        id18(&f.user_id)
    );
    assert!(a.text.starts_with(&expected_start), "{}", a.text);
    let order = [
        "accessibilityMode",
        "chatterExternal",
        "currencySymbol",
        "orgAttachmentFileSizeLimit",
        "orgDefaultCurrencyIsoCode",
        "orgDefaultCurrencyLocale",
        "orgDisallowHtmlAttachments",
        "orgHasPersonAccounts",
        "organizationId",
        "organizationMultiCurrency",
        "organizationName",
        "profileId",
        "roleId",
        "sessionSecondsValid",
        "userDefaultCurrencyIsoCode",
        "userEmail",
        "userFullName",
        "userId",
        "userLanguage",
        "userLocale",
        "userName",
        "userTimeZone",
        "userType",
        "userUiSkin",
    ];
    let doc = roxmltree::Document::parse(&a.text).unwrap();
    let info = doc
        .descendants()
        .find(|n| n.tag_name().name() == "userInfo")
        .unwrap();
    let names: Vec<&str> = info
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, order);
    assert!(!a.text.contains("Header"));
    assert_eq!(a.xml("organizationId").unwrap(), id18(org15));
    assert_eq!(a.xml("organizationName").unwrap(), "Acme");
    assert_eq!(a.xml("sessionSecondsValid").unwrap(), "7200");
    assert_eq!(a.xml("userName").unwrap(), USER);
    assert_eq!(a.xml("userFullName").unwrap(), "Ada Lovelace");
    // jsforce's regexes: `<serverUrl>([^<]+)`, `<sessionId>([^<]+)`, first `<userId>`.
    assert!(
        a.text
            .contains(&format!("<userId>{}</userId>", id18(&f.user_id)))
    );
    // R-L9
    let s = f.srv.services();
    let rows = s.login_history(&cli(), None, Some(USER), 1).await.unwrap();
    assert_eq!(rows[0].status, "Success");
    assert_eq!(rows[0].login_type, "SOAP Partner");
    assert_eq!(rows[0].source_ip, "127.0.0.1");
    assert_eq!(rows[0].api_version, "59.0");
    assert_eq!(rows[0].login_url, format!("{base}{SOAP}"));
    // simple-salesforce's envelope: prefixes everywhere, CallOptions recorded as the client, a
    // LoginScopeHeader naming the user's org (15 or 18 characters) or another one.
    let ssf = |org: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\" ?><soapenv:Envelope \
             xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             xmlns:urn=\"urn:partner.soap.sforce.com\"><soapenv:Header><urn:CallOptions>\
             <urn:client>simple-salesforce</urn:client><urn:defaultNamespace>sf\
             </urn:defaultNamespace></urn:CallOptions><urn:LoginScopeHeader><urn:organizationId>\
             {org}</urn:organizationId></urn:LoginScopeHeader></soapenv:Header><soapenv:Body>\
             <urn:login><urn:username>{USER}</urn:username><urn:password>{PW}{}</urn:password>\
             </urn:login></soapenv:Body></soapenv:Envelope>",
            f.token
        )
    };
    for org in [org15.to_string(), id18(org15)] {
        let a = f.srv.soap(SOAP, &ssf(&org)).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let rows = s.login_history(&cli(), None, Some(USER), 1).await.unwrap();
    assert_eq!(rows[0].client, "simple-salesforce");
    let other = s.create_org(&cli(), "Other").await.unwrap().id;
    for org in [other.as_str(), "not-an-org-id"] {
        let a = f.srv.soap(SOAP, &ssf(org)).await;
        assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN", "{org}");
    }
    f.srv.finish().await;
}

async fn r_l3_soap_faults_are_exactly_salesforces(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    // R-L3: the password alone from an untrusted address.
    let a = login(srv, USER, PW).await;
    assert_eq!(a.status, 500);
    let expected = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope \
         xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:sf=\"urn:fault.partner.soap.sforce.com\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault>\
         <faultcode>sf:LOGIN_MUST_USE_SECURITY_TOKEN</faultcode><faultstring>{MUST_USE_TOKEN}\
         </faultstring><detail><sf:LoginFault xsi:type=\"sf:LoginFault\"><sf:exceptionCode>\
         LOGIN_MUST_USE_SECURITY_TOKEN</sf:exceptionCode><sf:exceptionMessage>{}\
         </sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>\
         </soapenv:Envelope>",
        MUST_USE_TOKEN.trim_start_matches("LOGIN_MUST_USE_SECURITY_TOKEN: ")
    );
    assert_eq!(a.text, expected);
    assert_eq!(
        last_status(s, USER).await,
        "Failed: API security token required"
    );
    // A stale-looking token (well-formed, not current) is "without a valid token" too.
    let stale = {
        let t = keyward::domain::token::SecurityToken::generate(&mut rand::thread_rng());
        t.expose().to_string()
    };
    let a = login(srv, USER, &format!("{PW}{stale}")).await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    // R-L4: wrong password, unknown user: the one generic answer.
    for (u, p) in [
        (USER, format!("wrong{}", f.token)),
        ("nobody@acme.test", format!("{PW}{}", f.token)),
    ] {
        let a = login(srv, u, &p).await;
        assert_eq!(a.status, 500);
        assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
        assert_eq!(a.xml("faultstring").unwrap(), INVALID_LOGIN);
        assert_eq!(
            a.xml("exceptionMessage").unwrap(),
            "Invalid username, password, security token; or user locked out."
        );
        assert!(a.text.contains("xsi:type=\"sf:LoginFault\""));
    }
    assert_eq!(last_status(s, USER).await, "Invalid password");
    // R-L2: from a trusted range the password alone is enough, and password+token too.
    s.add_trusted_range(&cli(), "Acme", "127.0.0.1", Some("127.0.0.1"), "test")
        .await
        .unwrap();
    assert_eq!(login(srv, USER, PW).await.status, 200);
    let with_token = login(srv, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(with_token.status, 200);
    // R-T8: deactivated.
    s.deactivate(&cli(), USER).await.unwrap();
    let a = login(srv, USER, PW).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    assert_eq!(last_status(s, USER).await, "User is inactive");
    s.reactivate(&cli(), USER).await.unwrap();
    // R-L1: a profile login range that excludes 127.0.0.1, whatever the credentials.
    office_only_profile(s).await;
    add_user(s, "Acme", "bob@acme.test", Some("Office Only")).await;
    let bob_token = latest_token(&srv.mails().await, "bob@acme.test");
    let a = login(srv, "bob@acme.test", &format!("{PW}{bob_token}")).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    assert_eq!(last_status(s, "bob@acme.test").await, "Restricted IP");
    f.srv.finish().await;
}

async fn soap_accepts_every_path_variant_chunked_gzip_and_absolute_form(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let env = login_envelope(USER, &format!("{PW}{}", f.token));
    // docs/wire.md §0.1: trailing slash, org id suffix, repeated slashes.
    for path in [
        "/services/Soap/u/59.0/".to_string(),
        format!("/services/Soap/u/59.0/{}", id18(&f.org_id)),
        "//services/Soap/u/64.0/".to_string(),
        "/services/Soap/u/36.0".to_string(),
    ] {
        let a = srv.soap(&path, &env).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    // jsforce: Transfer-Encoding: chunked.
    let host = srv.base.trim_start_matches("http://").to_string();
    let mut chunked = Vec::new();
    for c in env.as_bytes().chunks(37) {
        chunked.extend(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend(c);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let head = format!(
        "POST /services/Soap/u/50.0 HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n\
         SOAPAction: \"\"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let raw = raw_request(&host, head.as_bytes(), &chunked).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    // beatbox and Data Loader: gzip bodies, absolute-form request target, over a raw socket
    // so that nothing rewrites the request line.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(env.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let head = format!(
        "POST http://{host}/services/Soap/u/36.0 HTTP/1.1\r\nHost: {host}\r\n\
         User-Agent: BeatBox/0.96\r\nSOAPAction: \"\"\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Accept-Encoding: gzip\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let raw = raw_request(&host, head.as_bytes(), &body).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("<sessionId>"), "{raw}");
    f.srv.finish().await;
}

/// Sends raw bytes and reads until the server closes.
async fn raw_request(host: &str, head: &[u8], body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(head).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn soap_enterprise_endpoint_uses_the_enterprise_namespaces(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let ent = "urn:enterprise.soap.sforce.com";
    let a = srv
        .soap(
            "/services/Soap/c/59.0",
            &login_envelope_ns(USER, &format!("{PW}{}", f.token), ent),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("xmlns=\"urn:enterprise.soap.sforce.com\""));
    assert!(
        a.text
            .contains(&format!("/services/Soap/c/59.0/{}<", f.org_id))
    );
    let rows = srv
        .services()
        .login_history(&cli(), None, Some(USER), 1)
        .await
        .unwrap();
    assert_eq!(rows[0].login_type, "SOAP Enterprise");
    let a = srv
        .soap("/services/Soap/c/59.0", &login_envelope_ns(USER, PW, ent))
        .await;
    assert!(
        a.text
            .contains("xmlns:sf=\"urn:fault.enterprise.soap.sforce.com\"")
    );
    // The partner namespace on the enterprise endpoint is not an operation there.
    let a = srv
        .soap("/services/Soap/c/59.0", &login_envelope(USER, PW))
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(a.xml("faultcode").unwrap(), "soapenv:Client");
    assert!(
        a.xml("faultstring")
            .unwrap()
            .contains("No operation available")
    );
    f.srv.finish().await;
}

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

/// Row counts of the tables a request could write.
async fn counts(s: &Services) -> Vec<i64> {
    let mut c = s.db.conn().await.unwrap();
    let mut out = Vec::new();
    for t in [
        "login_history",
        "sessions",
        "audit_trail",
        "outbox",
        "users",
        "refresh_tokens",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {t}");
        let n: i64 = match &mut c {
            keyward::store::Pooled::Sqlite(c) => {
                sqlx::query_scalar(&sql).fetch_one(&mut **c).await.unwrap()
            }
            keyward::store::Pooled::Postgres(c) => {
                sqlx::query_scalar(&sql).fetch_one(&mut **c).await.unwrap()
            }
        };
        out.push(n);
    }
    out
}

async fn malformed_soap_gets_a_fault_and_changes_nothing(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let before = counts(s).await;
    let ok = login_envelope(USER, &format!("{PW}{}", f.token));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not XML", b"hello".to_vec(), 500, "not well-formed XML"),
        (
            "DTD with entities",
            br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#.to_vec(),
            500,
            "document type declaration",
        ),
        (
            "external entity",
            format!(
                "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
                ok.replace(USER, "&xxe;")
            )
            .into_bytes(),
            500,
            "document type declaration",
        ),
        (
            "wrong namespace",
            ok.replace("urn:partner.soap.sforce.com", "urn:wrong").into_bytes(),
            500,
            "No operation available for request {urn:wrong}login",
        ),
        (
            "missing username",
            ok.replace(&format!("<username>{USER}</username>"), "").into_bytes(),
            500,
            "login: the required element username is missing",
        ),
        (
            "deep nesting",
            format!("{}{}", "<a>".repeat(30_000), "</a>".repeat(30_000)).into_bytes(),
            500,
            "more than 64 levels",
        ),
        (
            "deep nesting hidden in quoted attribute values",
            format!(
                "<e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body>{}{}</e:Body></e:Envelope>",
                "<a b=\"/>\">".repeat(5000),
                "</a>".repeat(5000)
            )
            .into_bytes(),
            500,
            "more than 64 levels",
        ),
        ("a fifth of a megabyte of <", vec![b'<'; 200_000], 500, "more than 64 levels"),
        ("not UTF-8", vec![0xff, 0xfe, 0xfd], 500, "not UTF-8"),
        ("10 MB body", vec![b'<'; 10 * 1024 * 1024], 413, "larger than 262144 bytes"),
    ];
    for (what, body, status, message) in cases {
        let a = srv.post(SOAP, "text/xml", body).await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert_eq!(
            a.xml("faultcode").as_deref(),
            Some("soapenv:Client"),
            "{what}"
        );
        assert!(
            a.xml("faultstring").unwrap().contains(message),
            "{what}: {}",
            a.text
        );
    }
    // A gzip bomb: 10 MB of zeros in a ~10 KB body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
    let bomb = gz.finish().unwrap();
    let r = srv
        .http
        .post(format!("{}{SOAP}", srv.base))
        .header("Content-Type", "text/xml")
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("once decompressed"));
    assert_eq!(counts(s).await, before, "nothing was written");
    // A login that parses but whose credentials are wrong writes exactly its history row.
    login(srv, USER, "wrong").await;
    let after = counts(s).await;
    assert_eq!(after[0], before[0] + 1);
    assert_eq!(after[1..], before[1..]);
    f.srv.finish().await;
}

async fn r_l5_fifty_parallel_wrong_passwords_lock_at_exactly_the_limit(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    policy(
        s,
        "Acme",
        PolicyChange {
            lockout_attempts: Some(5),
            ..PolicyChange::default()
        },
    )
    .await;
    let attempts = (0..50).map(|i| {
        let envelope = login_envelope(USER, &format!("wrong-{i}{}", f.token));
        let (http, url) = (srv.http.clone(), format!("{}{SOAP}", srv.base));
        tokio::spawn(async move {
            http.post(url)
                .header("Content-Type", "text/xml")
                .body(envelope)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    });
    for a in attempts.collect::<Vec<_>>() {
        let text = a.await.unwrap();
        assert!(
            text.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
            "{text}"
        );
    }
    let statuses = history_statuses(s, USER).await;
    assert_eq!(statuses.len(), 50);
    let counted = statuses.iter().filter(|s| *s == "Invalid password").count();
    let locked = statuses.iter().filter(|s| *s == "Password lockout").count();
    assert_eq!((counted, locked), (5, 45), "the lock engaged at exactly 5");
    // Locked: the right credentials are refused, and one lockout mail went out.
    let a = login(srv, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.xml("faultcode").unwrap(), "sf:INVALID_LOGIN");
    assert_eq!(last_status(s, USER).await, "Password lockout");
    let lock_mails = srv
        .mails()
        .await
        .into_iter()
        .filter(|m| m.to == USER && m.subject.to_lowercase().contains("locked"))
        .count();
    assert_eq!(lock_mails, 1);
    f.srv.finish().await;
}

async fn r_l4_every_refused_path_costs_one_hash(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    office_only_profile(s).await;
    add_user(s, "Acme", "ranged@acme.test", Some("Office Only")).await;
    add_user(s, "Acme", "inactive@acme.test", None).await;
    s.deactivate(&cli(), "inactive@acme.test").await.unwrap();
    add_user(s, "Acme", "locked@acme.test", None).await;
    policy(
        s,
        "Acme",
        PolicyChange {
            lockout_attempts: Some(3),
            ..PolicyChange::default()
        },
    )
    .await;
    for _ in 0..3 {
        login(srv, "locked@acme.test", "wrong").await;
    }
    assert_eq!(last_status(s, "locked@acme.test").await, "Invalid password");
    let secret = format!("{PW}{}", f.token);
    let paths = [
        (
            "unknown user",
            "nobody@acme.test",
            secret.clone(),
            "Invalid login",
        ),
        (
            "malformed username",
            "not a username",
            secret.clone(),
            "Invalid login",
        ),
        (
            "wrong password",
            USER,
            format!("wrong{}", f.token),
            "Invalid password",
        ),
        (
            "no token",
            USER,
            PW.to_string(),
            "Failed: API security token required",
        ),
        (
            "locked",
            "locked@acme.test",
            secret.clone(),
            "Password lockout",
        ),
        (
            "inactive",
            "inactive@acme.test",
            secret.clone(),
            "User is inactive",
        ),
        (
            "restricted IP",
            "ranged@acme.test",
            secret.clone(),
            "Restricted IP",
        ),
        ("success", USER, secret.clone(), "Success"),
    ];
    for (what, user, secret, status) in paths {
        let before = s.hasher.invocations();
        login(srv, user, &secret).await;
        assert_eq!(
            s.hasher.invocations() - before,
            1,
            "{what}: exactly one hash"
        );
        if status != "Invalid login" {
            assert_eq!(last_status(s, user).await, status, "{what}");
        }
    }
    f.srv.finish().await;
}

async fn r_l8_api_disabled_profile(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    s.create_profile(&cli(), "Acme", "UI Only", Permissions::default())
        .await
        .unwrap();
    add_user(s, "Acme", "ui@acme.test", Some("UI Only")).await;
    let t = latest_token(&srv.mails().await, "ui@acme.test");
    let a = login(srv, "ui@acme.test", &format!("{PW}{t}")).await;
    assert_eq!(
        a.xml("faultstring").unwrap(),
        "API_CURRENTLY_DISABLED: API is disabled for this User"
    );
    assert_eq!(
        last_status(s, "ui@acme.test").await,
        "Failed: API access disabled"
    );
    // Checked only after the credentials: a wrong password still gets the generic answer.
    let a = login(srv, "ui@acme.test", "wrong").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    f.srv.finish().await;
}

fn hmac_b64(key: &str, msg: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn oauth_password_grant_success_and_errors(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", false, None).await;
    let a = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("content-type").starts_with("application/json"));
    assert_eq!(a.header("cache-control"), "no-store");
    let j = a.json();
    let access = j["access_token"].as_str().unwrap();
    assert!(access.starts_with(&format!("{}!", f.org_id)));
    assert_eq!(j["instance_url"], srv.base.as_str());
    let id_url = format!("{}/id/{}/{}", srv.base, id18(&f.org_id), id18(&f.user_id));
    assert_eq!(j["id"], id_url.as_str());
    assert_eq!(j["token_type"], "Bearer");
    let issued_at = j["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13, "milliseconds, as a string");
    assert_eq!(
        j["signature"],
        hmac_b64(&secret, &format!("{id_url}{issued_at}")).as_str()
    );
    assert!(
        j.get("refresh_token").is_none(),
        "this client issues no refresh tokens"
    );
    let row = &s.login_history(&cli(), None, Some(USER), 1).await.unwrap()[0];
    assert_eq!(
        (row.login_type.as_str(), row.status.as_str()),
        ("Remote Access 2.0", "Success")
    );
    assert_eq!(row.client, id);
    // The token in its own field.
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("username", USER),
                ("password", PW),
                ("security_token", &f.token),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // HTTP Basic client authentication.
    let r = srv
        .http
        .post(format!("{}{TOKEN}", srv.base))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "password"),
            ("username", USER),
            ("password", &format!("{PW}{}", f.token)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Errors, in Salesforce's words.
    let err = |a: &Answer| {
        (
            a.status,
            a.json()["error"].as_str().unwrap().to_string(),
            a.json()["error_description"].as_str().unwrap().to_string(),
        )
    };
    let a = password_grant(srv, &id, &secret, USER, PW).await;
    assert_eq!(
        err(&a),
        (400, "invalid_grant".into(), "authentication failure".into())
    );
    assert_eq!(a.json()["error_code"], "LOGIN_MUST_USE_SECURITY_TOKEN");
    let a = password_grant(srv, &id, &secret, USER, "wrong").await;
    assert_eq!(
        err(&a),
        (400, "invalid_grant".into(), "authentication failure".into())
    );
    assert!(a.json().get("error_code").is_none());
    // R-L4: an inactive user and an address outside the login ranges are not told apart, with
    // the right password or a wrong one.
    office_only_profile(s).await;
    add_user(s, "Acme", "ranged@acme.test", Some("Office Only")).await;
    add_user(s, "Acme", "gone@acme.test", None).await;
    s.deactivate(&cli(), "gone@acme.test").await.unwrap();
    let mails = srv.mails().await;
    for u in ["ranged@acme.test", "gone@acme.test"] {
        let t = latest_token(&mails, u);
        for pw in [format!("{PW}{t}"), format!("wrong{t}")] {
            let a = password_grant(srv, &id, &secret, u, &pw).await;
            let generic = (400, "invalid_grant".into(), "authentication failure".into());
            assert_eq!(err(&a), generic, "{u}");
            assert!(a.json().get("error_code").is_none());
        }
    }
    // No client at all: the unknown client it is, and an attempt in login history (R-L9) —
    // on no user: the request never reached the user it named.
    let user_rows = history_statuses(s, USER).await.len();
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("username", USER),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(a.json()["error"], "invalid_client_id");
    assert_eq!(history_statuses(s, USER).await.len(), user_rows);
    let newest = s
        .login_history(&cli(), None, None, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (newest.status.as_str(), newest.user_id),
        ("Failed: Invalid OAuth client credentials", None)
    );
    // A client logs in only users of its own org (R-M1): others are unknown to it.
    s.create_org(&cli(), "Other").await.unwrap();
    let (other_id, other_secret) = {
        let (row, sec) = s
            .create_oauth_client(&cli(), "Other", "other app", &Default::default())
            .await
            .unwrap();
        (row.client_id, sec.0)
    };
    let rows_before = history_statuses(s, USER).await.len();
    let cross = format!("{PW}{}", f.token);
    let a = password_grant(srv, &other_id, &other_secret, USER, &cross).await;
    assert_eq!(a.json()["error_description"], "authentication failure");
    let rows_after = history_statuses(s, USER).await.len();
    assert_eq!(
        rows_after, rows_before,
        "Ada is unknown to it: no row on her"
    );
    let a = password_grant(srv, "3MVG9nope", &secret, USER, PW).await;
    assert_eq!(
        err(&a),
        (
            400,
            "invalid_client_id".into(),
            "client identifier invalid".into()
        )
    );
    let a = password_grant(srv, &id, "wrong-secret", USER, PW).await;
    assert_eq!(
        err(&a),
        (
            400,
            "invalid_client".into(),
            "invalid client credentials".into()
        )
    );
    // In the client's org's history, on no user.
    let newest = s
        .login_history(&cli(), Some("Acme"), None, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (newest.status.as_str(), newest.user_id),
        ("Failed: Invalid OAuth client credentials", None)
    );
    let a = srv
        .form(
            TOKEN,
            &[("grant_type", "authorization_code"), ("client_id", &id)],
        )
        .await;
    assert_eq!(
        err(&a),
        (
            400,
            "unsupported_grant_type".into(),
            "grant type not supported".into()
        )
    );
    let a = srv
        .post(TOKEN, "application/json", "{\"grant_type\":\"password\"}")
        .await;
    assert_eq!(err(&a).1, "unsupported_grant_type");
    let a = srv
        .post(
            TOKEN,
            "application/x-www-form-urlencoded",
            "grant_type=password&grant_type=client_credentials",
        )
        .await;
    assert_eq!(err(&a).1, "invalid_request");
    assert!(err(&a).2.contains("grant_type"));
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(err(&a).1, "invalid_request");
    f.srv.finish().await;
}

async fn oauth_refresh_token_and_client_credentials(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", true, None).await;
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    let first_access = j["access_token"].as_str().unwrap().to_string();
    let refresh = |rt: String, id: String, secret: String| async move {
        srv.form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await
    };
    let a = refresh(rt.clone(), id.clone(), secret.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let second_access = a.json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_access, first_access);
    assert!(
        a.json().get("refresh_token").is_none(),
        "no new refresh token on refresh"
    );
    let identity = format!("/id/{}/{}?format=json", f.org_id, f.user_id);
    assert_eq!(srv.get(&identity, Some(&second_access)).await.status, 200);
    // Another client cannot use it.
    let (other_id, other_secret) = oauth_client(s, "Acme", true, None).await;
    let a = refresh(rt.clone(), other_id, other_secret).await;
    assert_eq!(
        a.json()["error_description"],
        "expired access/refresh token"
    );
    // Revoking the refresh token ends it and the access tokens it issued.
    let a = srv.form("/services/oauth2/revoke", &[("token", &rt)]).await;
    assert_eq!(a.status, 200);
    assert_eq!(srv.get(&identity, Some(&second_access)).await.status, 403);
    assert_eq!(srv.get(&identity, Some(&first_access)).await.status, 403);
    let a = refresh(rt, id.clone(), secret.clone()).await;
    assert_eq!(a.json()["error"], "invalid_grant");
    // Deactivation revokes refresh tokens too (R-T8).
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    s.deactivate(&cli(), USER).await.unwrap();
    s.reactivate(&cli(), USER).await.unwrap();
    assert_eq!(
        refresh(rt, id.clone(), secret.clone()).await.json()["error"],
        "invalid_grant"
    );

    // client_credentials: only with a run-as user.
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(
        a.json()["error_description"],
        "no client credentials user enabled"
    );
    add_user(
        s,
        "Acme",
        "integration@acme.test",
        Some("API Only Integration"),
    )
    .await;
    let (cc_id, cc_secret) = oauth_client(s, "Acme", false, Some("integration@acme.test")).await;
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", &cc_secret),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let j = a.json();
    assert!(
        j["id"].as_str().unwrap().ends_with(&id18(
            &s.show_user(&cli(), "integration@acme.test")
                .await
                .unwrap()
                .user
                .id
        ))
    );
    let row = &s
        .login_history(&cli(), None, Some("integration@acme.test"), 1)
        .await
        .unwrap()[0];
    assert_eq!(
        (
            row.login_type.as_str(),
            row.status.as_str(),
            row.client.as_str()
        ),
        ("Remote Access 2.0", "Success", cc_id.as_str())
    );
    s.deactivate(&cli(), "integration@acme.test").await.unwrap();
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", &cc_secret),
            ],
        )
        .await;
    assert_eq!(a.json()["error_description"], "inactive user");
    assert_eq!(
        last_status(s, "integration@acme.test").await,
        "User is inactive"
    );
    let a = srv
        .form(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &cc_id),
                ("client_secret", "nope"),
            ],
        )
        .await;
    assert_eq!(a.json()["error"], "invalid_client");
    f.srv.finish().await;
}

async fn oauth_revoke_introspect_userinfo_and_identity(b: Backend) {
    let f = fixture(b).await;
    let srv = &f.srv;
    let s = srv.services();
    let (id, secret) = oauth_client(s, "Acme", true, None).await;
    let j = password_grant(srv, &id, &secret, USER, &format!("{PW}{}", f.token))
        .await
        .json();
    let access = j["access_token"].as_str().unwrap().to_string();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    // Identity URL, both ways of passing the token, both id lengths.
    let path = format!("/id/{}/{}", id18(&f.org_id), id18(&f.user_id));
    let a = srv.get(&format!("{path}?format=json"), Some(&access)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let idj = a.json();
    assert_eq!(idj["user_id"], id18(&f.user_id).as_str());
    assert_eq!(idj["organization_id"], id18(&f.org_id).as_str());
    assert_eq!(idj["username"], USER);
    assert_eq!(idj["display_name"], "Ada Lovelace");
    assert_eq!(idj["id"], format!("{}{path}", srv.base).as_str());
    assert_eq!(
        idj["urls"]["partner"],
        format!("{}/services/Soap/u/{{version}}/{}", srv.base, f.org_id).as_str()
    );
    let q = format!(
        "/id/{}/{}?format=json&version=59.0&oauth_token={}",
        f.org_id, f.user_id, access
    );
    let a = srv.get(&q, None).await;
    assert_eq!(a.status, 200);
    assert!(
        a.json()["urls"]["rest"]
            .as_str()
            .unwrap()
            .ends_with("/services/data/v59.0/")
    );
    assert_eq!(
        srv.get(&format!("{path}?format=xml"), Some(&access))
            .await
            .status,
        406
    );
    // Someone else's identity: refused.
    let bob = add_user(s, "Acme", "bob@acme.test", None).await;
    let a = srv
        .get(&format!("/id/{}/{bob}", f.org_id), Some(&access))
        .await;
    assert_eq!((a.status, a.text.as_str()), (403, "Bad_Id"));
    let a = srv.get(&path, Some("00D000000000001!junk")).await;
    assert_eq!((a.status, a.text.as_str()), (403, "Bad_OAuth_Token"));
    // UserInfo.
    let a = srv.get("/services/oauth2/userinfo", Some(&access)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["preferred_username"], USER);
    // Introspection: client-authenticated (RFC 7662).
    let introspect = |token: &str, id: &str, secret: &str| {
        let (token, id, secret) = (token.to_string(), id.to_string(), secret.to_string());
        async move {
            srv.form(
                "/services/oauth2/introspect",
                &[
                    ("token", &token),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    };
    let a = introspect(&access, &id, &secret).await;
    assert_eq!(a.status, 200);
    let ij = a.json();
    assert_eq!(ij["active"], true);
    assert_eq!(ij["username"], USER);
    assert_eq!(ij["client_id"], id.as_str());
    assert_eq!(ij["token_type"], "access_token");
    assert!(ij["exp"].as_i64().unwrap() > ij["iat"].as_i64().unwrap());
    let a = introspect(&rt, &id, &secret).await;
    assert_eq!(a.json()["token_type"], "refresh_token");
    assert_eq!(introspect(&access, &id, "wrong").await.status, 401);
    assert_eq!(
        introspect("junk", &id, &secret).await.json(),
        serde_json::json!({"active": false})
    );
    // A client of another org sees nothing (R-M1).
    s.create_org(&cli(), "Other").await.unwrap();
    let (other_id, other_secret) = {
        let (row, sec) = s
            .create_oauth_client(
                &cli(),
                "Other",
                "spy",
                &keyward::service::oauth::ClientOptions::default(),
            )
            .await
            .unwrap();
        (row.client_id, sec.0)
    };
    assert_eq!(
        introspect(&access, &other_id, &other_secret).await.json()["active"],
        false
    );
    // Revoke the access token: everything refuses it; a second revoke is an error.
    assert_eq!(
        srv.form("/services/oauth2/revoke", &[("token", &access)])
            .await
            .status,
        200
    );
    assert_eq!(
        introspect(&access, &id, &secret).await.json()["active"],
        false
    );
    assert_eq!(srv.get(&path, Some(&access)).await.status, 403);
    assert_eq!(
        srv.get("/services/oauth2/userinfo", Some(&access))
            .await
            .status,
        403
    );
    let a = srv
        .form("/services/oauth2/revoke", &[("token", &access)])
        .await;
    assert_eq!(
        (a.status, a.json()["error"].as_str().unwrap()),
        (400, "invalid_token")
    );
    // A SOAP session is an access token too, and the revoke endpoint ends it.
    let sid = login(srv, USER, &format!("{PW}{}", f.token))
        .await
        .xml("sessionId")
        .unwrap();
    assert_eq!(srv.get(&path, Some(&sid)).await.status, 200);
    assert_eq!(
        srv.get(&format!("/services/oauth2/revoke?token={sid}"), None)
            .await
            .status,
        200
    );
    assert_eq!(srv.get(&path, Some(&sid)).await.status, 403);
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
    node_b_services.db.close().await;
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

async fn r_l11_forwarded_for_only_from_trusted_proxies(b: Backend) {
    // Without trusted proxies, X-Forwarded-For is ignored: 127.0.0.1 is the client.
    let f = fixture(b).await;
    let s = f.srv.services();
    s.add_trusted_range(&cli(), "Acme", "10.9.0.0/16", None, "office")
        .await
        .unwrap();
    let spoof = |srv: &TestServer, xff: &str| {
        let r = srv
            .http
            .post(format!("{}{SOAP}", srv.base))
            .header("Content-Type", "text/xml")
            .header("X-Forwarded-For", xff.to_string())
            .body(login_envelope(USER, PW));
        async move { common::server::answer(r.send().await.unwrap()).await }
    };
    let a = spoof(&f.srv, "10.9.1.1").await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN",
        "spoofed header ignored"
    );
    let row = &s.login_history(&cli(), None, Some(USER), 1).await.unwrap()[0];
    assert_eq!(row.source_ip, "127.0.0.1");
    let env = f.srv.stop().await;
    // 127.0.0.1 is now a trusted proxy: the right-most untrusted entry is the client.
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    let a = spoof(&srv, "203.0.113.5, 10.9.1.1").await;
    assert_eq!(
        a.status, 200,
        "the office address behind the proxy is trusted: {}",
        a.text
    );
    assert_eq!(
        s.login_history(&cli(), None, Some(USER), 1).await.unwrap()[0].source_ip,
        "10.9.1.1"
    );
    let a = spoof(&srv, "10.9.1.1, 203.0.113.5").await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    assert_eq!(
        s.login_history(&cli(), None, Some(USER), 1).await.unwrap()[0].source_ip,
        "203.0.113.5"
    );
    // A byte that is not UTF-8 in the client's part of the header does not hide the address
    // the proxy appended to it.
    let r = srv
        .http
        .post(format!("{}{SOAP}", srv.base))
        .header("Content-Type", "text/xml")
        .header(
            "X-Forwarded-For",
            reqwest::header::HeaderValue::from_bytes(b"\x80junk, 198.51.100.9").unwrap(),
        )
        .body(login_envelope(USER, PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let row = &s.login_history(&cli(), None, Some(USER), 1).await.unwrap()[0];
    assert_eq!(row.source_ip, "198.51.100.9");
    srv.finish().await;
}

/// A delegated-authentication endpoint (Salesforce's protocol) that accepts one password and
/// records what it was asked.
async fn sso_endpoint(
    accept: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sso", listener.local_addr().unwrap());
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                let ok = body.contains(&format!("<password>{accept}</password>"));
                log.lock().unwrap().push(body);
                let answer = format!(
                    "<?xml version=\"1.0\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><AuthenticateResult xmlns=\"urn:authentication.soap.sforce.com\"><Authenticated>{ok}</Authenticated></AuthenticateResult></soapenv:Body></soapenv:Envelope>"
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

async fn r_l7_delegated_authentication(b: Backend) {
    // The test's endpoint is plain http on loopback: allowed here, as an operator would.
    let env = common::Env::new_with(b, |s| {
        s.with_delegated_auth(keyward::delegated::DelegatedSettings {
            allow_private_addresses: true,
            allow_http: true,
            ..Default::default()
        })
    })
    .await;
    let f = fixture_on(env).await;
    let srv = &f.srv;
    let s = srv.services();
    s.create_profile(
        &cli(),
        "Acme",
        "SSO",
        Permissions {
            api_enabled: true,
            sso_enabled: true,
            ..Permissions::default()
        },
    )
    .await
    .unwrap();
    add_user(s, "Acme", "sso@acme.test", Some("SSO")).await;
    // No endpoint configured yet: the service counts as down.
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(
        last_status(s, "sso@acme.test").await,
        "Your company's authentication service is down"
    );
    let (url, seen) = sso_endpoint("corp-secret").await;
    s.set_delegated_auth(&cli(), "Acme", Some(&url))
        .await
        .unwrap();
    // Accepted: no token needed from an untrusted address (R-L7), and no local hash.
    let before = s.hasher.invocations();
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(s.hasher.invocations(), before);
    let asked = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        asked.contains("<Authenticate xmlns=\"urn:authentication.soap.sforce.com\">"),
        "{asked}"
    );
    assert!(asked.contains("<username>sso@acme.test</username>"));
    assert!(asked.contains("<sourceIp>127.0.0.1</sourceIp>"));
    // Rejected: the generic answer, counted as a wrong password.
    let a = login(srv, "sso@acme.test", "not-it").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(last_status(s, "sso@acme.test").await, "Invalid password");
    // Unreachable: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    s.set_delegated_auth(&cli(), "Acme", Some(&format!("http://{closed}/sso")))
        .await
        .unwrap();
    let a = login(srv, "sso@acme.test", "corp-secret").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    assert_eq!(
        last_status(s, "sso@acme.test").await,
        "Your company's authentication service is down"
    );
    f.srv.finish().await;
}

const METRICS_TOKEN: &str = "metrics-token-0123456789";

async fn metrics_health_request_ids_and_security_headers(b: Backend) {
    let f = fixture_with(b, |c| {
        c.server.metrics_token = keyward::config::ConfigSecret(METRICS_TOKEN.into())
    })
    .await;
    let srv = &f.srv;
    login(srv, USER, &format!("{PW}{}", f.token)).await;
    login(srv, USER, PW).await;
    // The statuses would tell which usernames exist: only with the token (R-L4).
    assert_eq!(srv.get("/metrics", None).await.status, 401);
    assert_eq!(
        srv.get("/metrics", Some("wrong-token-0123456789"))
            .await
            .status,
        401
    );
    let a = srv.get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(a.status, 200);
    assert!(
        a.text
            .contains("keyward_logins_total{login_type=\"SOAP Partner\",status=\"Success\"} 1"),
        "{}",
        a.text
    );
    assert!(a.text.contains("keyward_logins_total{login_type=\"SOAP Partner\",status=\"Failed: API security token required\"} 1"));
    assert!(a.text.contains("keyward_hash_queue_depth 0"));
    assert!(a.text.contains("keyward_outbox_backlog "));
    let a = srv.get("/healthz", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "ok");
    // A request id on every answer; a sane one from the client is kept.
    assert_eq!(a.header("x-request-id").len(), 20);
    let r = srv
        .http
        .get(format!("{}/healthz/", srv.base))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = srv
        .http
        .get(format!("{}/healthz", srv.base))
        .header("X-Request-Id", "bad id\"<>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id\"<>");
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
        "cache-control",
    ] {
        assert!(!a.header(h).is_empty(), "{h}");
    }
    assert_eq!(srv.get("/nothing/here", None).await.status, 404);
    // Without a configured token there is no /metrics at all.
    let env = f.srv.stop().await;
    let srv = TestServer::on(env, |_| {}).await;
    let a = srv.get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(a.status, 404);
    assert!(a.text.contains("server.metrics_token"));
    let v: Value = srv.get("/healthz", None).await.json();
    assert_eq!(
        v["database"],
        match b {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    srv.finish().await;
}

async fn slow_clients_are_cut_off_after_the_header_timeout(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start_with(b, |c| c.server.header_timeout_seconds = 1).await;
    let host = srv.base.trim_start_matches("http://").to_string();
    // Half a request head, then nothing: the server closes the connection, it does not wait.
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(b"POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection is closed the same way.
    let mut idle = tokio::net::TcpStream::connect(&host).await.unwrap();
    for conn in [&mut slow, &mut idle] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            conn.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "the server kept a stalled connection open");
    }
    // The server still answers others.
    assert_eq!(srv.get("/healthz", None).await.status, 200);
    srv.finish().await;
}

/// Issue 5 item 2, the cases `malformed_soap_gets_a_fault_and_changes_nothing` does not cover:
/// NUL characters, overlong fields, header floods, duplicate and unknown form fields. Each gets
/// a specific error; none writes anything but the login-history row of an attempt that parsed.
async fn hostile_fields_headers_and_forms_get_specific_errors(b: Backend) {
    let f = fixture(b).await;
    let s = f.srv.services();
    let (id, secret) = oauth_client(s, "Acme", false, None).await;
    let before = counts(s).await;
    // A NUL character reference is not XML 1.0.
    let nul = login_envelope(USER, "PASSWORD").replace("PASSWORD", "Passw0rd&#0;");
    let a = f.srv.soap(SOAP, &nul).await;
    assert_eq!(a.status, 500);
    assert!(
        a.xml("faultstring")
            .unwrap()
            .contains("not well-formed XML"),
        "{}",
        a.text
    );
    // Overlong username and password: refused before any lookup or hash.
    let long = "a".repeat(5000);
    for (user, pw, field) in [
        (format!("{long}@acme.test"), PW.to_string(), "username"),
        (USER.to_string(), long.clone(), "password"),
    ] {
        let a = login(&f.srv, &user, &pw).await;
        assert_eq!(a.status, 500, "{field}");
        assert!(
            a.xml("faultstring")
                .unwrap()
                .contains(&format!("{field} is longer than 1000 characters")),
            "{field}: {}",
            a.text
        );
    }
    assert_eq!(counts(s).await, before, "nothing was written");
    // Header floods: too many headers, or one enormous one, are refused by the HTTP layer.
    let host = f.srv.base.trim_start_matches("http://").to_string();
    let mut many = format!("POST {SOAP} HTTP/1.1\r\nHost: {host}\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    many.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    let answer = raw_request(&host, many.as_bytes(), b"").await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let huge = format!(
        "POST {SOAP} HTTP/1.1\r\nHost: {host}\r\nX-Huge: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "x".repeat(1024 * 1024)
    );
    let answer = raw_request(&host, huge.as_bytes(), b"").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // OAuth: duplicate and unknown grant types, a NUL in the password.
    for (pairs, error) in [
        (
            vec![("grant_type", "password"), ("grant_type", "password")],
            "invalid_request",
        ),
        (
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            "unsupported_grant_type",
        ),
        // No grant type at all: Salesforce's answer.
        (vec![], "unsupported_grant_type"),
    ] {
        let mut all = pairs.clone();
        all.extend([
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        let a = f.srv.form(TOKEN, &all).await;
        assert_eq!(a.status, 400, "{pairs:?}: {}", a.text);
        assert_eq!(a.json()["error"], error, "{pairs:?}: {}", a.text);
    }
    assert_eq!(counts(s).await, before, "nothing was written");
    let a = password_grant(&f.srv, &id, &secret, USER, "Passw0rd\0!").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(last_status(s, USER).await, "Invalid password");
    f.srv.finish().await;
}

/// A request from `ip`, as the trusted proxy 127.0.0.1 forwards it.
async fn from_ip(
    srv: &TestServer,
    ip: &str,
    path: &str,
    content_type: &str,
    body: String,
) -> Answer {
    srv.post_from(ip, path, content_type, body).await
}

async fn soap_from(srv: &TestServer, ip: &str, user: &str, secret: &str) -> Answer {
    from_ip(srv, ip, SOAP, "text/xml", login_envelope(user, secret)).await
}

async fn grant_from(
    srv: &TestServer,
    ip: &str,
    client: &(String, String),
    user: &str,
    pw: &str,
) -> Answer {
    let body = common::server::form_body(&[
        ("grant_type", "password"),
        ("client_id", &client.0),
        ("client_secret", &client.1),
        ("username", user),
        ("password", pw),
    ]);
    from_ip(srv, ip, TOKEN, "application/x-www-form-urlencoded", body).await
}

/// Issue 5: a per-address limit on failed logins, shared by every node through the database.
/// Failures that proved no password count (wrong password, unknown user), and since issue 14 a
/// right password without its token (never towards the user's lockout). From the limit on, the
/// address is refused before anything is looked up — no hash, no login-history row, no lockout
/// count — on SOAP, OAuth and every node, while other addresses log in; it ends with its window or
/// the operator's `clear`.
async fn address_limit_refuses_a_guessing_address_before_any_hash_on_every_node(b: Backend) {
    use keyward::domain::throttle::AddressLimit;
    let limit = AddressLimit {
        failures: 3,
        window: Duration::minutes(15),
        exempt: vec![keyward::domain::ip::IpRange::parse("192.0.2.0/24", None).unwrap()],
    };
    let env = common::Env::new_with(b, {
        let limit = limit.clone();
        move |s| s.with_address_limit(limit)
    })
    .await;
    let srv = TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    add_user(s, "Acme", USER, None).await;
    let token = latest_token(&srv.mails().await, USER);
    let good = format!("{PW}{token}");
    let client = oauth_client(s, "Acme", false, None).await;
    let guesser = "203.0.113.66";

    // Three failures: the right password without the token (it counts against the address,
    // not towards the user's lockout), a wrong password (SOAP), an unknown user (OAuth).
    let a = soap_from(&srv, guesser, USER, PW).await;
    assert_eq!(
        a.xml("exceptionCode").unwrap(),
        "LOGIN_MUST_USE_SECURITY_TOKEN"
    );
    let a = soap_from(&srv, guesser, USER, "wrong-password").await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "INVALID_LOGIN");
    let a = grant_from(&srv, guesser, &client, "nobody@acme.test", "guess").await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        s.metrics.addresses_limited(),
        1,
        "the third failure engaged the limit"
    );

    // Now even the right credentials are refused, before any hash.
    let hashes = s.hasher.invocations();
    let history = history_statuses(s, USER).await.len();
    let a = soap_from(&srv, guesser, USER, &good).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.xml("exceptionCode").unwrap(), "LOGIN_RATE_EXCEEDED");
    assert_eq!(a.xml("faultcode").unwrap(), "sf:LOGIN_RATE_EXCEEDED");
    assert_eq!(
        a.header("retry-after"),
        "900",
        "the window started with the first guess"
    );
    let a = grant_from(&srv, guesser, &client, USER, &good).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(a.json()["error_code"], "LOGIN_RATE_EXCEEDED");
    assert_eq!(a.header("retry-after"), "900");
    // jsforce and simple-salesforce read the SOAP fault's exceptionCode and message.
    assert_eq!(
        s.hasher.invocations(),
        hashes,
        "no hash work for a refused address"
    );
    assert_eq!(
        history_statuses(s, USER).await.len(),
        history,
        "no login-history rows"
    );
    let user = s.show_user(&cli(), USER).await.unwrap();
    assert_eq!(
        user.user.failed_logins, 1,
        "only the wrong password counts towards the user's lockout"
    );

    // Other addresses are not affected, nor an exempt one (an office NAT).
    for ip in ["198.51.100.7", "192.0.2.10"] {
        let a = soap_from(&srv, ip, USER, &good).await;
        assert_eq!(a.status, 200, "{ip}: {}", a.text);
    }
    // IPv6 addresses count per /64: another address of a refused /64 is refused too.
    for _ in 0..3 {
        soap_from(&srv, "2001:db8:5:6::1", USER, "wrong-password").await;
    }
    let a = soap_from(&srv, "2001:db8:5:6:aaaa::2", USER, &good).await;
    assert_eq!(a.xml("exceptionCode").unwrap(), "LOGIN_RATE_EXCEEDED");
    let a = soap_from(&srv, "2001:db8:5:7::1", USER, &good).await;
    assert_eq!(a.status, 200, "another /64: {}", a.text);

    // A burst sent all at once cannot pass the check before its failures are counted: of 30
    // parallel guesses, exactly the limit are hashed and counted, the rest refused.
    let burst = "203.0.113.77";
    let hashes = s.hasher.invocations();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let services = srv.env.services.clone();
            tokio::spawn(async move {
                let req = keyward::service::login::LoginRequest::new(
                    format!("guess{i}@acme.test"),
                    keyward::domain::token::SuppliedSecret::split(&Password::new("guess")),
                    keyward::domain::login::Channel::SoapPartner,
                    burst.parse().unwrap(),
                );
                services.login_detached(req).await.unwrap().outcome
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        if t.await.unwrap() == keyward::domain::login::LoginOutcome::AddressLimited {
            refused += 1;
        }
    }
    // The check may over-count when an attempt ends while another reads the count, never
    // under-count: at most the limit are hashed, and each hashed one is counted.
    let hashed = s.hasher.invocations() - hashes;
    assert!((1..=3).contains(&hashed), "{hashed} of the burst hashed");
    assert_eq!(refused, 30 - hashed);
    let counted = s.limited_addresses(&cli(), 1).await.unwrap();
    let counted = counted.iter().find(|a| a.address == burst).unwrap();
    assert_eq!(counted.failures, hashed as i64);
    // One at a time the count is exact: the address gets the rest of its limit, no more.
    for i in 0.. {
        let a = soap_from(&srv, burst, &format!("late{i}@acme.test"), "guess").await;
        if a.xml("exceptionCode").as_deref() == Some("LOGIN_RATE_EXCEEDED") {
            break;
        }
        assert!(i < 3, "more than the limit hashed");
    }
    assert_eq!(s.hasher.invocations() - hashes, 3);
    assert_eq!(s.address_in_flight(burst.parse().unwrap()), 0);

    // A second node over the same database refuses the address too.
    let node_b = srv
        .env
        .second_node(|s| s.with_address_limit(limit.clone()))
        .await;
    let req = |ip: &str| {
        keyward::service::login::LoginRequest::new(
            USER,
            keyward::domain::token::SuppliedSecret::split(&Password::new(good.clone())),
            keyward::domain::login::Channel::SoapPartner,
            ip.parse().unwrap(),
        )
    };
    let limited = keyward::domain::login::LoginOutcome::AddressLimited;
    assert_eq!(node_b.login(req(guesser)).await.unwrap().outcome, limited);

    // The operator sees it (an admin of an org does not: the limit is the deployment's) …
    let listed = s.limited_addresses(&cli(), 0).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|a| a.address.as_str()).collect();
    // Most failures first, then by address.
    assert_eq!(names, ["2001:db8:5:6::/64", guesser, burst]);
    assert_eq!(listed[1].failures, 3);
    assert!(listed[1].refused_until.is_some());
    let admin = Actor::User {
        org_id: user.user.org_id.clone(),
        user_id: user.user.id.clone(),
        username: USER.into(),
        admin: true,
    };
    assert!(s.limited_addresses(&admin, 0).await.is_err());
    assert!(s.clear_address(&admin, guesser).await.is_err());
    // … and clears it: the address logs in at once.
    assert!(s.clear_address(&cli(), "not-an-address").await.is_err());
    assert_eq!(s.clear_address(&cli(), guesser).await.unwrap(), guesser);
    let a = soap_from(&srv, guesser, USER, &good).await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Otherwise the window ends by itself.
    srv.env.clock.advance(Duration::minutes(14));
    let r = node_b.login(req("2001:db8:5:6::9")).await.unwrap();
    assert_eq!(r.outcome, limited);
    srv.env.clock.advance(Duration::minutes(1));
    let a = soap_from(&srv, "2001:db8:5:6::1", USER, &good).await;
    assert_eq!(a.status, 200, "the window ended: {}", a.text);
    // Housekeeping removes the ended windows; the cleared address had no row left.
    assert_eq!(s.purge_address_failures().await.unwrap(), 2);
    assert!(s.limited_addresses(&cli(), 1).await.unwrap().is_empty());
    node_b.db.close().await;
    srv.finish().await;
}

/// Issue 5: the hash pool's waiting room is bounded, and a full room turns away the address
/// asking the most of it. The test holds the pool's one place, so the room (four) fills
/// deterministically: a flood of 120 unknown-user logins from three addresses gets 116
/// immediate 503s and four waiters; a login from a fourth address then takes a flood waiter's
/// place instead of being refused, and logs in once the pool is free.
async fn a_flood_from_some_addresses_does_not_refuse_or_starve_another(b: Backend) {
    let env = common::Env::new_with(b, |mut s| {
        s.hasher = std::sync::Arc::new(
            keyward::crypto::Hasher::new(common::cheap_hash(), 1)
                .unwrap()
                .with_max_queue(4),
        );
        s
    })
    .await;
    let srv = std::sync::Arc::new(
        TestServer::on(env, |c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await,
    );
    let s = srv.services();
    s.create_org(&cli(), "Acme").await.unwrap();
    add_user(s, "Acme", USER, None).await;
    let good = format!("{PW}{}", latest_token(&srv.mails().await, USER));

    let held = s.hasher.hold_place().await.unwrap();
    let flood: Vec<_> = (0..120)
        .map(|i| {
            let srv = srv.clone();
            tokio::spawn(async move {
                let ip = format!("203.0.113.{}", 1 + i % 3);
                let a = soap_from(&srv, &ip, &format!("nobody{i}@acme.test"), "guess").await;
                (a.status, a.xml("faultcode").unwrap_or_default())
            })
        })
        .collect();
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "{what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    until("the flood fills the room", || {
        s.hasher.queue_depth() == 4 && s.hasher.refusals() == 116
    })
    .await;
    let good_login = {
        let srv = srv.clone();
        tokio::spawn(async move { soap_from(&srv, "198.51.100.20", USER, &good).await })
    };
    until("the good login takes a flood waiter's place", || {
        s.hasher.refusals() == 117
    })
    .await;
    assert_eq!(s.hasher.queue_depth(), 4);
    drop(held);
    let a = good_login.await.unwrap();
    assert_eq!(a.status, 200, "the good address was refused: {}", a.text);
    let (mut busy, mut refused) = (0, 0);
    for t in flood {
        match t.await.unwrap() {
            (500, code) if code == "sf:INVALID_LOGIN" => refused += 1,
            (503, code) if code == "sf:SERVER_UNAVAILABLE" => busy += 1,
            other => panic!("unexpected answer to the flood: {other:?}"),
        }
    }
    assert_eq!((busy, refused), (117, 3));
    assert_eq!(s.hasher.queue_depth(), 0);
    std::sync::Arc::into_inner(srv).unwrap().finish().await;
}
