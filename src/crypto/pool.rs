//! The hash pool: `size` threads that run password hashes, and a bounded waiting room in front
//! of them with one lane per source address. A free thread takes the next hash from the
//! address with the least recent failed hash work (right passwords earn credit), so a
//! guessing address goes behind every address that does not guess; when the room is full, the
//! address asking the most is turned away ([`CryptoError::Busy`]). Each thread keeps its
//! Argon2 memory from one hash to the next, so hashing memory stays at `size × memory_kib`.

use super::CryptoError;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One hash waiting for a thread.
pub(crate) trait Job: Send {
    /// Runs it, on a pool thread; true when the hash proved a password (it is not counted
    /// against its address).
    fn run(self: Box<Self>) -> bool;
    /// Tells its caller it was turned away, or that the pool is closing.
    fn refuse(self: Box<Self>, why: CryptoError);
    /// Nobody waits for its result any more: it need not run.
    fn abandoned(&self) -> bool;
}

/// How fast an address's recent work is forgotten.
const HALF_LIFE: Duration = Duration::from_secs(10);
/// Below this much decayed work (or credit) an address is forgotten (when the map is pruned).
const FORGOTTEN: f64 = 0.01;
/// The most credit an address earns with hashes that proved a password; it decays as work
/// does, so an address cannot bank it.
const CREDIT: f64 = 8.0;

/// Hash work an address was given lately.
#[derive(Clone, Copy)]
struct Usage {
    work: f64,
    at: Instant,
}

impl Usage {
    fn now(self, now: Instant) -> f64 {
        let halvings =
            now.saturating_duration_since(self.at).as_secs_f64() / HALF_LIFE.as_secs_f64();
        self.work * 0.5f64.powf(halvings)
    }
}

/// An address's waiting hashes, oldest first, each with its arrival number.
type Lane = VecDeque<(u64, Box<dyn Job>)>;

struct State {
    lanes: HashMap<String, Lane>,
    usage: HashMap<String, Usage>,
    arrivals: u64,
    waiting: usize,
    /// Threads running a hash.
    busy: usize,
    /// 0: no bound.
    max_waiting: usize,
    refused: u64,
    closed: bool,
}

impl State {
    fn work(&self, lane: &str, now: Instant) -> f64 {
        self.usage.get(lane).map_or(0.0, |u| u.now(now))
    }

    /// One more hash for `lane`; forgets idle addresses now and then, so the map holds only
    /// the addresses seen lately.
    fn served(&mut self, lane: &str, now: Instant) {
        let work = self.work(lane, now) + 1.0;
        self.usage.insert(lane.to_string(), Usage { work, at: now });
        if self.usage.len() > 1024 + 4 * self.lanes.len() {
            let lanes = &self.lanes;
            self.usage
                .retain(|k, u| u.now(now).abs() > FORGOTTEN || lanes.contains_key(k));
        }
    }

    /// A hash of `lane`'s proved a password: its work is given back, and one more as credit
    /// (up to [`CREDIT`]), so the address goes ahead of fresh ones too.
    fn proved(&mut self, lane: &str, now: Instant) {
        if let Some(u) = self.usage.get_mut(lane) {
            *u = Usage {
                work: (u.now(now) - 2.0).max(-CREDIT),
                at: now,
            };
        }
    }

    /// How much an address asks of the pool: its recent work and its waiters.
    fn demand(&self, lane: &str, now: Instant) -> f64 {
        self.work(lane, now) + self.lanes.get(lane).map_or(0, VecDeque::len) as f64
    }

