//! Emails: what each mail says (askama templates in `templates/mail/`) and how it leaves
//! (transports). Queuing and delivery with retries live in `service::outbox`.
//!
//! A mail that carries a secret is composed twice over: the stored body has the redaction
//! marker on the token line, and the secret travels separately, to be put back only by the
//! transport at delivery (R-T2, R-T3). `mail show` and the admin pages never see it.

use askama::Template;

pub mod transport;

/// The token line of R-T5, before the token.
pub const TOKEN_LINE_PREFIX: &str = "Security token (case-sensitive): ";
/// The token line of an integration token's mail, before the token.
pub const INTEGRATION_LINE_PREFIX: &str = "Integration token (case-sensitive): ";
/// The code line of R-U1's verification mail, before the code.
pub const CODE_LINE_PREFIX: &str = "Verification code: ";
/// What stands in place of the token everywhere but the delivered mail.
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    SecurityToken,
    PasswordChanged,
    AccountLocked,
    IdentityVerification,
    EmailChanged,
    IntegrationToken,
    IntegrationExpiring,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::SecurityToken => "security_token",
            MailKind::PasswordChanged => "password_changed",
            MailKind::AccountLocked => "account_locked",
            MailKind::IdentityVerification => "identity_verification",
            MailKind::EmailChanged => "email_changed",
            MailKind::IntegrationToken => "integration_token",
            MailKind::IntegrationExpiring => "integration_expiring",
        }
    }
}

/// A composed email, ready for the outbox. `body` never contains `secret`.
#[derive(Debug, Clone)]
pub struct Email {
    pub kind: MailKind,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub secret: Option<Secret>,
}

/// The secret a mail carries (a token). Never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The recipient as the templates need them.
pub struct Recipient<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

impl Recipient<'_> {
    fn greeting(&self) -> String {
        let name = format!("{} {}", self.first_name, self.last_name);
        let name = name.trim();
        if name.is_empty() {
            self.username.to_string()
        } else {
            name.to_string()
        }
    }
}

#[derive(Template)]
#[template(path = "mail/security_token.txt")]
struct SecurityTokenMail<'a> {
    greeting: &'a str,
    username: &'a str,
    reason: &'a str,
    token_line: &'a str,
    replaces_old: bool,
    grace_hours: u32,
}

/// What a security-token mail says of the token the new one replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousToken {
    /// The first token: there was none.
    None,
    /// It stopped working (a password change, or a reset with no grace period).
    Ended,
    /// A reset in an org with a grace period: it works this many hours more.
    InGrace { hours: u32 },
}

#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
struct PasswordChangedMail<'a> {
    greeting: &'a str,
    username: &'a str,
    how: &'a str,
    when: &'a str,
    sessions_ended: bool,
}

#[derive(Template)]
#[template(path = "mail/account_locked.txt")]
struct AccountLockedMail<'a> {
    greeting: &'a str,
    username: &'a str,
    when: &'a str,
    attempts: u32,
    until_admin: bool,
    until: &'a str,
}

#[derive(Template)]
#[template(path = "mail/verify_identity.txt")]
struct VerifyIdentityMail<'a> {
    greeting: &'a str,
    username: &'a str,
    source_ip: &'a str,
    when: &'a str,
    code_line: &'a str,
}

#[derive(Template)]
#[template(path = "mail/email_changed.txt")]
struct EmailChangedMail<'a> {
    greeting: &'a str,
    username: &'a str,
    when: &'a str,
    by: &'a str,
    old_email: &'a str,
    new_email: &'a str,
}

#[derive(Template)]
#[template(path = "mail/integration_token.txt")]
struct IntegrationTokenMail<'a> {
    greeting: &'a str,
    username: &'a str,
    name: &'a str,
    reason: &'a str,
    token_line: &'a str,
    expires: &'a str,
    rotated: bool,
    grace_until: &'a str,
}

#[derive(Template)]
#[template(path = "mail/integration_expiring.txt")]
struct IntegrationExpiringMail<'a> {
    greeting: &'a str,
    username: &'a str,
    name: &'a str,
    expires: &'a str,
    left: &'a str,
}

/// What an integration token's mail says besides the token.
pub struct IntegrationIssued<'a> {
    pub name: &'a str,
    /// Why it was issued: "you created it", "it replaces …".
    pub reason: &'a str,
    pub expires: &'a str,
    /// Set for a rotation: until when the token it replaces keeps working.
    pub grace_until: Option<&'a str>,
}

