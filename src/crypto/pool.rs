//! Admission to the hash pool: at most `size` hashes run at once, and the rest wait in lanes —
//! one per source address. When a place frees up, it goes to the waiting address that has had
//! the least hash work lately (a count of the hashes it was given, halving every 10 seconds),
//! the first to arrive among equals. An address that floods is given more and more work, so it
//! goes behind the addresses that send little: a login from a quiet address waits for the
//! hashes already running, not for the flood. The waiting room is bounded too: when it is full,
//! the address with the most recent work and waiters is turned away ([`CryptoError::Busy`]) —
//! its newest waiter, or the newcomer itself when the newcomer's address would rank highest.

use super::CryptoError;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Grant = oneshot::Sender<Result<Permit, CryptoError>>;

/// How fast an address's recent work is forgotten.
const HALF_LIFE: Duration = Duration::from_secs(10);
/// Below this much decayed work an address is forgotten (when the map is pruned).
const FORGOTTEN: f64 = 0.01;

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

struct State {
    /// Places not in use. Positive only while nobody waits: a released place goes straight to
    /// the next waiter.
    free: usize,
    /// Waiters per address, oldest first, each with its arrival number.
    lanes: HashMap<String, VecDeque<(u64, Grant)>>,
    usage: HashMap<String, Usage>,
    arrivals: u64,
    waiting: usize,
    /// 0: no bound.
    max_waiting: usize,
    refused: u64,
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
                .retain(|k, u| u.now(now) > FORGOTTEN || lanes.contains_key(k));
        }
    }

    /// How much an address asks of the pool: its recent work and its waiters.
    fn demand(&self, lane: &str, now: Instant) -> f64 {
        self.work(lane, now) + self.lanes.get(lane).map_or(0, VecDeque::len) as f64
    }
}

/// The pool's admission. Cheap to share: clones are the same pool.
#[derive(Clone)]
pub(crate) struct FairPool(Arc<Mutex<State>>);

