//! Reading a SOAP request (docs/wire.md §1.2): namespace-aware, prefixes ignored, DTDs refused,
//! a bound on the number of nodes. Pure: text in, a typed request or a specific error out, so
//! it can be fuzzed and table-tested.

use crate::domain::ids::{KeyPrefix, SfId};
use crate::xml::XmlError;

pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const PARTNER_NS: &str = "urn:partner.soap.sforce.com";
pub const ENTERPRISE_NS: &str = "urn:enterprise.soap.sforce.com";
/// A login envelope has a few dozen nodes; this leaves room for any real client and bounds
/// memory for hostile ones.
const NODES_LIMIT: u32 = 2_000;
/// Usernames are at most 80 characters; passwords at most a few hundred. Anything longer is
/// not a login attempt worth a hash.
pub const MAX_FIELD_CHARS: usize = 1000;

/// Which WSDL the endpoint serves: `/services/Soap/u/` (partner) or `/c/` (enterprise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Partner,
    Enterprise,
}

impl Api {
    pub fn namespace(self) -> &'static str {
        match self {
            Api::Partner => PARTNER_NS,
            Api::Enterprise => ENTERPRISE_NS,
        }
    }

    pub fn fault_namespace(self) -> &'static str {
        match self {
            Api::Partner => "urn:fault.partner.soap.sforce.com",
            Api::Enterprise => "urn:fault.enterprise.soap.sforce.com",
        }
    }

    /// The path letter: `u` or `c`.
    pub fn letter(self) -> &'static str {
        match self {
            Api::Partner => "u",
            Api::Enterprise => "c",
        }
    }
}

/// A password as it arrived in the envelope: never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct SentPassword(pub String);

impl std::fmt::Debug for SentPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Login {
        username: String,
        /// `None` when the element is absent: checked as an empty password.
        password: Option<SentPassword>,
    },
    Logout,
    GetUserInfo,
    SetPassword {
        user_id: String,
        password: SentPassword,
    },
    /// A user changes their own password, proving the current one (Salesforce's
    /// `changeOwnPassword(oldPassword, newPassword)`).
    ChangeOwnPassword {
        old_password: SentPassword,
        new_password: SentPassword,
    },
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Login { .. } => "login",
            Operation::Logout => "logout",
            Operation::GetUserInfo => "getUserInfo",
            Operation::SetPassword { .. } => "setPassword",
            Operation::ChangeOwnPassword { .. } => "changeOwnPassword",
        }
    }
}

/// A parsed request: the operation and the headers keyward reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    /// `SessionHeader/sessionId`.
    pub session_id: Option<String>,
    /// `CallOptions/client` (R-L9).
    pub call_client: Option<String>,
    /// `LoginScopeHeader/organizationId`, as a 15-character id when it is a valid org id.
    pub org_scope: Option<String>,
}

/// What was wrong with a request, worded for the integration developer who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the request body is not UTF-8 text")]
    NotUtf8,
    #[error("the request body is empty; expected a SOAP envelope")]
    Empty,
    #[error("the request body is not acceptable: {0}")]
    Xml(#[from] XmlError),
    #[error("SOAP 1.2 is not supported: use SOAP 1.1 (namespace {SOAP_ENV})")]
    Soap12,
    #[error("the root element is not a SOAP 1.1 Envelope (namespace {SOAP_ENV})")]
    NotEnvelope,
    #[error("the SOAP envelope has no Body")]
    NoBody,
    #[error("the SOAP Body is empty: no operation to call")]
    NoOperation,
    /// Axis's wording, which Salesforce returns for an operation it does not know.
    #[error(
        "No operation available for request {{{namespace}}}{name}, please check the WSDL for the service."
    )]
    UnknownOperation { namespace: String, name: String },
    #[error("{operation}: the required element {element} is missing")]
    Missing {
        operation: &'static str,
        element: &'static str,
    },
    #[error("{element} is longer than {MAX_FIELD_CHARS} characters")]
    TooLong { element: &'static str },
}

