//! How mail leaves (R-E2): `file` (the default: one RFC 5322 `.eml` file per message in
//! `<data-dir>/mail/`, named so that `ls` sorts them oldest first) or `smtp` (lettre; STARTTLS,
//! TLS or plain; optional auth).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("could not write the mail file: {0}")]
    File(String),
    #[error("SMTP delivery failed: {0}")]
    Smtp(String),
}

/// A message on its way out, secret included.
pub struct Outgoing<'a> {
    /// The outbox's insertion order: breaks ties between mails of the same millisecond.
    pub seq: i64,
    pub id: &'a str,
    pub created_at: OffsetDateTime,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain TCP, upgraded with STARTTLS (refused if the server does not offer it).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on localhost or a test server.
    None,
}

pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: String,
    pub timeout: Duration,
}

pub enum Transport {
    File {
        dir: PathBuf,
    },
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        timeout: Duration,
    },
}

impl Transport {
    pub fn file(dir: PathBuf) -> Transport {
        Transport::File { dir }
    }

    pub fn smtp(s: &SmtpSettings) -> Result<Transport, TransportError> {
        let builder = match s.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| TransportError::Smtp(e.to_string()))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| TransportError::Smtp(e.to_string()))?,
        };
        let mut builder = builder.port(s.port).timeout(Some(s.timeout));
        if !s.username.is_empty() {
            builder = builder.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(Transport::Smtp {
            transport: Box::new(builder.build()),
            timeout: s.timeout,
        })
    }

    /// Where the file transport wrote a delivered message; `None` for SMTP.
    pub fn delivered_file(
        &self,
        seq: i64,
        id: &str,
        created_at: OffsetDateTime,
    ) -> Option<PathBuf> {
        match self {
            Transport::File { dir } => Some(dir.join(file_name(seq, id, created_at))),
            Transport::Smtp { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transport::File { .. } => "file",
            Transport::Smtp { .. } => "smtp",
        }
    }

    /// The longest one delivery may take: SMTP's configured timeout; a local file write is
    /// given a few seconds.
    pub fn send_timeout(&self) -> Duration {
        match self {
            Transport::File { .. } => Duration::from_secs(5),
            Transport::Smtp { timeout, .. } => *timeout,
        }
    }

    pub async fn send(&self, from: &str, m: &Outgoing<'_>) -> Result<(), TransportError> {
        let message = build(from, m)?;
        match self {
            Transport::File { dir } => write_file(dir, m, &message.formatted()).await,
            Transport::Smtp { transport, .. } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| TransportError::Smtp(e.to_string())),
        }
    }
}

fn build(from: &str, m: &Outgoing<'_>) -> Result<Message, TransportError> {
    let from: Mailbox = from
        .parse()
        .map_err(|_| TransportError::Address(from.to_string()))?;
    let to: Mailbox =
        m.to.parse()
            .map_err(|_| TransportError::Address(m.to.to_string()))?;
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(m.subject)
        .date(m.created_at.into())
        .message_id(Some(format!("<{}@{}>", m.id, domain)))
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| TransportError::Build(e.to_string()))
}

/// The file name: creation time to the millisecond, the outbox sequence number, then the
/// message id, so `ls` lists the oldest first and names never clash.
pub fn file_name(seq: i64, id: &str, created_at: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z");
    let stamp = created_at
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| created_at.unix_timestamp().to_string());
    format!("{stamp}-{seq:012}-{id}.eml")
}

async fn write_file(dir: &Path, m: &Outgoing<'_>, bytes: &[u8]) -> Result<(), TransportError> {
    let err = |e: std::io::Error| TransportError::File(format!("{}: {e}", dir.display()));
    crate::private_fs::create_dir(dir).map_err(err)?;
    let name = file_name(m.seq, m.id, m.created_at);
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = bytes.to_vec();
    let path = dir.join(&name);
    // Written under a temporary name, synced and renamed: a crash never leaves half a mail,
    // and the message is on disk before the outbox row says it was sent.
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        crate::private_fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(|e| TransportError::File(e.to_string()))?
    .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn r_e2_file_names_sort_oldest_first() {
        let a = file_name(9, "02sZZZ", datetime!(2026-11-24 09:59:59.999 UTC));
        let b = file_name(10, "02sAAA", datetime!(2026-11-24 10:00:00.000 UTC));
        let c = file_name(11, "02s000", datetime!(2026-11-24 10:00:00.000 UTC));
        let d = file_name(12, "02s000", datetime!(2026-11-24 10:00:00.001 UTC));
        assert_eq!(a, "20261124T095959.999Z-000000000009-02sZZZ.eml");
        let mut v = vec![d.clone(), c.clone(), b.clone(), a.clone()];
        v.sort();
        assert_eq!(v, vec![a, b, c, d]);
    }

    #[tokio::test]
    async fn r_e2_file_transport_writes_an_rfc5322_message() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::file(dir.path().to_path_buf());
        let m = Outgoing {
            seq: 1,
            id: "02s000000000001",
            created_at: datetime!(2026-11-24 10:00 UTC),
            to: "ada@example.com",
            subject: "Your new security token",
            body: "Security token (case-sensitive): AAAAAAAAAAAAAAAAAA3VYMQ1\n".into(),
        };
        t.send("keyward <noreply@keyward.local>", &m).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(
            text.contains("Subject: Your new security token\r\n"),
            "{text}"
        );
        assert!(text.contains("To: ada@example.com\r\n"));
        assert!(text.contains("Message-ID: <02s000000000001@keyward.local>"));
        assert!(text.contains("Security token (case-sensitive): AAAAAAAAAAAAAAAAAA3VYMQ1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = files[0].as_ref().unwrap().path();
            assert_eq!(
                std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
