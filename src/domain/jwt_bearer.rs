//! The claims of a JWT bearer assertion (RFC 7523 §3) once its signature has been checked
//! (`crypto::jws`): who it is for, whether it is still good, and what marks its one use.
//! The clients that send them each bend the format a little (docs/design/oauth-clients.md):
//! simple-salesforce writes `exp` as a string, the Salesforce CLI in milliseconds, and both put
//! Salesforce's login host, not keyward's, in `aud`.

use serde_json::{Map, Value};

/// How far ahead an assertion's `exp` may lie: Salesforce's three minutes.
pub const MAX_AHEAD_MS: i64 = 3 * 60 * 1000;
/// The clock difference tolerated between the client and keyward, each way.
pub const SKEW_MS: i64 = 60 * 1000;

/// What the grant checks the claims against.
pub struct Expected<'a> {
    /// The connected app's consumer key: `iss` must be it.
    pub client_id: &'a str,
    /// `oauth.jwt_audiences`: `aud` must name one of them.
    pub audiences: &'a [String],
    pub now_ms: i64,
}

/// A good assertion: the username it asks a token for, and until when it must not be used
/// again. The grant remembers, until then plus the skew, the assertion's digest (the same
/// token twice: RS256 signatures are deterministic, so two requests with the same claims are
/// the same token) and its `jti` for the app, if it has one (the same id in another token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub subject: String,
    pub expires_at_ms: i64,
    pub jti: Option<String>,
}