/// Parses a SOAP 1.1 request for the API `api`.
pub fn parse(body: &[u8], api: Api) -> Result<Request, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let doc = crate::xml::parse(text, NODES_LIMIT)?;
    let root = doc.root_element();
    if root.tag_name().name() == "Envelope" && root.tag_name().namespace() == Some(SOAP12_ENV) {
        return Err(ParseError::Soap12);
    }
    if !is(&root, SOAP_ENV, "Envelope") {
        return Err(ParseError::NotEnvelope);
    }
    let header = root.children().find(|n| is(n, SOAP_ENV, "Header"));
    let body = root
        .children()
        .find(|n| is(n, SOAP_ENV, "Body"))
        .ok_or(ParseError::NoBody)?;
    let op = body
        .children()
        .find(|n| n.is_element())
        .ok_or(ParseError::NoOperation)?;
    let ns = api.namespace();
    let unknown = || ParseError::UnknownOperation {
        namespace: op
            .tag_name()
            .namespace()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect(),
        name: op.tag_name().name().chars().take(200).collect(),
    };
    if op.tag_name().namespace() != Some(ns) {
        return Err(unknown());
    }
    let operation = match op.tag_name().name() {
        "login" => Operation::Login {
            username: field(&op, ns, "username")?.ok_or(ParseError::Missing {
                operation: "login",
                element: "username",
            })?,
            password: field(&op, ns, "password")?.map(SentPassword),
        },
        "logout" => Operation::Logout,
        "getUserInfo" => Operation::GetUserInfo,
        "setPassword" => Operation::SetPassword {
            user_id: field(&op, ns, "userId")?.ok_or(ParseError::Missing {
                operation: "setPassword",
                element: "userId",
            })?,
            password: field(&op, ns, "password")?
                .map(SentPassword)
                .ok_or(ParseError::Missing {
                    operation: "setPassword",
                    element: "password",
                })?,
        },
        "changeOwnPassword" => {
            let required = |element: &'static str| -> Result<SentPassword, ParseError> {
                field(&op, ns, element)?
                    .map(SentPassword)
                    .ok_or(ParseError::Missing {
                        operation: "changeOwnPassword",
                        element,
                    })
            };
            Operation::ChangeOwnPassword {
                old_password: required("oldPassword")?,
                new_password: required("newPassword")?,
            }
        }
        _ => return Err(unknown()),
    };
    let header_field = |block: &str, name: &'static str| -> Result<Option<String>, ParseError> {
        match header.and_then(|h| h.children().find(|n| is(n, ns, block))) {
            Some(b) => field(&b, ns, name),
            None => Ok(None),
        }
    };
    let org_scope = header_field("LoginScopeHeader", "organizationId")?.map(|o| {
        SfId::parse_as(o.trim(), KeyPrefix::Org)
            .map(|id| id.as_15().to_string())
            // Not an org id: matches no user's org, so the login fails as for an unknown user.
            .unwrap_or_else(|_| "-".into())
    });
    Ok(Request {
        operation,
        session_id: header_field("SessionHeader", "sessionId")?,
        call_client: header_field("CallOptions", "client")?,
        org_scope,
    })
}

fn is(n: &roxmltree::Node, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(ns)
}

