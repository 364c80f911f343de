//! docs/clients.md, docs/api.md and docs/integration-tokens.md are tested: every
//! `<!-- doc-test -->` curl example runs, in order, in one shell against a server set up as the
//! page describes, and must print exactly the output shown under it (`{{…}}` stands for one
//! value that differs per machine: an id, a URL, a session); every `<!-- snippet: FILE -->`
//! block must appear word for word in the test program it was copied from, so the client
//! examples are the ones the client suites run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::server::{TestServer, login_envelope};
use common::{Backend, latest_token};
use keyward::domain::secret::Password;
use keyward::service::Actor;
use keyward::service::users::NewUser;
use std::process::Command;

const PAGE: &str = include_str!("../docs/clients.md");

/// The fenced block that starts after line `from`: (info string, text, next line index).
fn fenced(lines: &[&str], from: usize) -> (String, String, usize) {
    let start = (from..lines.len())
        .find(|&i| lines[i].starts_with("```"))
        .expect("a fenced block");
    let info = lines[start].trim_start_matches('`').to_string();
    let end = (start + 1..lines.len())
        .find(|&i| lines[i].starts_with("```"))
        .expect("the end of the fenced block");
    (info, lines[start + 1..end].join("\n"), end + 1)
}

const API_PAGE: &str = include_str!("../docs/api.md");

const INTEGRATION_PAGE: &str = include_str!("../docs/integration-tokens.md");

/// (command, expected output) pairs of the page, in order.
fn examples(page: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "<!-- doc-test -->" {
            let (info, command, next) = fenced(&lines, i + 1);
            assert_eq!(
                info,
                "sh",
                "a doc-test starts with a sh block (line {})",
                i + 2
            );
            let (_, expected, _) = fenced(&lines, next);
            out.push((command, expected));
        }
    }
    out
}

fn placeholder_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '<' | '>' | '"')
}

/// Does `actual` match `expected`, where each `{{name}}` stands for a non-empty run of
/// characters other than whitespace, `<`, `>` and `"`?
fn matches(expected: &str, actual: &str) -> Result<(), String> {
    let mut rest = actual;
    let mut pattern = expected;
    loop {
        let Some(open) = pattern.find("{{") else {
            return if rest == pattern {
                Ok(())
            } else {
                Err(format!("expected {pattern:?}\n   found {rest:?}"))
            };
        };
        let literal = &pattern[..open];
        let Some(tail) = rest.strip_prefix(literal) else {
            return Err(format!(
                "expected {literal:?}\n   found {:?}",
                &rest[..rest.len().min(literal.len() + 40)]
            ));
        };
        let close = pattern[open..].find("}}").map(|c| open + c + 2).unwrap();
        pattern = &pattern[close..];
        let next = pattern.find("{{").map_or(pattern, |n| &pattern[..n]);
        // The value runs up to the first place the next literal text follows it.
        let mut taken = 0;
        let chars: Vec<(usize, char)> = tail.char_indices().collect();
        let mut found = None;
        for (idx, c) in &chars {
            if taken > 0
                && tail[*idx..].starts_with(next)
                && (!next.is_empty() || !placeholder_char(*c))
            {
                found = Some(*idx);
                break;
            }
            if !placeholder_char(*c) {
                break;
            }
            taken += 1;
        }
        let end = match found {
            Some(e) => e,
            None if next.is_empty() && taken > 0 => tail.len(),
            None => {
                return Err(format!(
                    "no value for {} in {:?}",
                    &expected[open..close],
                    &tail[..tail.len().min(80)]
                ));
            }
        };
        rest = &tail[end..];
    }
}

on_both!(
    curl_examples_print_exactly_what_the_page_shows,
    api_examples_print_exactly_what_the_page_shows,
    integration_examples_print_exactly_what_the_page_shows
);