/// An integration token's mail: subject `Your new integration token: NAME`, the token alone on
/// its line, like the security token's (R-T2, R-T3).
pub fn integration_token(to: &Recipient, token: &str, issued: &IntegrationIssued) -> Email {
    let greeting = to.greeting();
    let token_line = format!("{INTEGRATION_LINE_PREFIX}{REDACTED}");
    Email {
        kind: MailKind::IntegrationToken,
        to: to.email.to_string(),
        subject: format!("Your new integration token: {}", issued.name),
        body: render(&IntegrationTokenMail {
            greeting: &greeting,
            username: to.username,
            name: issued.name,
            reason: issued.reason,
            token_line: &token_line,
            expires: issued.expires,
            rotated: issued.grace_until.is_some(),
            grace_until: issued.grace_until.unwrap_or(""),
        }),
        secret: Some(Secret(token.to_string())),
    }
}

/// A reminder that an integration token expires soon; `left` is "in 3 days".
pub fn integration_expiring(to: &Recipient, name: &str, expires: &str, left: &str) -> Email {
    let greeting = to.greeting();
    Email {
        kind: MailKind::IntegrationExpiring,
        to: to.email.to_string(),
        subject: format!("Your integration token {name} expires {left}"),
        body: render(&IntegrationExpiringMail {
            greeting: &greeting,
            username: to.username,
            name,
            expires,
            left,
        }),
        secret: None,
    }
}

fn render(t: &impl Template) -> String {
    // The templates are compiled in and take only strings: rendering cannot fail in practice,
    // and a failure would only cost the mail's wording, never its secret.
    t.render()
        .unwrap_or_else(|e| format!("(this mail could not be rendered: {e})\n"))
}

/// R-T5's mail: subject `Your new security token`, the token alone on its line, and what
/// became of the token it replaces.
pub fn security_token(to: &Recipient, token: &str, reason: &str, previous: PreviousToken) -> Email {
    let greeting = to.greeting();
    let token_line = format!("{TOKEN_LINE_PREFIX}{REDACTED}");
    Email {
        kind: MailKind::SecurityToken,
        to: to.email.to_string(),
        subject: "Your new security token".into(),
        body: render(&SecurityTokenMail {
            greeting: &greeting,
            username: to.username,
            reason,
            token_line: &token_line,
            replaces_old: previous != PreviousToken::None,
            grace_hours: match previous {
                PreviousToken::InGrace { hours } => hours,
                _ => 0,
            },
        }),
        secret: Some(Secret(token.to_string())),
    }
}

pub fn password_changed(to: &Recipient, how: &str, when: &str, sessions_ended: bool) -> Email {
    let greeting = to.greeting();
    Email {
        kind: MailKind::PasswordChanged,
        to: to.email.to_string(),
        subject: "Your password was changed".into(),
        body: render(&PasswordChangedMail {
            greeting: &greeting,
            username: to.username,
            how,
            when,
            sessions_ended,
        }),
        secret: None,
    }
}

pub fn account_locked(to: &Recipient, when: &str, attempts: u32, until: Option<&str>) -> Email {
    let greeting = to.greeting();
    Email {
        kind: MailKind::AccountLocked,
        to: to.email.to_string(),
        subject: "Your account is locked".into(),
        body: render(&AccountLockedMail {
            greeting: &greeting,
            username: to.username,
            when,
            attempts,
            until_admin: until.is_none(),
            until: until.unwrap_or(""),
        }),
        secret: None,
    }
}

/// R-U1's mail: subject `Verify your identity`, the 6-digit code on its own line. The code is
/// a secret like a token: stored redacted, put back only by the transport.
pub fn verify_identity(to: &Recipient, code: &str, source_ip: &str, when: &str) -> Email {
    let greeting = to.greeting();
    let code_line = format!("{CODE_LINE_PREFIX}{REDACTED}");
    Email {
        kind: MailKind::IdentityVerification,
        to: to.email.to_string(),
        subject: "Verify your identity".into(),
        body: render(&VerifyIdentityMail {
            greeting: &greeting,
            username: to.username,
            source_ip,
            when,
            code_line: &code_line,
        }),
        secret: Some(Secret(code.to_string())),
    }
}