    /// The next hash to run, and its lane: the first waiter of the address with the least
    /// recent work — where every address in credit (work below zero: it proved passwords
    /// lately and failed less) counts as having none, so those go first, in arrival order.
    /// Ranking them by their credit starved some: credit decays while an address waits, so
    /// the address that had waited longest ranked last among the busy ones (up to 7 s behind
    /// seven others logging in all the time, BENCHMARKS.md).
    fn next(&mut self, now: Instant) -> Option<(String, Box<dyn Job>)> {
        let rank = |work: f64| if work < 0.0 { (0u8, 0.0) } else { (1u8, work) };
        let (_, _, lane) = self
            .lanes
            .iter()
            .filter_map(|(lane, q)| q.front().map(|(seq, _)| (lane, *seq)))
            .map(|(lane, seq)| (rank(self.work(lane, now)), seq, lane.clone()))
            .min_by(|a, b| {
                (a.0.0.cmp(&b.0.0))
                    .then(a.0.1.total_cmp(&b.0.1))
                    .then(a.1.cmp(&b.1))
            })?;
        let queue = self.lanes.get_mut(&lane)?;
        let (_, job) = queue.pop_front()?;
        if queue.is_empty() {
            self.lanes.remove(&lane);
        }
        self.waiting -= 1;
        self.served(&lane, now);
        Some((lane, job))
    }
}

struct Shared {
    state: Mutex<State>,
    work_to_do: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock; if something panicked while holding it, the counts are
        // still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pool. The threads stop when it is dropped.
pub(crate) struct HashPool(Arc<Shared>);

impl HashPool {
    pub(crate) fn start(size: usize, max_waiting: usize) -> Result<HashPool, CryptoError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lanes: HashMap::new(),
                usage: HashMap::new(),
                arrivals: 0,
                waiting: 0,
                busy: 0,
                max_waiting,
                refused: 0,
                closed: false,
            }),
            work_to_do: Condvar::new(),
        });
        for i in 0..size.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("keyward-hash-{i}"))
                .spawn(move || work(&shared))
                .map_err(|e| CryptoError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(HashPool(shared))
    }

    /// Queues a hash in `lane`'s turn. A full room turns away the address asking the most —
    /// this job (its `refuse` is called before this returns) or another address's newest.
    pub(crate) fn submit(&self, lane: &str, job: Box<dyn Job>) {
        let evicted = {
            let mut s = self.0.lock();
            if s.closed {
                drop(s);
                job.refuse(CryptoError::PoolClosed);
                return;
            }
            let now = Instant::now();
            let mut evicted = None;
            if s.max_waiting > 0 && s.waiting >= s.max_waiting {
                let mine = s.demand(lane, now) + 1.0;
                let heaviest = s
                    .lanes
                    .keys()
                    .map(|l| (s.demand(l, now), l.clone()))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                s.refused += 1;
                let waiting = u64::try_from(s.waiting).unwrap_or(u64::MAX);
                match heaviest {
                    Some((demand, name)) if demand > mine => {
                        let out = s.lanes.get_mut(&name).and_then(VecDeque::pop_back);
                        if s.lanes.get(&name).is_some_and(VecDeque::is_empty) {
                            s.lanes.remove(&name);
                        }
                        if let Some((_, out)) = out {
                            s.waiting -= 1;
                            evicted = Some((out, waiting));
                        }
                    }
                    _ => {
                        drop(s);
                        job.refuse(CryptoError::Busy(waiting));
                        return;
                    }
                }
            }
            s.arrivals += 1;
            let seq = s.arrivals;
            s.lanes
                .entry(lane.to_string())
                .or_default()
                .push_back((seq, job));
            s.waiting += 1;
            evicted
        };
        self.0.work_to_do.notify_one();
        if let Some((out, waiting)) = evicted {
            out.refuse(CryptoError::Busy(waiting));
        }
    }

    /// Changes the waiting room's size (0: no bound).
    pub(crate) fn set_max_waiting(&self, max_waiting: usize) {
        self.0.lock().max_waiting = max_waiting;
    }

    /// Hashes waiting for a thread.
    pub(crate) fn waiting(&self) -> u64 {
        u64::try_from(self.0.lock().waiting).unwrap_or(u64::MAX)
    }

    /// Threads running a hash now.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> usize {
        self.0.lock().busy
    }

    /// Hashes turned away because the waiting room was full.
    pub(crate) fn refused(&self) -> u64 {
        self.0.lock().refused
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        let left: Vec<Box<dyn Job>> = {
            let mut s = self.0.lock();
            s.closed = true;
            s.waiting = 0;
            s.lanes
                .drain()
                .flat_map(|(_, q)| q.into_iter().map(|(_, j)| j))
                .collect()
        };
        self.0.work_to_do.notify_all();
        for job in left {
            job.refuse(CryptoError::PoolClosed);
        }
    }
}

