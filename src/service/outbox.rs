//! The outbox (R-E1): mail is written in the transaction of the change that causes it and
//! delivered afterwards by a worker, with retries and exponential backoff, so a crash or an SMTP
//! outage delays mail but never loses it. After `max_attempts` a message is dead and visible to
//! admins. Token mails lose their secret once delivered (or dead), and on SQLite the write-ahead
//! log is then truncated so no copy lingers on disk (R-T3).

use super::{Result, new_id};
use crate::clock::Clock;
use crate::clock::{from_ms, ms};
use crate::domain::ids::KeyPrefix;
use crate::mail::transport::{Outgoing, Transport};
use crate::mail::{Email, reveal};
use crate::store::outbox::{self as rows, OutboxRow};
use crate::store::{Conn, Db, meta};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Queues a mail inside the caller's transaction; returns its id.
pub async fn enqueue(
    c: &mut Conn<'_>,
    now_ms: i64,
    org_id: Option<&str>,
    email: Email,
) -> Result<String> {
    let id = new_id(KeyPrefix::Email);
    rows::insert(
        c,
        &OutboxRow {
            seq: 0,
            id: id.clone(),
            org_id: org_id.map(str::to_string),
            created_at: now_ms,
            kind: email.kind.as_str().to_string(),
            to_addr: email.to,
            subject: email.subject,
            body: email.body,
            secret: email.secret.map(|s| s.0),
            status: rows::QUEUED.to_string(),
            attempts: 0,
            next_attempt_at: now_ms,
            last_error: None,
            sent_at: None,
        },
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after the `attempts`-th failed attempt: base, 2×base, 4×base, … up to max.
    pub fn delay(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.base
            .checked_mul(2u32.saturating_pow(exp))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u32,
    pub failed: u32,
    pub dead: u32,
}

pub struct Outbox {
    db: Db,
    transport: Transport,
    from: String,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    poll: Duration,
    wake: Notify,
    /// A WAL checkpoint after scrubbing has not completed yet (R-T3).
    checkpoint_pending: std::sync::atomic::AtomicBool,
}

/// A running server's worker says so in the `meta` table every `HEARTBEAT` (docs/rules.md, Interfaces: CLI
/// commands leave delivery to a running server and deliver themselves only when none runs).
const HEARTBEAT_KEY: &str = "mail_worker_heartbeat";
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A heartbeat older than this means no server is running.
const HEARTBEAT_STALE: Duration = Duration::from_secs(15);

/// A claimed message is reserved for the worker that claimed it for the transport's timeout
/// plus this: longer than any delivery may take, so a slow one is not sent twice, and short
/// enough that a crashed node's message is retried soon. Messages are claimed one at a time, so
/// a crash strands only the one being delivered (35 s with the file transport, 60 s with
/// SMTP's default timeout), not a batch.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

impl Outbox {
    pub fn new(
        db: Db,
        transport: Transport,
        from: String,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
        poll: Duration,
    ) -> Outbox {
        Outbox {
            db,
            transport,
            from,
            clock,
            retry,
            poll,
            wake: Notify::new(),
            checkpoint_pending: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    /// Where a delivered message's file is, with the file transport.
    pub fn delivered_file(
        &self,
        seq: i64,
        id: &str,
        created_at_ms: i64,
    ) -> Option<std::path::PathBuf> {
        self.transport
            .delivered_file(seq, id, from_ms(created_at_ms))
    }

    /// Tells the worker that mail was queued, so it need not wait for its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers every message that is due now, oldest first.
    pub async fn deliver_due(&self) -> Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        let mut scrubbed = false;
        loop {
            let now = ms(self.clock.now());
            let lease = self.transport.send_timeout() + LEASE_MARGIN;
            let claimed = {
                let mut tx = self.db.begin().await?;
                let claimed =
                    rows::claim_due(&mut tx.as_conn(), now, lease.as_millis() as i64, 1).await?;
                tx.commit().await?;
                claimed
            };
            let Some(m) = claimed.first() else {
                break;
            };
            scrubbed |= m.secret.is_some();
            self.deliver_one(m, &mut report).await?;
        }
        // A checkpoint that readers kept from finishing is tried again on every later round
        // until it completes, so a scrubbed token never stays in the write-ahead log.
        use std::sync::atomic::Ordering;
        if scrubbed || self.checkpoint_pending.load(Ordering::Relaxed) {
            let done = match self.db.checkpoint().await {
                Ok(done) => done,
                Err(e) => {
                    tracing::debug!(error = %e, "WAL checkpoint after scrubbing postponed");
                    false
                }
            };
            self.checkpoint_pending.store(!done, Ordering::Relaxed);
        }
        Ok(report)
    }

    async fn deliver_one(&self, m: &OutboxRow, report: &mut DeliveryReport) -> Result<()> {
        let out = Outgoing {
            seq: m.seq,
            id: &m.id,
            created_at: from_ms(m.created_at),
            to: &m.to_addr,
            subject: &m.subject,
            body: reveal(&m.body, m.secret.as_deref()),
        };
        // The lease covers one delivery: a delivery must not outlast it, or another worker
        // would send the message again. (lettre's own timeout covers the connection only.)
        let result = match tokio::time::timeout(
            self.transport.send_timeout(),
            self.transport.send(&self.from, &out),
        )
        .await
        {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "delivery took longer than {} s",
                self.transport.send_timeout().as_secs()
            )),
        };
        let mut c = self.db.conn().await?;
        match result {
            Ok(()) => {
                rows::mark_sent(&mut c.as_conn(), &m.id, ms(self.clock.now())).await?;
                report.sent += 1;
                tracing::info!(mail_id = %m.id, kind = %m.kind, transport = self.transport.name(), "mail delivered");
            }
            Err(e) => {
                let now = self.clock.now();
                let retry_at = time::Duration::try_from(self.retry.delay(m.attempts))
                    .ok()
                    .and_then(|d| now.checked_add(d))
                    .unwrap_or(now);
                let dead = rows::mark_failed(
                    &mut c.as_conn(),
                    &m.id,
                    &e.to_string(),
                    ms(retry_at),
                    i64::from(self.retry.max_attempts),
                )
                .await?;
                if dead {
                    report.dead += 1;
                    tracing::error!(mail_id = %m.id, kind = %m.kind, attempts = m.attempts, error = %e, "mail dead after its last attempt");
                } else {
                    report.failed += 1;
                    tracing::warn!(mail_id = %m.id, kind = %m.kind, attempts = m.attempts, error = %e, "mail delivery failed; will retry");
                }
            }
        }
        Ok(())
    }

    /// The worker: delivers due mail, then sleeps until woken, until the next retry is due, or
    /// `poll` passes (mail queued by the CLI or another node), until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_beat: Option<std::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                self.beat(false).await;
                break;
            }
            if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                self.beat(true).await;
                last_beat = Some(std::time::Instant::now());
            }
            let pause = match self.deliver_due().await {
                Ok(_) => self.until_next_due().await,
                Err(e) => {
                    tracing::warn!(error = %e, "mail worker could not read the outbox");
                    self.poll
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Records (or, on shutdown, withdraws) that a server's worker is delivering mail.
    async fn beat(&self, alive: bool) {
        let result: Result<()> = async {
            let mut c = self.db.conn().await?;
            if alive {
                meta::set(
                    &mut c.as_conn(),
                    HEARTBEAT_KEY,
                    &ms(self.clock.now()).to_string(),
                )
                .await?;
            } else {
                meta::delete(&mut c.as_conn(), HEARTBEAT_KEY).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not record the mail worker's heartbeat");
        }
    }

    /// Is a server's mail worker running (a heartbeat within the last 15 seconds)?
    pub async fn server_worker_alive(&self) -> Result<bool> {
        let mut c = self.db.conn().await?;
        let beat = meta::get(&mut c.as_conn(), HEARTBEAT_KEY).await?;
        let now = ms(self.clock.now());
        Ok(beat
            .and_then(|b| b.parse::<i64>().ok())
            .is_some_and(|t| now - t < HEARTBEAT_STALE.as_millis() as i64))
    }

    /// Messages waiting for delivery.
    pub async fn backlog(&self) -> Result<i64> {
        let mut c = self.db.conn().await?;
        Ok(rows::backlog(&mut c.as_conn()).await?)
    }

    async fn until_next_due(&self) -> Duration {
        let next = match self.db.conn().await {
            Ok(mut c) => rows::next_due(&mut c.as_conn()).await.ok().flatten(),
            Err(_) => None,
        };
        match next {
            Some(at) => {
                let wait = at - ms(self.clock.now());
                Duration::from_millis(u64::try_from(wait).unwrap_or(0)).min(self.poll)
            }
            None => self.poll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_e1_backoff_doubles_up_to_the_maximum() {
        let r = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        assert_eq!(r.delay(1), Duration::from_secs(5));
        assert_eq!(r.delay(2), Duration::from_secs(10));
        assert_eq!(r.delay(3), Duration::from_secs(20));
        assert_eq!(r.delay(5), Duration::from_secs(60));
        assert_eq!(r.delay(500), Duration::from_secs(60));
        assert_eq!(r.delay(0), Duration::from_secs(5));
    }
}
