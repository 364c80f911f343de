//! SQLite's writers in this process: the line they wait in for their turn, and the one-step
//! login writes that the turn holder commits as a group.

use super::args::Args;
use super::{Result, StoreError};
use sqlx::SqlitePool;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// SQLite's writers in this process, in line: a write transaction (and a one-step login write)
/// waits here for the one before it instead of meeting SQLite's lock and polling for it with
/// sleeps that grow to 100 ms — under a flood of failed logins, each a write, a legitimate
/// login's write could sleep through many of them (BENCHMARKS.md, item 4). First come first
/// served, except that a successful login's one-step write goes ahead of the writes waiting
/// behind the current one: under a flood, the line is mostly failures. Other processes (the
/// CLI) still meet SQLite's own lock and its busy timeout.
///
/// One-step writes waiting in line are committed together ([`Writers::one_step`]).
#[derive(Clone, Debug, Default)]
pub struct Writers {
    line: Arc<Mutex<Line>>,
    pending: Arc<Pending>,
}

#[derive(Debug, Default)]
struct Line {
    /// A writer holds the turn.
    busy: bool,
    first: VecDeque<oneshot::Sender<()>>,
    rest: VecDeque<oneshot::Sender<()>>,
}

/// The turn to write, held until dropped; then it passes to the next in line.
pub struct WriterTurn(Option<Writers>);

/// How long a writer waits in line before it goes ahead anyway and meets SQLite's own lock (and
/// busy timeout): a turn held that long is a bug, not a reason to hang.
const WRITER_WAIT: Duration = Duration::from_secs(10);

impl Writers {
    fn line(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the turn; `first`: ahead of the writers already waiting that are not.
    pub(super) async fn turn(&self, first: bool) -> WriterTurn {
        let rx = {
            let mut line = self.line();
            if !line.busy {
                line.busy = true;
                return WriterTurn(Some(self.clone()));
            }
            let (tx, rx) = oneshot::channel();
            if first {
                line.first.push_back(tx);
            } else {
                line.rest.push_back(tx);
            }
            rx
        };
        let mut waiting = Waiting {
            rx: Some(rx),
            writers: self,
        };
        let Some(rx) = waiting.rx.as_mut() else {
            return WriterTurn(None);
        };
        let handed = tokio::time::timeout(WRITER_WAIT, rx).await;
        match handed {
            Ok(Ok(())) => {
                waiting.rx = None;
                WriterTurn(Some(self.clone()))
            }
            // Timed out (`waiting`'s drop passes on a turn handed over at the last moment), or
            // the line is gone: go ahead and meet SQLite's own lock.
            _ => {
                tracing::warn!("waited {WRITER_WAIT:?} for SQLite's write turn; going ahead");
                WriterTurn(None)
            }
        }
    }

    /// Passes the turn to the next waiter still waiting, or frees it.
    fn pass(&self) {
        let mut line = self.line();
        while let Some(tx) = line.first.pop_front().or_else(|| line.rest.pop_front()) {
            if tx.send(()).is_ok() {
                return;
            }
        }
        line.busy = false;
    }
}

/// A place in line. Dropped before the turn arrived (its future cancelled, or timed out), it
/// closes its receiver; a turn that had already been handed to it is passed on, not lost.
struct Waiting<'a> {
    rx: Option<oneshot::Receiver<()>>,
    writers: &'a Writers,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.writers.pass();
            }
        }
    }
}

impl Drop for WriterTurn {
    fn drop(&mut self) {
        if let Some(writers) = self.0.take() {
            writers.pass();
        }
    }
}

/// A one-step write: its statements, without a transaction of their own, ending with the
/// `SELECT changes()` of the chain's last write (1: written), and their parameters `$1`….
pub(crate) struct Job {
    pub sql: &'static str,
    pub args: Args,
}

type Answer = oneshot::Sender<Result<bool>>;

/// The most writes one group commits: a batch of more gains little (a flush is shared by
/// enough already) and prepares its statements for itself.
const MAX_GROUP: usize = 32;

/// The largest group whose batch stays prepared (`batch`).
const KEPT_PREPARED: usize = 4;

