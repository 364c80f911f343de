//! Validation of the plain fields admins type: usernames, emails, names, descriptions.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("invalid username {0:?}: it must look like an email address (name@domain)")]
    Username(String),
    #[error("invalid email address {0:?}")]
    Email(String),
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is too long (at most {max} characters)")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    Control { field: &'static str },
    #[error("{field} must not contain characters that change the direction of text")]
    Direction { field: &'static str },
    #[error("invalid URL {0:?}: expected http://host[:port]/path or https://…")]
    Url(String),
    #[error(
        "invalid URL {0:?}: no query string or fragment (they could carry credentials, and the \
         URL is shown in the audit trail)"
    )]
    UrlWithQuery(String),
}

fn email_shaped(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.') | (domain == "localhost")
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || overrides_direction(c)
                || "<>\"(),;:[]\\".contains(c)
        })
}

/// Usernames are email-shaped and case-insensitive (R-M1); the canonical form is lower case.
pub fn username(input: &str) -> Result<String, FieldError> {
    let u = input.trim().to_lowercase();
    if u.len() > 80 || !email_shaped(&u) {
        return Err(FieldError::Username(input.chars().take(80).collect()));
    }
    Ok(u)
}

pub fn email(input: &str) -> Result<String, FieldError> {
    let e = input.trim();
    if e.len() > 254 || !email_shaped(e) {
        return Err(FieldError::Email(input.chars().take(80).collect()));
    }
    Ok(e.to_string())
}

/// A display text: names, descriptions. Trimmed; `max` characters; no control characters
/// (a newline in a name would let it forge lines in an email).
pub fn text(
    field: &'static str,
    input: &str,
    max: usize,
    required: bool,
) -> Result<String, FieldError> {
    if required && input.trim().is_empty() {
        return Err(FieldError::Empty { field });
    }
    let t = filter(field, input, max)?;
    if t.chars().any(overrides_direction) {
        return Err(FieldError::Direction { field });
    }
    Ok(t)
}

/// Text that only selects (a search, a filter, a page's cursor): trimmed, `max` characters, no
/// control characters. Direction overrides are not refused here: a cursor is a username
/// already stored, which may predate their refusal.
pub fn filter(field: &'static str, input: &str, max: usize) -> Result<String, FieldError> {
    let t = input.trim();
    if t.chars().count() > max {
        return Err(FieldError::TooLong { field, max });
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::Control { field });
    }
    Ok(t.to_string())
}

/// Unicode's direction overrides: invisible, they make a name shown in Setup or a mail's
/// subject read other than it is (U+202E shows the letters after it reversed). Embeddings,
/// isolates and marks only order runs and are kept: phones paste them around right-to-left
/// names.
fn overrides_direction(c: char) -> bool {
    matches!(c, '\u{202D}' | '\u{202E}')
}

/// An `http://` or `https://` URL with a host and no spaces or credentials.
pub fn http_url(u: &str) -> Result<(), FieldError> {
    let bad = || FieldError::Url(u.to_string());
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || u.len() > 2000
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    // The URL is shown in the audit trail and `org list`: it must not carry credentials, so
    // no user info (above), query string or fragment.
    if rest.contains(['?', '#']) {
        return Err(FieldError::UrlWithQuery(
            u.split(['?', '#']).next().unwrap_or(u).to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_m1_usernames_are_email_shaped_and_case_insensitive() {
        assert_eq!(username(" Ada@Example.COM ").unwrap(), "ada@example.com");
        assert_eq!(
            username("admin@keyward.local").unwrap(),
            "admin@keyward.local"
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a da@example.com",
            "ada@.com",
            "ada@example.com\n",
        ] {
            assert!(username(bad).is_err() || bad.trim() != bad, "{bad:?}");
        }
        assert!(username(&format!("{}@example.com", "a".repeat(80))).is_err());
    }

    #[test]
    fn names_refuse_control_characters() {
        assert_eq!(text("first name", " Ada ", 40, false).unwrap(), "Ada");
        assert!(text("first name", "Ada\nSecurity token", 40, false).is_err());
        assert!(text("name", "", 40, true).is_err());
        assert!(text("name", &"x".repeat(41), 40, true).is_err());
    }

    #[test]
    fn names_refuse_direction_overrides_but_keep_right_to_left_scripts() {
        for bad in ["Tableau\u{202E}gnp.exe", "a\u{202D}b"] {
            assert_eq!(
                text("integration token name", bad, 80, true),
                Err(FieldError::Direction {
                    field: "integration token name"
                }),
                "{bad:?}"
            );
        }
        assert!(username("ada\u{202E}moc.elpmaxe@example.com").is_err());
        assert!(email("a\u{202D}b@example.com").is_err());
        // Filters select among what is stored, whatever it holds.
        assert!(filter("after", "ada\u{202E}x@example.com", 255).is_ok());
        for good in [
            "שלום",
            "مرحبا\u{200F}",
            "\u{2067}سارة\u{2069} (Android)",
            "Data Loader (nightly)",
            "👩\u{200D}💻 job",
        ] {
            assert!(text("name", good, 80, true).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn r_l7_delegated_auth_urls() {
        assert!(http_url("https://sso.example.com/auth").is_ok());
        assert!(http_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@host/",
            "http://a b/",
            "sso.example.com",
            "https://sso.example.com/auth?apikey=s3cret",
            "https://sso.example.com/auth#s3cret",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }
}
