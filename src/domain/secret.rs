//! Secrets as types: a password a user typed, or any other credential that must never be
//! printed. `Debug` and `Display` show `***`; the memory is zeroed on drop (via `secrecy`).

use secrecy::{ExposeSecret, SecretString};

/// A password as received from a user or client, byte for byte (R-L3: no trimming, no
/// truncation). Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(SecretString::from(value.into()))
    }

    /// The only way to read the value: call sites that do are easy to find and review.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_t2_password_never_prints() {
        let p = Password::new("hunter2hunter2");
        assert_eq!(format!("{p:?} {p}"), "*** ***");
        assert_eq!(p.expose(), "hunter2hunter2");
    }
}