/// A pool thread: takes the next hash as soon as it finishes one.
fn work(shared: &Shared) {
    let mut s = shared.lock();
    loop {
        if s.closed {
            return;
        }
        let Some((lane, job)) = s.next(Instant::now()) else {
            s = shared.work_to_do.wait(s).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        if job.abandoned() {
            continue;
        }
        s.busy += 1;
        drop(s);
        let proved = job.run();
        s = shared.lock();
        s.busy -= 1;
        if proved {
            s.proved(&lane, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A job that records its name when it runs (or "<name> refused"), then waits for `hold`
    /// to be dropped (if it has one).
    struct Probe {
        name: &'static str,
        log: mpsc::Sender<String>,
        hold: Option<mpsc::Receiver<()>>,
    }

    impl Job for Probe {
        fn run(self: Box<Self>) -> bool {
            let _ = self.log.send(self.name.to_string());
            if let Some(hold) = &self.hold {
                let _ = hold.recv();
            }
            // A probe named "ok…" proves its password.
            self.name.starts_with("ok")
        }
        fn refuse(self: Box<Self>, why: CryptoError) {
            let _ = self.log.send(format!("{} refused: {why}", self.name));
        }
        fn abandoned(&self) -> bool {
            self.name.starts_with("gone")
        }
    }

    struct Bench {
        pool: HashPool,
        log: mpsc::Sender<String>,
        seen: mpsc::Receiver<String>,
    }

    impl Bench {
        fn new(size: usize, room: usize) -> Bench {
            let (log, seen) = mpsc::channel();
            Bench {
                pool: HashPool::start(size, room).unwrap(),
                log,
                seen,
            }
        }

        fn submit(&self, lane: &str, name: &'static str) {
            self.pool.submit(
                lane,
                Box::new(Probe {
                    name,
                    log: self.log.clone(),
                    hold: None,
                }),
            );
        }

        /// Occupies a thread until the returned sender is dropped.
        fn hold(&self, lane: &str) -> mpsc::Sender<()> {
            let (release, hold) = mpsc::channel();
            self.pool.submit(
                lane,
                Box::new(Probe {
                    name: "held",
                    log: self.log.clone(),
                    hold: Some(hold),
                }),
            );
            assert_eq!(self.next(), "held");
            release
        }

        fn next(&self) -> String {
            self.seen
                .recv_timeout(Duration::from_secs(10))
                .expect("nothing happened")
        }

        fn next_n(&self, n: usize) -> Vec<String> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    #[test]
    fn a_quiet_address_goes_before_a_flooding_one() {
        let b = Bench::new(1, 0);
        let held = b.hold("x");
        for name in ["flood1", "flood2", "flood3", "flood4"] {
            b.submit("attacker", name);
        }
        b.submit("good", "good");
        assert_eq!(b.pool.waiting(), 5);
        drop(held);
        // The good login arrived last, behind four from one address; once that address has had
        // a hash, the good login goes first.
        assert_eq!(
            b.next_n(5),
            ["flood1", "good", "flood2", "flood3", "flood4"]
        );
        assert_eq!(b.pool.waiting(), 0);
    }

    #[test]
    fn only_failed_work_counts_against_an_address() {
        let b = Bench::new(1, 0);
        // An office's people have logged in three times; a guesser has guessed once.
        for name in ["ok1", "ok2", "ok3"] {
            b.submit("office", name);
            assert_eq!(b.next(), name);
        }
        b.submit("guesser", "guess1");
        assert_eq!(b.next(), "guess1");
        let held = b.hold("x");
        b.submit("guesser", "guess2");
        b.submit("fresh", "fresh1");
        b.submit("office", "ok4");
        drop(held);
        // The office arrived last and has had more hashes, but none of them failed: it goes
        // ahead of the guesser and of an address never seen before.
        assert_eq!(b.next_n(3), ["ok4", "fresh1", "guess2"]);
    }

    #[test]
    fn addresses_in_credit_take_turns_in_arrival_order() {
        let b = Bench::new(1, 0);
        // Two offices log in (each probe proves its password), one more often than the other:
        // both are in credit, one more than the other.
        for name in ["ok-a1", "ok-a2", "ok-a3", "ok-a4"] {
            b.submit("office-a", name);
            assert_eq!(b.next(), name);
        }
        b.submit("office-b", "ok-b1");
        assert_eq!(b.next(), "ok-b1");
        let held = b.hold("x");
        b.submit("office-b", "ok-b2");
        b.submit("office-a", "ok-a5");
        b.submit("fresh", "fresh1");
        b.submit("office-b", "ok-b3");
        drop(held);
        // More credit does not jump the queue: b2 came first. Both offices go before an
        // address never seen before.
        assert_eq!(b.next_n(4), ["ok-b2", "ok-a5", "ok-b3", "fresh1"]);
    }

    #[test]
    fn a_full_waiting_room_turns_away_the_address_asking_the_most() {
        let b = Bench::new(1, 3);
        let held = b.hold("x");
        for name in ["a1", "a2", "a3"] {
            b.submit("a", name);
        }
        // Full. A newcomer from another address takes the place of a's newest waiter.
        b.submit("b", "b1");
        assert_eq!(
            b.next(),
            "a3 refused: too many password checks are waiting (3); try again shortly"
        );
        // Still full, and a would ask the most: a's newcomer is refused at once.
        b.submit("a", "a4");
        assert!(b.next().starts_with("a4 refused"));
        assert_eq!(b.pool.refused(), 2);
        drop(held);
        assert_eq!(b.next_n(3), ["a1", "b1", "a2"]);
    }

    #[test]
    fn a_room_full_of_single_waiters_from_busy_addresses_still_admits_a_quiet_one() {
        let b = Bench::new(1, 4);
        let bots = ["bot0", "bot1", "bot2", "bot3"];
        // Each bot has had a hash already.
        for bot in bots {
            b.submit(bot, bot);
            assert_eq!(b.next(), bot);
        }
        let held = b.hold("x");
        for bot in bots {
            b.submit(bot, bot);
        }
        // Full, one waiter per address: the quiet address takes a bot's place, not a 503.
        b.submit("quiet", "quiet");
        assert!(b.next().contains("refused"));
        drop(held);
        let order = b.next_n(4);
        assert_eq!(order[0], "quiet", "{order:?}");
        assert_eq!(b.pool.refused(), 1);
    }

    #[test]
    fn abandoned_hashes_do_not_run() {
        let b = Bench::new(1, 0);
        let held = b.hold("x");
        b.submit("a", "gone");
        b.submit("b", "b");
        drop(held);
        assert_eq!(b.next(), "b");
        assert_eq!(b.pool.waiting(), 0);
    }

    #[test]
    fn never_more_than_size_at_once_and_closing_refuses_the_rest() {
        let b = Bench::new(3, 0);
        let holds: Vec<_> = (0..3).map(|i| b.hold(["a", "b", "c"][i])).collect();
        assert_eq!(b.pool.busy(), 3);
        b.submit("d", "d1");
        b.submit("d", "d2");
        assert_eq!(b.pool.waiting(), 2, "no fourth thread took them");
        drop(holds);
        let mut ran = b.next_n(2);
        ran.sort();
        assert_eq!(ran, ["d1", "d2"]);
        // All three threads busy again, so e1 waits (with a thread free it could run at once).
        let held: Vec<_> = (0..3).map(|i| b.hold(["a", "b", "c"][i])).collect();
        b.submit("e", "e1");
        let Bench { pool, seen, .. } = b;
        drop(pool);
        assert!(seen.recv().unwrap().starts_with("e1 refused"));
        drop(held);
    }
}