/// The notice sent to the old address when a user's email address changes: whoever changed it
/// cannot silently take over the mail that carries tokens.
pub fn email_changed(to: &Recipient, old_email: &str, when: &str, by: &str) -> Email {
    let greeting = to.greeting();
    Email {
        kind: MailKind::EmailChanged,
        to: old_email.to_string(),
        subject: "Your email address was changed".into(),
        body: render(&EmailChangedMail {
            greeting: &greeting,
            username: to.username,
            when,
            by,
            old_email,
            new_email: to.email,
        }),
        secret: None,
    }
}

/// The body as delivered: the redacted token or code line gets the secret back. Only the
/// transport calls this, on its way out.
pub fn reveal(body: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret else {
        return body.to_string();
    };
    body.lines()
        .map(|l| {
            for prefix in [TOKEN_LINE_PREFIX, CODE_LINE_PREFIX, INTEGRATION_LINE_PREFIX] {
                if l.strip_prefix(prefix) == Some(REDACTED) {
                    return format!("{prefix}{secret}");
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if body.ends_with('\n') { "\n" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Recipient<'static> {
        Recipient {
            username: "ada@example.com",
            email: "ada@mail.example.com",
            first_name: "Ada",
            last_name: "Lovelace",
        }
    }

    #[test]
    fn r_t5_token_mail_subject_and_token_line() {
        let m = security_token(
            &ada(),
            "AAAAAAAAAAAAAAAAAA3VYMQ1",
            "you reset it",
            PreviousToken::Ended,
        );
        assert_eq!(m.subject, "Your new security token");
        assert_eq!(m.to, "ada@mail.example.com");
        // R-T2: the stored body never holds the token.
        assert!(!m.body.contains("AAAAAAAAAAAAAAAAAA3VYMQ1"));
        assert!(
            m.body
                .contains("Security token (case-sensitive): [redacted]\n")
        );
        assert!(m.body.contains("ada@example.com"));
        assert!(m.body.contains("no space"));
        assert!(m.body.contains("previous security token stopped working"));
        let first = security_token(
            &ada(),
            "AAAAAAAAAAAAAAAAAA3VYMQ1",
            "first",
            PreviousToken::None,
        );
        assert!(!first.body.contains("previous"));
        // After a reset in an org with a grace period, the old token is not said to be dead.
        let grace = security_token(
            &ada(),
            "AAAAAAAAAAAAAAAAAA3VYMQ1",
            "you reset it",
            PreviousToken::InGrace { hours: 12 },
        );
        assert!(
            grace
                .body
                .contains("previous security token keeps working for 12 hours\n")
        );
        assert!(!grace.body.contains("stopped working"));
        assert!(grace.body.lines().all(|l| l.len() <= 76), "{}", grace.body);
        assert_eq!(m.body.matches("\n\n\n").count(), 0, "{}", m.body);
        assert_eq!(grace.body.matches("\n\n\n").count(), 0, "{}", grace.body);
        // Short lines: the mail goes out as 7bit text, the token greppable in the file.
        assert!(m.body.lines().all(|l| l.len() <= 76), "{}", m.body);
        assert_eq!(format!("{:?}", m.secret), "Some(***)");
        let delivered = reveal(&m.body, m.secret.as_ref().map(|s| s.0.as_str()));
        assert!(
            delivered
                .lines()
                .any(|l| l == "Security token (case-sensitive): AAAAAAAAAAAAAAAAAA3VYMQ1")
        );
        assert_eq!(delivered.matches("AAAAAAAAAAAAAAAAAA3VYMQ1").count(), 1);
    }

    #[test]
    fn reveal_only_touches_the_exact_token_line() {
        let body = "x Security token (case-sensitive): [redacted]\nSecurity token (case-sensitive): [redacted]\n";
        assert_eq!(
            reveal(body, Some("T")),
            "x Security token (case-sensitive): [redacted]\nSecurity token (case-sensitive): T\n"
        );
        assert_eq!(reveal(body, None), body);
    }

    #[test]
    fn r_e3_lockout_mail() {
        let m = account_locked(&ada(), "2026-11-24 10:00 UTC", 10, None);
        assert!(m.body.contains("until an administrator unlocks it"));
        let m = account_locked(
            &ada(),
            "2026-11-24 10:00 UTC",
            10,
            Some("2026-11-24 10:15 UTC"),
        );
        assert!(m.body.contains("unlocks by itself at 2026-11-24 10:15 UTC"));
        assert!(m.secret.is_none());
    }
}