/// One place in the pool, given back when dropped (wherever the work that holds it ends).
pub(crate) struct Permit(Option<Arc<Mutex<State>>>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            release(&pool);
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding it; if something did, the counts are still whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands the place to the first waiter of the address with the least recent work, or frees it.
fn release(pool: &Arc<Mutex<State>>) {
    let mut s = lock(pool);
    let now = Instant::now();
    loop {
        let next = s
            .lanes
            .iter()
            .filter_map(|(lane, q)| q.front().map(|(seq, _)| (lane, *seq)))
            .map(|(lane, seq)| (s.work(lane, now), seq, lane.clone()))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let Some((_, _, lane)) = next else {
            s.free += 1;
            return;
        };
        let Some(queue) = s.lanes.get_mut(&lane) else {
            continue;
        };
        let grant = queue.pop_front();
        if queue.is_empty() {
            s.lanes.remove(&lane);
        }
        let Some((_, grant)) = grant else { continue };
        s.waiting -= 1;
        match grant.send(Ok(Permit(Some(pool.clone())))) {
            Ok(()) => {
                s.served(&lane, now);
                return;
            }
            // The waiter gave up: disarm the permit it did not take and try the next one.
            Err(Ok(mut unused)) => {
                unused.0 = None;
            }
            Err(Err(_)) => {}
        }
    }
}

impl FairPool {
    pub(crate) fn new(size: usize, max_waiting: usize) -> FairPool {
        FairPool(Arc::new(Mutex::new(State {
            free: size.max(1),
            lanes: HashMap::new(),
            usage: HashMap::new(),
            arrivals: 0,
            waiting: 0,
            max_waiting,
            refused: 0,
        })))
    }

    /// Waits for a place, in `lane`'s turn.
    pub(crate) async fn acquire(&self, lane: &str) -> Result<Permit, CryptoError> {
        let granted = {
            let mut s = lock(&self.0);
            let now = Instant::now();
            if s.free > 0 {
                s.free -= 1;
                s.served(lane, now);
                return Ok(Permit(Some(self.0.clone())));
            }
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
                        let evicted = s.lanes.get_mut(&name).and_then(VecDeque::pop_back);
                        if s.lanes.get(&name).is_some_and(VecDeque::is_empty) {
                            s.lanes.remove(&name);
                        }
                        if let Some((_, evicted)) = evicted {
                            s.waiting -= 1;
                            let _ = evicted.send(Err(CryptoError::Busy(waiting)));
                        }
                    }
                    _ => return Err(CryptoError::Busy(waiting)),
                }
            }
            let (grant, granted) = oneshot::channel();
            s.arrivals += 1;
            let seq = s.arrivals;
            s.lanes
                .entry(lane.to_string())
                .or_default()
                .push_back((seq, grant));
            s.waiting += 1;
            granted
        };
        granted.await.map_err(|_| CryptoError::PoolClosed)?
    }

    /// Callers waiting for a place.
    pub(crate) fn waiting(&self) -> u64 {
        u64::try_from(lock(&self.0).waiting).unwrap_or(u64::MAX)
    }

    /// Places not in use.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        lock(&self.0).free
    }

    /// Callers turned away because the waiting room was full.
    pub(crate) fn refused(&self) -> u64 {
        lock(&self.0).refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::task::JoinHandle;

    /// Queues a waiter on `lane` that, once served, records its name in `served` and holds its
    /// place until `done` says so.
    fn waiter(
        pool: &FairPool,
        lane: &'static str,
        name: &'static str,
        served: &Arc<Mutex<Vec<&'static str>>>,
    ) -> JoinHandle<Result<(), CryptoError>> {
        let (pool, served) = (pool.clone(), served.clone());
        tokio::spawn(async move {
            let permit = pool.acquire(lane).await?;
            served.lock().unwrap().push(name);
            drop(permit);
            Ok(())
        })
    }

    async fn until_waiting(pool: &FairPool, n: u64) {
        while pool.waiting() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_quiet_address_goes_before_a_flooding_one() {
        let pool = FairPool::new(1, 0);
        let held = pool.acquire("x").await.unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, name) in ["flood1", "flood2", "flood3", "flood4"]
            .into_iter()
            .enumerate()
        {
            tasks.push(waiter(&pool, "attacker", name, &served));
            until_waiting(&pool, i as u64 + 1).await;
        }
        tasks.push(waiter(&pool, "good", "good", &served));
        until_waiting(&pool, 5).await;
        drop(held);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // The good login arrived last, behind four from one address; once that address has had a
        // hash, the good login goes first.
        assert_eq!(
            *served.lock().unwrap(),
            ["flood1", "good", "flood2", "flood3", "flood4"]
        );
        assert_eq!(pool.free(), 1);
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn a_full_waiting_room_turns_away_the_longest_lane() {
        let pool = FairPool::new(1, 3);
        let held = pool.acquire("x").await.unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let a1 = waiter(&pool, "a", "a1", &served);
        until_waiting(&pool, 1).await;
        let a2 = waiter(&pool, "a", "a2", &served);
        until_waiting(&pool, 2).await;
        let a3 = waiter(&pool, "a", "a3", &served);
        until_waiting(&pool, 3).await;
        // Full. A newcomer from another address takes the place of a's newest waiter.
        let b1 = waiter(&pool, "b", "b1", &served);
        assert!(matches!(a3.await.unwrap(), Err(CryptoError::Busy(3))));
        until_waiting(&pool, 3).await;
        // Still full, and a's lane would be the longest: a is refused at once.
        assert!(matches!(pool.acquire("a").await, Err(CryptoError::Busy(3))));
        assert_eq!(pool.refused(), 2);
        drop(held);
        for t in [a1, a2, b1] {
            t.await.unwrap().unwrap();
        }
        assert_eq!(*served.lock().unwrap(), ["a1", "b1", "a2"]);
        assert_eq!(pool.free(), 1);
    }

    #[tokio::test]
    async fn a_room_full_of_single_waiters_from_busy_addresses_still_admits_a_quiet_one() {
        let pool = FairPool::new(1, 4);
        let bots = ["bot0", "bot1", "bot2", "bot3"];
        // Each bot has had a hash already.
        for bot in bots {
            drop(pool.acquire(bot).await.unwrap());
        }
        let held = pool.acquire("x").await.unwrap();
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut bot_waiters = Vec::new();
        for (i, bot) in bots.into_iter().enumerate() {
            bot_waiters.push(waiter(&pool, bot, bot, &served));
            until_waiting(&pool, i as u64 + 1).await;
        }
        // Full, one waiter per address: the quiet address takes a bot's place, not a 503.
        let quiet = waiter(&pool, "quiet", "quiet", &served);
        while pool.refused() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        quiet.await.unwrap().unwrap();
        let mut turned_away = 0;
        for t in bot_waiters {
            if let Err(CryptoError::Busy(4)) = t.await.unwrap() {
                turned_away += 1;
            }
        }
        assert_eq!(turned_away, 1);
        let served = served.lock().unwrap();
        assert_eq!(served.len(), 4);
        assert_eq!(served[0], "quiet", "{served:?}");
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.free(), 1);
    }

    #[tokio::test]
    async fn waiters_that_give_up_do_not_keep_a_place() {
        let pool = FairPool::new(1, 0);
        let held = pool.acquire("x").await.unwrap();
        let gone = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire("a").await.map(|_| ()) })
        };
        until_waiting(&pool, 1).await;
        gone.abort();
        let _ = gone.await;
        let served = Arc::new(Mutex::new(Vec::new()));
        let b = waiter(&pool, "b", "b", &served);
        until_waiting(&pool, 2).await;
        drop(held);
        b.await.unwrap().unwrap();
        assert_eq!(*served.lock().unwrap(), ["b"]);
        assert_eq!(pool.free(), 1);
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn never_more_than_size_at_once() {
        let pool = FairPool::new(3, 0);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let lane = ["a", "b", "c", "d"][i % 4];
                    let _permit = pool.acquire(lane).await.unwrap();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(pool.free(), 3);
    }
}
