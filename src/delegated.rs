//! Delegated authentication (R-L7): Salesforce's SOAP `Authenticate` call to the org's
//! endpoint, which decides whether an SSO user's password is right; anything but a clear
//! true or false counts as the service being down, which fails closed. The URL is an org
//! admin's and the call carries passwords, so it may reach only public addresses over https,
//! checked when set and at each call by keyward's own resolver (no SSRF, no DNS rebinding),
//! unless the operator allows otherwise (`delegated_auth.allow_private_addresses`, `allow_http`).

use crate::domain::ip::internal_class;
use crate::domain::login::DelegatedCheck;
use crate::domain::secret::Password;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The operator's settings for delegated-authentication calls (`delegated_auth.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegatedSettings {
    /// How long an endpoint may take to answer.
    pub timeout: Duration,
    /// Endpoints on loopback, private and other internal addresses are allowed.
    pub allow_private_addresses: bool,
    /// `http://` endpoints are allowed (the password crosses the network in clear).
    pub allow_http: bool,
}

impl Default for DelegatedSettings {
    fn default() -> Self {
        DelegatedSettings {
            timeout: Duration::from_secs(10),
            allow_private_addresses: false,
            allow_http: false,
        }
    }
}

impl DelegatedSettings {
    /// Why a URL may not be called, from its scheme and, when its host is an address, that
    /// address (a name is resolved at the call, by [`PublicOnly`]).
    fn refusal(&self, url: &reqwest::Url) -> Option<String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Some(
                    "plain http would send passwords in clear: use https (or set \
                     delegated_auth.allow_http = true)"
                        .into(),
                );
            }
            other => return Some(format!("scheme {other} is not http or https")),
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            Some(url::Host::Domain(_)) => None,
            None => return Some("the URL has no host".into()),
        };
        literal.and_then(|ip| self.address_refusal(ip))
    }

    fn address_refusal(&self, ip: IpAddr) -> Option<String> {
        if self.allow_private_addresses {
            return None;
        }
        internal_class(ip).map(|class| {
            format!(
                "{ip} is a {class} address, inside the server's network (set \
                 delegated_auth.allow_private_addresses = true to allow it)"
            )
        })
    }
}

/// A DNS resolver that hands the HTTP client only the addresses it may connect to: the name is
/// resolved here, checked, and the connection goes to a checked address, so a name cannot
/// resolve to a public address for a check and to an internal one for the connection.
struct PublicOnly {
    settings: DelegatedSettings,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let settings = self.settings;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| settings.address_refusal(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let why = found
                    .first()
                    .and_then(|a| settings.address_refusal(a.ip()))
                    .unwrap_or_else(|| "no address".into());
                return Err(
                    format!("{host} resolves to no address keyward may call: {why}").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The largest answer read from the endpoint.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const NAMESPACE: &str = "urn:authentication.soap.sforce.com";

pub struct DelegatedAuth {
    /// None when the checked client could not be built: every call then fails closed (a
    /// default client would resolve names and follow proxies and redirects unchecked).
    client: Option<reqwest::Client>,
    settings: DelegatedSettings,
}

impl DelegatedAuth {
    pub fn new(settings: DelegatedSettings) -> DelegatedAuth {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could send the password somewhere the admin did not configure.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve the name itself, past the check.
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly { settings }))
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build();
        if let Err(e) = &client {
            tracing::error!(error = %e, "delegated authentication: no HTTP client; SSO logins will fail");
        }
        DelegatedAuth {
            client: client.ok(),
            settings,
        }
    }

    /// Whether `url` may be an org's endpoint, checked when an admin sets it: its scheme, and
    /// every address its host is or resolves to now (the call checks again).
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if let Some(why) = self.settings.refusal(&parsed) {
            return Err(why);
        }
        if let Some(url::Host::Domain(name)) = parsed.host() {
            let port = parsed.port_or_known_default().unwrap_or(443);
            let found: Vec<SocketAddr> =
                tokio::time::timeout(self.settings.timeout, tokio::net::lookup_host((name, port)))
                    .await
                    .map_err(|_| format!("resolving {name} took too long"))?
                    .map_err(|e| format!("cannot resolve {name}: {e}"))?
                    .collect();
            if found.is_empty() {
                return Err(format!("{name} resolves to no address"));
            }
            for a in found {
                if let Some(why) = self.settings.address_refusal(a.ip()) {
                    return Err(format!("{name} resolves to {why}"));
                }
            }
        }
        Ok(())
    }