/// The text of the child element `name` (entity-decoded, exactly as sent: no trimming), or
/// `None` when the element is absent.
fn field(
    parent: &roxmltree::Node,
    ns: &str,
    name: &'static str,
) -> Result<Option<String>, ParseError> {
    let Some(el) = parent.children().find(|n| is(n, ns, name)) else {
        return Ok(None);
    };
    let mut value = String::new();
    for t in el.children().filter(|n| n.is_text()) {
        value.push_str(t.text().unwrap_or(""));
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(ParseError::TooLong { element: name });
        }
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSFORCE: &str = r#"<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header/><se:Body><login xmlns="urn:partner.soap.sforce.com"><username>user@example.com</username><password>Passw0rd!TOKEN</password></login></se:Body></se:Envelope>"#;

    const SSF: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
    <env:Header><urn:CallOptions><urn:client>simple-salesforce</urn:client><urn:defaultNamespace>sf</urn:defaultNamespace></urn:CallOptions></env:Header>
    <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>user@example.com</n1:username><n1:password>P&amp;ss&lt;w0rd&gt;&quot;TOKEN</n1:password></n1:login></env:Body>
</env:Envelope>"#;

    const BEATBOX: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="urn:partner.soap.sforce.com" xmlns:o="urn:sobject.partner.soap.sforce.com" xmlns:x="http://www.w3.org/2001/XMLSchema-instance"><s:Header>
<p:CallOptions><p:client>BeatBox/0.96</p:client></p:CallOptions>
</s:Header><s:Body>
<p:login><p:username>user@example.com</p:username><p:password>Passw0rd!TOKEN</p:password></p:login></s:Body></s:Envelope>"#;

    fn login(u: &str, p: &str) -> Operation {
        Operation::Login {
            username: u.into(),
            password: Some(SentPassword(p.into())),
        }
    }

    #[test]
    fn the_real_clients_login_envelopes() {
        let r = parse(JSFORCE.as_bytes(), Api::Partner).unwrap();
        assert_eq!(r.operation, login("user@example.com", "Passw0rd!TOKEN"));
        assert_eq!(r.call_client, None);
        let r = parse(SSF.as_bytes(), Api::Partner).unwrap();
        assert_eq!(
            r.operation,
            login("user@example.com", "P&ss<w0rd>\"TOKEN"),
            "entities decoded"
        );
        assert_eq!(r.call_client.as_deref(), Some("simple-salesforce"));
        let r = parse(BEATBOX.as_bytes(), Api::Partner).unwrap();
        assert_eq!(r.operation, login("user@example.com", "Passw0rd!TOKEN"));
        assert_eq!(r.call_client.as_deref(), Some("BeatBox/0.96"));
    }

    #[test]
    fn enterprise_namespace_on_the_enterprise_endpoint_only() {
        let ent = JSFORCE.replace(PARTNER_NS, ENTERPRISE_NS);
        assert!(parse(ent.as_bytes(), Api::Enterprise).is_ok());
        let err = parse(ent.as_bytes(), Api::Partner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "No operation available for request {urn:enterprise.soap.sforce.com}login, please \
             check the WSDL for the service."
        );
        assert!(parse(JSFORCE.as_bytes(), Api::Enterprise).is_err());
    }

    #[test]
    fn headers_session_and_login_scope() {
        let org = SfId::generate(KeyPrefix::Org, &mut rand::thread_rng());
        let x = format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:LoginScopeHeader><urn:organizationId>{}</urn:organizationId></urn:LoginScopeHeader><urn:SessionHeader><urn:sessionId>00Dabc!xyz</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:logout/></soapenv:Body></soapenv:Envelope>"#,
            org.to_18()
        );
        let r = parse(x.as_bytes(), Api::Partner).unwrap();
        assert_eq!(r.operation, Operation::Logout);
        assert_eq!(r.session_id.as_deref(), Some("00Dabc!xyz"));
        assert_eq!(r.org_scope.as_deref(), Some(org.as_15()));
    }

    #[test]
    fn passwords_are_taken_exactly_as_sent() {
        let x = JSFORCE.replace("Passw0rd!TOKEN", "  spaced pw  ");
        let r = parse(x.as_bytes(), Api::Partner).unwrap();
        assert_eq!(r.operation, login("user@example.com", "  spaced pw  "));
        let x = JSFORCE.replace("<password>Passw0rd!TOKEN</password>", "");
        let r = parse(x.as_bytes(), Api::Partner).unwrap();
        assert_eq!(
            r.operation,
            Operation::Login {
                username: "user@example.com".into(),
                password: None
            }
        );
        let x = JSFORCE.replace("<password>Passw0rd!TOKEN</password>", "<password/>");
        let r = parse(x.as_bytes(), Api::Partner).unwrap();
        assert_eq!(r.operation, login("user@example.com", ""));
    }

    #[test]
    fn change_own_password_takes_both_passwords_as_sent() {
        let call = |body: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><changeOwnPassword xmlns="urn:partner.soap.sforce.com">{body}</changeOwnPassword></s:Body></s:Envelope>"#
            )
        };
        let r = parse(
            call("<oldPassword> old &amp; </oldPassword><newPassword>New-Passw0rd</newPassword>")
                .as_bytes(),
            Api::Partner,
        )
        .unwrap();
        assert_eq!(
            r.operation,
            Operation::ChangeOwnPassword {
                old_password: SentPassword(" old & ".into()),
                new_password: SentPassword("New-Passw0rd".into()),
            }
        );
        assert_eq!(
            parse(
                call("<newPassword>x</newPassword>").as_bytes(),
                Api::Partner
            ),
            Err(ParseError::Missing {
                operation: "changeOwnPassword",
                element: "oldPassword"
            })
        );
    }

    fn malformed() -> ParseError {
        ParseError::Xml(XmlError::Malformed(String::new()))
    }

    #[test]
    fn hostile_and_malformed_requests_get_specific_errors() {
        let cases: Vec<(String, ParseError)> = vec![
            ("".into(), ParseError::Empty),
            ("not xml at all".into(), malformed()),
            ("<a><b></a>".into(), malformed()),
            (
                r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#.into(),
                ParseError::Xml(XmlError::Dtd),
            ),
            (
                r#"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#.into(),
                ParseError::Xml(XmlError::Dtd),
            ),
            ("<!DOCTYPE x><x/>".into(), ParseError::Xml(XmlError::Dtd)),
            ("<Envelope/>".into(), ParseError::NotEnvelope),
            (
                format!("<e:Envelope xmlns:e=\"{SOAP12_ENV}\"><e:Body/></e:Envelope>"),
                ParseError::Soap12,
            ),
            (
                format!("<e:Envelope xmlns:e=\"{SOAP_ENV}\"/>"),
                ParseError::NoBody,
            ),
            (
                format!("<e:Envelope xmlns:e=\"{SOAP_ENV}\"><e:Body>  </e:Body></e:Envelope>"),
                ParseError::NoOperation,
            ),
            (
                JSFORCE.replace("<username>user@example.com</username>", ""),
                ParseError::Missing {
                    operation: "login",
                    element: "username",
                },
            ),
            (
                JSFORCE.replace("user@example.com", &"a".repeat(1001)),
                ParseError::TooLong {
                    element: "username",
                },
            ),
            (
                format!(
                    "<e:Envelope xmlns:e=\"{SOAP_ENV}\"><e:Body>{}{}</e:Body></e:Envelope>",
                    "<a>".repeat(100_000),
                    "</a>".repeat(100_000)
                ),
                ParseError::Xml(XmlError::TooDeep),
            ),
            (
                format!(
                    "<e:Envelope xmlns:e=\"{SOAP_ENV}\"><e:Body>{}</e:Body></e:Envelope>",
                    "<a/>".repeat(5_000),
                ),
                ParseError::Xml(XmlError::TooManyNodes(NODES_LIMIT)),
            ),
        ];
        for (input, want) in cases {
            let got = parse(input.as_bytes(), Api::Partner).unwrap_err();
            match (&got, &want) {
                (
                    ParseError::Xml(XmlError::Malformed(_)),
                    ParseError::Xml(XmlError::Malformed(_)),
                ) => {}
                _ => assert_eq!(got, want, "{}", &input[..input.len().min(80)]),
            }
        }
        assert_eq!(
            parse(&[0xff, 0xfe, 0x00], Api::Partner).unwrap_err(),
            ParseError::NotUtf8
        );
        let unknown = JSFORCE
            .replace("<login ", "<query ")
            .replace("</login>", "</query>");
        assert!(matches!(
            parse(unknown.as_bytes(), Api::Partner).unwrap_err(),
            ParseError::UnknownOperation { .. }
        ));
    }
}
