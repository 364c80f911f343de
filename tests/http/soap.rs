//! SOAP `login` as Salesforce's clients parse it: the success and fault shapes (R-L3), every
//! path variant, chunked, gzipped and absolute-form requests, the Enterprise endpoint.

use super::support::{
    INVALID_LOGIN, PW, SOAP, USER, add_user, cli, fixture, id18, last_status, login,
    office_only_profile, raw_request,
};
use crate::common::server::{login_envelope, login_envelope_ns};
use crate::common::{Backend, latest_token};
use crate::on_both;
use std::io::Write;

on_both!(
    r_l3_soap_login_success_has_the_exact_shape_clients_parse,
    r_l3_soap_faults_are_exactly_salesforces,
    soap_accepts_every_path_variant_chunked_gzip_and_absolute_form,
    soap_enterprise_endpoint_uses_the_enterprise_namespaces,
);

const MUST_USE_TOKEN: &str = "LOGIN_MUST_USE_SECURITY_TOKEN: Invalid username, password, \
security token; or user locked out. Are you at a new location? When accessing Salesforce--either \
via a desktop client or the API--from outside of your company\u{2019}s trusted networks, you must \
add a security token to your password to log in. To get your new security token, log in to \
Salesforce. From your personal settings, enter Reset My Security Token in the Quick Find box, \
then select Reset My Security Token.";

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
    let rows = s
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
        .await
        .unwrap();
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
    let rows = s
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
        .await
        .unwrap();
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
        .login_history(&cli(), None, &crate::common::history_query(Some(USER), 1))
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
