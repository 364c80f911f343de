//! `keyward mail …`: the outbox as the CLI shows it, and `mail wait`, the one command that
//! polls, which scripts and tests use to wait for a delivery.

use super::{CliError, MailCommand, deliver_unless_served, ms_json, print};
use crate::listing::Listing;
use crate::service::{Services, fmt_ms, id18};
use serde_json::json;

/// `mail wait`: polls the outbox until no mail to `to` is queued and one was delivered. With
/// no server running, it delivers the queued mail itself, as every command does.
async fn mail_wait(s: &Services, to: &str, timeout: u64) -> Result<(), CliError> {
    use crate::service::history::MailTo;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let state = s.mail_to(to).await?;
        match &state {
            MailTo::Delivered { id, file } => {
                let shown = match file {
                    None => id.clone(),
                    Some(f) if f.is_file() => f.display().to_string(),
                    // Delivered by a server with another data dir (another node, or before a
                    // restore): its file is there, not here.
                    Some(f) => {
                        return Err(CliError::Setup(format!(
                            "the newest mail to {to} ({id}) was delivered, but not to {}",
                            f.display()
                        )));
                    }
                };
                print(&format!("{shown}\n"));
                return Ok(());
            }
            MailTo::Dead { id, error } => {
                return Err(CliError::Setup(format!(
                    "the newest mail to {to} ({id}) could not be delivered: {error}"
                )));
            }
            MailTo::Queued(_) => deliver_unless_served(s).await,
            MailTo::Nothing => {}
        }
        if std::time::Instant::now() >= deadline {
            let what = match state {
                MailTo::Queued(n) => format!("{n} still queued"),
                _ => "none was queued".to_string(),
            };
            return Err(CliError::Setup(format!(
                "no mail to {to} was delivered within {timeout} s ({what})"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(super) async fn mail(s: &Services, c: MailCommand) -> Result<(), CliError> {
    match c {
        MailCommand::Wait { to, timeout } => mail_wait(s, &to, timeout).await?,
        MailCommand::List { to, limit, format } => {
            let mut l = Listing::new(&[
                "id",
                "created",
                "to",
                "subject",
                "status",
                "attempts",
                "sent",
                "last_error",
            ]);
            for m in s.list_mail(to.as_deref(), limit).await? {
                l.push(vec![
                    json!(id18(&m.id)),
                    json!(fmt_ms(m.created_at)),
                    json!(m.to_addr),
                    json!(m.subject),
                    json!(m.status),
                    json!(m.attempts),
                    ms_json(m.sent_at),
                    json!(m.last_error),
                ]);
            }
            print(&l.render(format.format));
        }
        MailCommand::Show { id } => {
            let m = s.show_mail(&id).await?;
            let mut out = format!(
                "Id: {}\nTo: {}\nSubject: {}\nCreated: {}\nStatus: {}\nAttempts: {}\n",
                id18(&m.id),
                m.to_addr,
                m.subject,
                fmt_ms(m.created_at),
                m.status,
                m.attempts
            );
            if let Some(sent) = m.sent_at {
                out.push_str(&format!("Sent: {}\n", fmt_ms(sent)));
            }
            if let Some(e) = &m.last_error {
                out.push_str(&format!("Last error: {e}\n"));
            }
            out.push('\n');
            out.push_str(&m.body);
            if !out.ends_with('\n') {
                out.push('\n');
            }
            print(&out);
        }
    }
    Ok(())
}