/// Why an assertion is refused: the token endpoint answers `invalid_grant` with the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the assertion has no {0} claim")]
    Missing(&'static str),
    #[error("the assertion's {0} claim is malformed")]
    Malformed(&'static str),
    #[error("the assertion's issuer is not the client id")]
    Issuer,
    #[error("audience is invalid")]
    Audience,
    #[error("expired authorization code")]
    Expired,
    #[error("the assertion expires more than three minutes ahead")]
    TooFarAhead,
    #[error("the assertion is not valid yet")]
    NotYetValid,
}

pub fn check(claims: &Map<String, Value>, expected: &Expected) -> Result<Assertion, Refusal> {
    let now = expected.now_ms;
    match claims.get("iss") {
        None => return Err(Refusal::Missing("iss")),
        Some(Value::String(iss)) if iss == expected.client_id => {}
        Some(Value::String(_)) => return Err(Refusal::Issuer),
        Some(_) => return Err(Refusal::Malformed("iss")),
    }
    let subject = match claims.get("sub") {
        None => return Err(Refusal::Missing("sub")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => return Err(Refusal::Malformed("sub")),
    };
    if !audiences(claims.get("aud"))?
        .iter()
        .any(|a| expected.audiences.iter().any(|e| same_audience(a, e)))
    {
        return Err(Refusal::Audience);
    }
    let expires_at_ms = time_ms(claims.get("exp"), "exp")?.ok_or(Refusal::Missing("exp"))?;
    if expires_at_ms <= now - SKEW_MS {
        return Err(Refusal::Expired);
    }
    if expires_at_ms > now + MAX_AHEAD_MS + SKEW_MS {
        return Err(Refusal::TooFarAhead);
    }
    if let Some(nbf) = time_ms(claims.get("nbf"), "nbf")?
        && nbf > now + SKEW_MS
    {
        return Err(Refusal::NotYetValid);
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 255 => Some(j.clone()),
        Some(_) => return Err(Refusal::Malformed("jti")),
    };
    Ok(Assertion {
        subject,
        expires_at_ms,
        jti,
    })
}

/// `aud`: one string or an array of them (RFC 7519 §4.1.3).
fn audiences(aud: Option<&Value>) -> Result<Vec<&str>, Refusal> {
    match aud {
        None => Err(Refusal::Missing("aud")),
        Some(Value::String(a)) => Ok(vec![a]),
        Some(Value::Array(all)) => all
            .iter()
            .map(|a| a.as_str().ok_or(Refusal::Malformed("aud")))
            .collect(),
        Some(_) => Err(Refusal::Malformed("aud")),
    }
}

/// Audiences are URLs compared as written, but for one trailing slash (the Salesforce CLI
/// sends its login URL with one) and the case of the scheme and host.
fn same_audience(sent: &str, accepted: &str) -> bool {
    let norm = |s: &str| {
        let s = s.strip_suffix('/').unwrap_or(s);
        // The end of `scheme://host[:port]`, the part compared without case.
        let host_end = s.find("://").map_or(0, |at| {
            let after = at + 3;
            s[after..].find('/').map_or(s.len(), |slash| after + slash)
        });
        format!("{}{}", s[..host_end].to_ascii_lowercase(), &s[host_end..])
    };
    let (s, a) = (norm(sent), norm(accepted));
    !s.is_empty() && s == a
}

/// A NumericDate (RFC 7519 §2) in milliseconds: a number or a string of digits (simple-
/// salesforce), in seconds — or in milliseconds when it is too large to be seconds of this
/// era (the Salesforce CLI sends `Date.now() + 300`).
fn time_ms(v: Option<&Value>, claim: &'static str) -> Result<Option<i64>, Refusal> {
    let secs_or_ms = match v {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<f64>().ok()
        }
        Some(_) => None,
    }
    .filter(|t| t.is_finite() && *t >= 0.0)
    .ok_or(Refusal::Malformed(claim))?;
    // 10^11 seconds is the year 5138; 10^11 milliseconds was 1973.
    let ms = if secs_or_ms >= 1e11 {
        secs_or_ms
    } else {
        secs_or_ms * 1000.0
    };
    if ms >= 1e15 {
        return Err(Refusal::Malformed(claim));
    }
    Ok(Some(ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_796_000_000_000;

    fn check_at(claims: Value) -> Result<Assertion, Refusal> {
        let audiences = vec![
            "https://keyward.example.com".to_string(),
            "https://login.salesforce.com".to_string(),
        ];
        let Value::Object(map) = claims else {
            panic!("claims")
        };
        check(
            &map,
            &Expected {
                client_id: "3MVG9app",
                audiences: &audiences,
                now_ms: NOW,
            },
        )
    }

    fn good() -> Value {
        json!({"iss": "3MVG9app", "sub": "ada@example.com",
               "aud": "https://keyward.example.com", "exp": NOW / 1000 + 180})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut c = good();
        c[key] = v;
        c
    }

    fn without(key: &str) -> Value {
        let mut c = good();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[test]
    fn r7523_a_good_assertion_names_its_user_and_its_one_use() {
        let a = check_at(good()).unwrap();
        assert_eq!(a.subject, "ada@example.com");
        assert_eq!(a.expires_at_ms, NOW + 180_000);
        assert_eq!(a.jti, None);
        let a = check_at(with("jti", json!("abc-1"))).unwrap();
        assert_eq!(a.jti.as_deref(), Some("abc-1"));
    }

    #[test]
    fn the_real_clients_variations_are_accepted() {
        // simple-salesforce: exp as a string of seconds, Salesforce's host as the audience.
        let c = with("exp", json!((NOW / 1000 + 180).to_string()));
        let c = json!({"aud": "https://login.salesforce.com", "exp": c["exp"],
                       "iss": "3MVG9app", "sub": "ada@example.com"});
        assert_eq!(check_at(c).unwrap().expires_at_ms, NOW + 180_000);
        // The Salesforce CLI: exp in milliseconds, an audience with a trailing slash, iat.
        let c = json!({"iss": "3MVG9app", "sub": "ada@example.com", "iat": NOW / 1000,
                       "aud": "https://keyward.example.com/", "exp": NOW + 300});
        assert_eq!(check_at(c).unwrap().expires_at_ms, NOW + 300);
        // An array of audiences, one of them ours; a fractional NumericDate.
        let c = with(
            "aud",
            json!(["https://elsewhere", "HTTPS://KEYWARD.EXAMPLE.COM"]),
        );
        assert!(check_at(c).is_ok());
        assert!(check_at(with("exp", json!(NOW as f64 / 1000.0 + 10.5))).is_ok());
    }

    #[test]
    fn r7523_bad_claims_are_refused_with_their_reason() {
        use Refusal::*;
        let cases = [
            (without("iss"), Missing("iss")),
            (with("iss", json!("3MVG9other")), Issuer),
            (with("iss", json!(7)), Malformed("iss")),
            (without("sub"), Missing("sub")),
            (with("sub", json!(" ")), Malformed("sub")),
            (without("aud"), Missing("aud")),
            (
                with("aud", json!("https://keyward.example.com.evil")),
                Audience,
            ),
            (with("aud", json!("")), Audience),
            (
                with("aud", json!("https://keyward.example.com//")),
                Audience,
            ),
            (
                with("aud", json!("https://keyward.example.com/X")),
                Audience,
            ),
            (with("aud", json!([])), Audience),
            (with("aud", json!([1])), Malformed("aud")),
            (without("exp"), Missing("exp")),
            (with("exp", json!("soon")), Malformed("exp")),
            (with("exp", json!(-1)), Malformed("exp")),
            (with("exp", json!("1e10")), Malformed("exp")),
            (with("exp", json!(NOW / 1000 - 61)), Expired),
            (with("exp", json!(NOW / 1000 + 241)), TooFarAhead),
            (with("exp", json!(1e300)), Malformed("exp")),
            (with("nbf", json!(NOW / 1000 + 61)), NotYetValid),
            (with("jti", json!(5)), Malformed("jti")),
            (with("jti", json!("x".repeat(256))), Malformed("jti")),
        ];
        for (claims, refusal) in cases {
            assert_eq!(check_at(claims.clone()), Err(refusal), "{claims}");
        }
    }

    #[test]
    fn the_skew_is_allowed_each_way_and_no_more() {
        assert!(check_at(with("exp", json!(NOW / 1000 - 59))).is_ok());
        assert!(check_at(with("exp", json!(NOW / 1000 + 240))).is_ok());
        assert!(check_at(with("nbf", json!(NOW / 1000 + 60))).is_ok());
    }
}