    /// Asks `url` whether `password` is right for `username` logging in from `source_ip`.
    pub async fn check(
        &self,
        url: Option<&str>,
        username: &str,
        password: &Password,
        source_ip: IpAddr,
    ) -> DelegatedCheck {
        let Some(url) = url else {
            tracing::warn!("delegated authentication: the org has no endpoint configured");
            return DelegatedCheck::Unavailable;
        };
        match self.ask(url, username, password, source_ip).await {
            Ok(check) => check,
            Err(why) => {
                // The URL is the admin's; it carries no credentials (refused when it is set).
                tracing::warn!(%url, error = %why, "delegated authentication service unavailable");
                DelegatedCheck::Unavailable
            }
        }
    }

    async fn ask(
        &self,
        url: &str,
        username: &str,
        password: &Password,
        source_ip: IpAddr,
    ) -> Result<DelegatedCheck, String> {
        // The rules may have changed since the URL was set (or it was set by an older keyward).
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if let Some(why) = self.settings.refusal(&parsed) {
            return Err(format!("refused: {why}"));
        }
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let body = request_body(username, password, source_ip);
        let mut response = client
            .post(parsed)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(body)
            .send()
            .await
            // reqwest's error text can include the URL, never the body.
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!("answer longer than {MAX_RESPONSE_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let text = String::from_utf8(bytes).map_err(|_| "answer is not UTF-8".to_string())?;
        parse_answer(&text)
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn request_body(username: &str, password: &Password, source_ip: IpAddr) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
<soapenv:Body><Authenticate xmlns=\"{NAMESPACE}\">\
<username>{}</username><password>{}</password><sourceIp>{}</sourceIp>\
</Authenticate></soapenv:Body></soapenv:Envelope>",
        xml_escape(username),
        xml_escape(password.expose()),
        source_ip
    )
}

/// Reads `Authenticated` (in the Salesforce namespace or none) from the answer.
fn parse_answer(text: &str) -> Result<DelegatedCheck, String> {
    let doc = crate::xml::parse(text, 10_000).map_err(|e| format!("answer refused: {e}"))?;
    let is = |n: &roxmltree::Node, name: &str| n.is_element() && n.tag_name().name() == name;
    if doc.descendants().any(|n| is(&n, "Fault")) {
        return Err("the service answered with a SOAP fault".into());
    }
    let value = doc
        .descendants()
        .find(|n| {
            is(n, "Authenticated") && matches!(n.tag_name().namespace(), None | Some(NAMESPACE))
        })
        .ok_or("the answer has no Authenticated element")?
        .text()
        .unwrap_or("")
        .trim();
    match value {
        "true" | "1" => Ok(DelegatedCheck::Accepted),
        "false" | "0" => Ok(DelegatedCheck::Rejected),
        other => Err(format!(
            "Authenticated is {:?}, not true or false",
            other.chars().take(20).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_l7_request_escapes_and_carries_the_source_ip() {
        let body = request_body(
            "a&b@example.com",
            &Password::new("p<w>\"'"),
            "203.0.113.9".parse().unwrap(),
        );
        assert!(body.contains("<username>a&amp;b@example.com</username>"));
        assert!(body.contains("<password>p&lt;w&gt;&quot;&apos;</password>"));
        assert!(body.contains("<sourceIp>203.0.113.9</sourceIp>"));
        assert!(roxmltree::Document::parse(&body).is_ok());
    }

    #[test]
    fn r_l7_answers() {
        let wrap = |inner: &str| {
            format!(
                "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
            )
        };
        let ok = wrap(
            "<AuthenticateResult xmlns=\"urn:authentication.soap.sforce.com\">\
             <Authenticated>true</Authenticated></AuthenticateResult>",
        );
        assert_eq!(parse_answer(&ok), Ok(DelegatedCheck::Accepted));
        let no = wrap(
            "<AuthenticateResponse><Authenticated>false</Authenticated></AuthenticateResponse>",
        );
        assert_eq!(parse_answer(&no), Ok(DelegatedCheck::Rejected));
        for bad in [
            wrap("<Authenticated>maybe</Authenticated>"),
            wrap("<soapenv:Fault><faultcode>x</faultcode></soapenv:Fault>"),
            wrap("<Other/>"),
            wrap("<x:Authenticated xmlns:x=\"urn:other\">true</x:Authenticated>"),
            "not xml".into(),
            "<!DOCTYPE x [<!ENTITY a \"true\">]><Authenticated>&a;</Authenticated>".into(),
        ] {
            assert!(parse_answer(&bad).is_err(), "{bad}");
        }
    }
}