/// Runs the page's examples in one shell with `env`, and compares each output.
fn run_examples(name: &str, page: &str, env: &[(&str, &str)], at_least: usize) {
    let examples = examples(page);
    assert!(examples.len() >= at_least, "{name} lost its examples");
    let mut script = String::new();
    for (i, (command, _)) in examples.iter().enumerate() {
        script.push_str(&format!("echo '@@@ {i}'\n{command}\n"));
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for proxy in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        cmd.env_remove(proxy);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: Vec<&str> = stdout.split("@@@ ").skip(1).collect();
    assert_eq!(outputs.len(), examples.len(), "{stdout}");
    for (i, ((command, expected), output)) in examples.iter().zip(outputs).enumerate() {
        let output = output.split_once('\n').map_or("", |(_, o)| o).trim_end();
        if let Err(e) = matches(expected.trim_end(), output) {
            panic!("example {i} of {name}:\n{command}\n\n{e}");
        }
    }
}

async fn api_examples_print_exactly_what_the_page_shows(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let cli = Actor::Cli("docs".into());
    s.create_org(&cli, "Acme").await.unwrap();
    s.create_user(
        &cli,
        &NewUser {
            org: "Acme",
            username: "grace@acme.test",
            email: "grace@acme.test",
            first_name: "Grace",
            last_name: "Hopper",
            profile: Some("System Administrator"),
        },
        Some(&Password::new("Passw0rd!one")),
    )
    .await
    .unwrap();
    let token = latest_token(&srv.mails().await, "grace@acme.test");
    run_examples(
        "docs/api.md",
        API_PAGE,
        &[
            ("KW_URL", &srv.base),
            ("KW_ADMIN", "grace@acme.test"),
            ("KW_PASSWORD", "Passw0rd!one"),
            ("KW_TOKEN", &token),
        ],
        5,
    );
    srv.finish().await;
}

async fn curl_examples_print_exactly_what_the_page_shows(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let cli = Actor::Cli("docs".into());
    s.create_org(&cli, "Acme").await.unwrap();
    s.create_user(
        &cli,
        &NewUser {
            org: "Acme",
            username: "ada@acme.test",
            email: "ada@acme.test",
            first_name: "Ada",
            last_name: "Lovelace",
            profile: None,
        },
        Some(&Password::new("Passw0rd!one")),
    )
    .await
    .unwrap();
    let (client, secret) = s
        .create_oauth_client(&cli, "Acme", "My integration", &Default::default())
        .await
        .unwrap();
    let token = latest_token(&srv.mails().await, "ada@acme.test");
    run_examples(
        "docs/clients.md",
        PAGE,
        &[
            ("KW_URL", &srv.base),
            ("KW_USER", "ada@acme.test"),
            ("KW_PASSWORD", "Passw0rd!one"),
            ("KW_TOKEN", &token),
            ("KW_CLIENT_ID", &client.client_id),
            ("KW_CLIENT_SECRET", &secret.0),
        ],
        8,
    );
    srv.finish().await;
}

/// An integration token of ada's, made through the services, and its value from the mail file
/// (the only place it appears); an administrator's session for the admin-API examples.
async fn integration_examples_print_exactly_what_the_page_shows(b: Backend) {
    let srv = TestServer::start(b).await;
    let s = srv.services();
    let cli = Actor::Cli("docs".into());
    s.create_org(&cli, "Acme").await.unwrap();
    for (username, first, last, profile, password) in [
        ("ada@acme.test", "Ada", "Lovelace", None, "Passw0rd!one"),
        (
            "grace@acme.test",
            "Grace",
            "Hopper",
            Some("System Administrator"),
            "Passw0rd!two",
        ),
    ] {
        let user = NewUser {
            org: "Acme",
            username,
            email: username,
            first_name: first,
            last_name: last,
            profile,
        };
        s.create_user(&cli, &user, Some(&Password::new(password)))
            .await
            .unwrap();
    }
    let (client, secret) = s
        .create_oauth_client(&cli, "Acme", "My integration", &Default::default())
        .await
        .unwrap();
    s.create_integration_token(&cli, "ada@acme.test", "Nightly sync", None)
        .await
        .unwrap();
    let mails = srv.mails().await;
    let integration_token = mails
        .iter()
        .rev()
        .filter(|m| m.to == "ada@acme.test")
        .find_map(common::Mail::integration_token)
        .expect("the integration token's mail");
    let admin_token = latest_token(&mails, "grace@acme.test");
    let admin_session = srv
        .soap(
            "/services/Soap/u/59.0",
            &login_envelope("grace@acme.test", &format!("Passw0rd!two{admin_token}")),
        )
        .await
        .xml("sessionId")
        .expect("the administrator's session");
    run_examples(
        "docs/integration-tokens.md",
        INTEGRATION_PAGE,
        &[
            ("KW_URL", &srv.base),
            ("KW_USER", "ada@acme.test"),
            ("KW_INTEGRATION_TOKEN", &integration_token),
            ("KW_CLIENT_ID", &client.client_id),
            ("KW_CLIENT_SECRET", &secret.0),
            ("KW_ADMIN_SESSION", &admin_session),
        ],
        4,
    );
    srv.finish().await;
}

/// Each `<!-- snippet: FILE -->` block of a page, checked against FILE; how many there were.
fn check_snippets(name: &str, page: &str) -> usize {
    let lines: Vec<&str> = page.lines().collect();
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        let Some(file) = l
            .trim()
            .strip_prefix("<!-- snippet: ")
            .and_then(|f| f.strip_suffix(" -->"))
        else {
            continue;
        };
        let (_, snippet, _) = fenced(&lines, i + 1);
        let source = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{name} names {file}: {e}"));
        let squash = |s: &str| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            squash(&source).contains(&squash(&snippet)),
            "the snippet at {name} line {} is not in {file}:\n{snippet}",
            i + 1
        );
        n += 1;
    }
    n
}

#[test]
fn client_snippets_are_the_ones_the_client_suites_run() {
    let n = check_snippets("docs/clients.md", PAGE);
    assert!(n >= 5, "docs/clients.md lost its client snippets ({n})");
    let n = check_snippets("docs/integration-tokens.md", INTEGRATION_PAGE);
    assert!(
        n >= 3,
        "docs/integration-tokens.md lost its client snippets ({n})"
    );
}

#[test]
fn placeholders_match_one_value() {
    assert!(matches("a {{x}} b", "a 123 b").is_ok());
    assert!(matches("<id>{{x}}</id>", "<id>00D!abc</id>").is_ok());
    assert!(
        matches(
            "\"{{url}}/id/{{o}}/{{u}}\"",
            "\"http://127.0.0.1:9/id/00D1/0052\""
        )
        .is_ok()
    );
    assert!(matches("<id>{{x}}</id>", "<id></id>").is_err());
    assert!(matches("<id>{{x}}</id>", "<id>a b</id>").is_err());
    assert!(matches("exact", "exact!").is_err());
}