/// The one-step writes waiting for a turn.
#[derive(Default)]
struct Pending(Mutex<Vec<(Job, Answer)>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<(Job, Answer)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Writers {
    /// Runs a one-step write and answers whether its guard matched (true: written). A login's
    /// write arriving while another commits waits for the turn anyway, and each hop to SQLite's
    /// thread costs more than the statements it carries: whoever gets the turn commits the
    /// one-step writes waiting by then in one batch, one transaction and one disk flush. If the
    /// batch meets a conflict, each write runs again alone, so that error is only its own.
    pub(crate) async fn one_step(&self, pool: &SqlitePool, job: Job) -> Result<bool> {
        debug_assert_eq!(highest_param(job.sql), job.args.len(), "{}", job.sql);
        let (tx, mut rx) = oneshot::channel();
        self.pending.jobs().push((job, tx));
        // Until answered: a turn may come while this write is in another's group, or (behind
        // a full group) still waiting.
        loop {
            let turn = tokio::select! {
                biased;
                done = &mut rx => return answered(done),
                turn = self.turn(true) => turn,
            };
            let jobs: Vec<_> = {
                let mut pending = self.pending.jobs();
                // A write whose caller went away before its turn is not made, as it would not
                // have been without the group.
                pending.retain(|(_, tx)| !tx.is_closed());
                let n = pending.len().min(MAX_GROUP);
                pending.drain(..n).collect()
            };
            if !jobs.is_empty() {
                // On a task of its own, holding the turn: this caller going away must not
                // leave the rest of the group unanswered or half written.
                tokio::spawn(commit(pool.clone(), jobs, turn));
            }
        }
    }
}

fn answered(done: std::result::Result<Result<bool>, oneshot::error::RecvError>) -> Result<bool> {
    done.unwrap_or_else(|_| Err(StoreError::Other("a grouped write was dropped".into())))
}

/// Commits a group and answers each of its writes; the turn passes on once all are answered.
async fn commit(pool: SqlitePool, mut jobs: Vec<(Job, Answer)>, turn: WriterTurn) {
    // Writes of one kind side by side: a small group's text then depends on how many of each
    // kind it holds, not on their order, and stays prepared (`batch`).
    jobs.sort_by_key(|(job, _)| job.sql.as_ptr());
    let (jobs, answers): (Vec<Job>, Vec<Answer>) = jobs.into_iter().unzip();
    let written = match batch(&pool, &jobs).await {
        Ok(written) => written.into_iter().map(Ok).collect(),
        // A conflict is one write's (a duplicate row): the others run again without it. Any
        // other error (the database busy, the disk full) is every write's, and not retried.
        Err(StoreError::Conflict(_)) if jobs.len() > 1 => {
            let mut each = Vec::with_capacity(jobs.len());
            for job in &jobs {
                each.push(batch(&pool, std::slice::from_ref(job)).await.map(|w| w[0]));
            }
            each
        }
        Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
    };
    for (tx, written) in answers.into_iter().zip(written) {
        let _ = tx.send(written);
    }
    drop(turn);
}

/// Runs `jobs` in one transaction sent as one batch: whether each was written. On an error
/// nothing is written (but for an answer of the wrong length, a bug, after the commit).
async fn batch(pool: &SqlitePool, jobs: &[Job]) -> Result<Vec<bool>> {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    let mut offset = 0;
    for job in jobs {
        shifted(&mut sql, job.sql, offset);
        sql.push_str("; ");
        offset += job.args.len();
    }
    sql.push_str("COMMIT");
    // A group of up to four writes of three kinds has one of 34 texts, kept prepared (about
    // 22 KB per write on each connection); a larger one's would fill the statement cache with
    // megabytes, and is prepared for itself.
    let query = jobs
        .iter()
        .fold(sqlx::query_scalar::<_, i64>(&sql), |q, job| {
            job.args.clone().bound_sqlite(q)
        })
        .persistent(jobs.len() <= KEPT_PREPARED);
    let mut conn = pool.acquire().await?;
    match query.fetch_all(&mut *conn).await {
        Ok(rows) if rows.len() == jobs.len() => Ok(rows.iter().map(|&n| n == 1).collect()),
        Ok(rows) => Err(StoreError::Other(format!(
            "{} one-step writes answered {} rows",
            jobs.len(),
            rows.len()
        ))),
        Err(e) => {
            // Stopped part-way, the transaction may still be open on this connection: end it,
            // or close the connection rather than hand it back to the pool.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
            Err(e.into())
        }
    }
}

/// The highest parameter number `$n` in `sql`: a job binds exactly that many values, or it
/// would read the next job's in a batch.
fn highest_param(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..digits].parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Appends `sql` with each parameter `$n` renumbered `$(n + offset)`: the writes of a batch
/// each number theirs from 1.
fn shifted(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::Writers;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    type Waiter = Pin<Box<dyn Future<Output = super::WriterTurn> + Send>>;

    fn waiter(w: &Writers, first: bool) -> Waiter {
        let w = w.clone();
        Box::pin(async move { w.turn(first).await })
    }

    fn poll(f: &mut Waiter) -> Option<super::WriterTurn> {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(t) => Some(t),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_success_goes_ahead_of_the_waiting_writers_and_the_rest_keep_their_order() {
        let w = Writers::default();
        let held = w.turn(false).await;
        let (mut a, mut b, mut success) = (waiter(&w, false), waiter(&w, false), waiter(&w, true));
        for f in [&mut a, &mut b, &mut success] {
            assert!(poll(f).is_none(), "the turn is held");
        }
        drop(held);
        assert!(poll(&mut a).is_none() && poll(&mut b).is_none());
        let turn = poll(&mut success).expect("the success goes first");
        drop(turn);
        assert!(poll(&mut b).is_none());
        let turn = poll(&mut a).expect("then the first to come");
        drop(turn);
        let turn = poll(&mut b).expect("then the next");
        drop(turn);
        assert!(w.turn(false).await.0.is_some(), "and the line is free");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_take_the_turn_with_it() {
        let w = Writers::default();
        let held = w.turn(false).await;
        let (mut gone, mut next) = (waiter(&w, false), waiter(&w, false));
        assert!(poll(&mut gone).is_none() && poll(&mut next).is_none());
        // The turn is handed to `gone`, which is dropped before it looks: it passes on.
        drop(held);
        drop(gone);
        let turn = poll(&mut next).expect("the next waiter has the turn");
        // One cancelled while still waiting is skipped.
        let mut cancelled = waiter(&w, true);
        assert!(poll(&mut cancelled).is_none());
        drop(cancelled);
        drop(turn);
        assert!(poll(&mut waiter(&w, false)).is_some(), "the line is free");
    }

    /// Writes that wait while the turn is held are committed by the next turn holder in one
    /// batch; when one of them fails, the others are written all the same and the failing one
    /// leaves nothing behind; one whose caller gave up before the turn is not made.
    #[tokio::test]
    async fn waiting_one_step_writes_commit_as_one_group_each_atomic_by_itself() {
        use super::Job;
        use crate::store::args::Args;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (0, '')",
        )
        .execute(&pool)
        .await
        .unwrap();
        let w = Writers::default();
        let held = w.turn(false).await;
        type Write = Pin<Box<dyn Future<Output = crate::store::Result<bool>> + Send>>;
        let write = |sql: &'static str, id: i64, v: &str| -> Write {
            let (w, pool) = (w.clone(), pool.clone());
            let args = Args::default().bind(id).bind(v);
            Box::pin(async move { w.one_step(&pool, Job { sql, args }).await })
        };
        const INSERT: &str = "INSERT INTO t VALUES ($1, $2); SELECT changes()";
        // Its first insert succeeds, its second meets the row there before: both undone.
        const TWICE: &str = "INSERT INTO t VALUES ($1, $2); INSERT INTO t VALUES (0, $2); \
            SELECT changes()";
        const NOTHING: &str = "INSERT INTO t SELECT $1, $2 WHERE 0; SELECT changes()";
        let mut a = write(INSERT, 1, "a");
        let mut b = write(TWICE, 2, "b");
        let mut c = write(INSERT, 3, "c");
        let mut d = write(NOTHING, 4, "d");
        let mut gone = write(INSERT, 5, "gone");
        let cx = &mut Context::from_waker(Waker::noop());
        for f in [&mut a, &mut b, &mut c, &mut d, &mut gone] {
            assert!(f.as_mut().poll(cx).is_pending(), "the turn is held");
        }
        // Its caller gave up before the turn came: its write is not made.
        drop(gone);
        drop(held);
        assert!(a.await.unwrap());
        // Answered by a's group without a turn of their own.
        let mut answered = |f: &mut Write| match f.as_mut().poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("not answered by a's group"),
        };
        let b = answered(&mut b);
        assert!(
            matches!(b, Err(crate::store::StoreError::Conflict(_))),
            "{b:?}"
        );
        assert!(answered(&mut c).unwrap());
        assert!(
            !answered(&mut d).unwrap(),
            "a write whose guard matched nothing"
        );
        let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM t WHERE id > 0 ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows, ["a", "c"]);
        assert!(w.turn(false).await.0.is_some(), "the line is free");
    }

    #[test]
    fn parameters_are_renumbered_for_their_place_in_the_batch() {
        let mut out = String::new();
        super::shifted(&mut out, "SELECT $1, $10 WHERE x = $2 AND '$' = $", 23);
        assert_eq!(out, "SELECT $24, $33 WHERE x = $25 AND '$' = $");
        assert_eq!(super::highest_param("SELECT $1, $10 WHERE x = $2"), 10);
    }
}
