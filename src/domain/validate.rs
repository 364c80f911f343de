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
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"(),;:[]\\".contains(c))
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
    let t = input.trim();
    if required && t.is_empty() {
        return Err(FieldError::Empty { field });
    }
    if t.chars().count() > max {
        return Err(FieldError::TooLong { field, max });
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::Control { field });
    }
    Ok(t.to_string())
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
}
