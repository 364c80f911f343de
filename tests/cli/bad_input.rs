//! Bad input on the command line gets one line saying why and changes nothing.

use super::support::Kw;
use crate::common::Backend;
use crate::on_both;

on_both!(cli_bad_input_gives_one_line_and_changes_nothing);

/// Everything an admin could see, to compare before and after a refused command.
fn snapshot(kw: &Kw) -> String {
    let mut s = String::new();
    for args in [
        vec!["org", "list"],
        vec!["user", "list", "Acme"],
        vec!["network", "list", "Acme"],
        vec!["profile", "list", "Acme"],
        vec!["profile", "login-ip", "list", "Acme", "Standard User"],
        vec!["policy", "show", "Acme"],
        vec!["audit-trail", "Acme"],
        vec!["mail", "list"],
        vec!["oauth", "client", "list", "Acme"],
    ] {
        s.push_str(&kw.json(&args).to_string());
        s.push('\n');
    }
    s
}

async fn cli_bad_input_gives_one_line_and_changes_nothing(b: Backend) {
    let kw = Kw::new(b).await;
    kw.acme_with_ada("ada@acme.test", "First-Passw0rd");
    let before = snapshot(&kw);
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["org", "create", "--name", "acme"],
            None,
            "already exists",
        ),
        (
            vec!["address-limit", "clear", "not-an-address"],
            None,
            "is not an IP address",
        ),
        (
            vec!["address-limit", "clear", "203.0.113.9"],
            None,
            "203.0.113.9 has no failed logins on record",
        ),
        (
            vec!["org", "create", "--name", ""],
            None,
            "must not be empty",
        ),
        (
            vec!["org", "create", "--name", "00D000000000001"],
            None,
            "must not look like an org id",
        ),
        (
            vec![
                "org",
                "set-delegated-auth",
                "Acme",
                "https://sso.acme.test/?key=s3cret",
            ],
            None,
            "no query string",
        ),
        (
            vec!["network", "add", "Acme", "0.0.0.0/0"],
            None,
            "too wide",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Nope",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "no org named \"Nope\"",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "00D000000000001",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "no org with id",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "ADA@acme.test",
                "--email",
                "x@acme.test",
            ],
            None,
            "already taken",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "not-an-email",
                "--email",
                "x@acme.test",
            ],
            None,
            "invalid username",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "nope",
            ],
            None,
            "invalid email",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--profile",
                "Ghost",
            ],
            None,
            "no profile \"Ghost\"",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--password-stdin",
            ],
            Some("weak"),
            "too short",
        ),
        (
            vec![
                "user",
                "create",
                "--org",
                "Acme",
                "--username",
                "x@acme.test",
                "--email",
                "x@acme.test",
                "--password-stdin",
            ],
            Some("abcdefghij"),
            "too weak",
        ),
        (
            vec!["user", "set-password", "ada@acme.test", "--password-stdin"],
            Some("First-Passw0rd"),
            "used recently",
        ),
        (
            vec!["user", "set-password", "ada@acme.test", "--password-stdin"],
            Some(""),
            "no password on stdin",
        ),
        (
            vec!["user", "set-password", "ada@acme.test"],
            None,
            "--password-stdin",
        ),
        (
            vec!["user", "show", "005000000000001"],
            None,
            "no user with id",
        ),
        (
            vec!["user", "show", "005000000000001AA9"],
            None,
            "malformed id",
        ),
        (
            vec!["user", "deactivate", "nobody@acme.test"],
            None,
            "no user nobody@acme.test",
        ),
        (
            vec!["token", "reset", "00D000000000001"],
            None,
            "is not a user id",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.9", "10.0.0.1"],
            None,
            "is after end",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.1", "::1"],
            None,
            "not the same IP version",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.300", "10.0.0.1"],
            None,
            "invalid IP address",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.0/40"],
            None,
            "invalid CIDR",
        ),
        (
            vec!["network", "add", "Acme", "10.0.0.300"],
            None,
            "invalid IP address \"10.0.0.300\"",
        ),
        (
            vec!["network", "remove", "Acme", "0IP000000000001"],
            None,
            "no trusted IP range",
        ),
        (
            vec!["network", "remove", "Acme", "0LI000000000001"],
            None,
            "not a trusted IP range id",
        ),
        (
            vec![
                "profile",
                "create",
                "--org",
                "Acme",
                "--name",
                "standard user",
            ],
            None,
            "already has a profile",
        ),
        (
            vec![
                "profile",
                "create",
                "--org",
                "Acme",
                "--name",
                "X",
                "--api-only",
                "--no-api",
            ],
            None,
            "contradict",
        ),
        (
            vec!["profile", "login-ip", "add", "Acme", "Ghost", "10.0.0.0/8"],
            None,
            "no profile",
        ),
        (
            vec!["policy", "set", "Acme", "--session-seconds", "5"],
            None,
            "session-seconds must be between",
        ),
        (vec!["policy", "set", "Acme"], None, "nothing to change"),
        (
            vec!["policy", "set", "Acme", "--complexity", "extreme"],
            None,
            "unknown complexity",
        ),
        (
            vec!["org", "set-delegated-auth", "Acme", "ftp://sso"],
            None,
            "invalid URL",
        ),
        (
            vec!["login-history", "--limit", "0"],
            None,
            "--limit must be between",
        ),
        (
            vec!["login-history", "--user", "ghost@acme.test"],
            None,
            "no user ghost@acme.test",
        ),
        (
            vec!["mail", "show", "02s000000000001"],
            None,
            "no mail with id",
        ),
        (vec!["init"], None, "already has orgs"),
    ];
    for (args, stdin, expect) in cases {
        let o = kw.run_with(&args, stdin);
        assert_ne!(o.code, 0, "{args:?} succeeded");
        assert!(o.stdout.is_empty(), "{args:?} printed {:?}", o.stdout);
        let line = o.stderr.trim_end();
        assert!(
            !line.contains('\n'),
            "{args:?}: more than one line: {line:?}"
        );
        assert!(line.starts_with("error: "), "{args:?}: {line:?}");
        assert!(line.contains(expect), "{args:?}: {line:?} lacks {expect:?}");
        assert!(
            !line.contains("s3cret"),
            "{args:?}: the error repeats a secret: {line:?}"
        );
    }
    assert_eq!(snapshot(&kw), before, "a refused command changed something");
    kw.db.drop_db().await;
}
