//! Hostile input: malformed SOAP (entities, depth, size, bombs) and hostile fields, headers and
//! forms each get a specific error and change nothing.

use super::support::{PW, SOAP, TOKEN, USER, counts, fixture, last_status, login, raw_request};
use crate::common::server::{login_envelope, password_grant};
use crate::common::{Backend, oauth_client};
use crate::on_both;
use std::io::Write;

on_both!(
    malformed_soap_gets_a_fault_and_changes_nothing,
    hostile_fields_headers_and_forms_get_specific_errors,
);

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
    // A consumer key with a NUL names no client, on PostgreSQL (which cannot store one) too.
    let a = password_grant(&f.srv, "3MVG9a\0b", &secret, USER, "Passw0rd!").await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["error"], "invalid_client_id", "{}", a.text);
    let a = password_grant(&f.srv, &id, &secret, USER, "Passw0rd\0!").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "invalid_grant");
    assert_eq!(last_status(s, USER).await, "Invalid password");
    f.srv.finish().await;
}
