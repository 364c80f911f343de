//! Admission to the hash pool: at most `size` hashes run at once, and the rest wait in lanes —
//! one per source address — that are served in turn. A flood from some addresses then delays a
//! login from another address by about one hash per busy lane, not by the whole flood queued
//! ahead of it. The waiting room is bounded too: when it is full, the newest waiter of the
//! longest lane is turned away ([`CryptoError::Busy`]), or the newcomer itself when its own lane
//! would be the longest, so the addresses that send the most are the ones told to come back.

use super::CryptoError;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

type Grant = oneshot::Sender<Result<Permit, CryptoError>>;

struct State {
    /// Places not in use. Positive only while nobody waits: a released place goes straight to
    /// the next waiter.
    free: usize,
    lanes: HashMap<String, VecDeque<Grant>>,
    /// Lanes with waiters, in the order they are served.
    turn: VecDeque<String>,
    waiting: usize,
    /// 0: no bound.
    max_waiting: usize,
    refused: u64,
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

/// Hands the place to the first waiter of the next lane in turn, or frees it.
fn release(pool: &Arc<Mutex<State>>) {
    let mut s = lock(pool);
    while let Some(lane) = s.turn.pop_front() {
        let Some(queue) = s.lanes.get_mut(&lane) else {
            continue;
        };
        let next = queue.pop_front();
        if queue.is_empty() {
            s.lanes.remove(&lane);
        } else {
            s.turn.push_back(lane);
        }
        let Some(grant) = next else { continue };
        s.waiting -= 1;
        match grant.send(Ok(Permit(Some(pool.clone())))) {
            Ok(()) => return,
            // The waiter gave up: disarm the permit it did not take and try the next one.
            Err(Ok(mut unused)) => {
                unused.0 = None;
            }
            Err(Err(_)) => {}
        }
    }
    s.free += 1;
}

impl FairPool {
    pub(crate) fn new(size: usize, max_waiting: usize) -> FairPool {
        FairPool(Arc::new(Mutex::new(State {
            free: size.max(1),
            lanes: HashMap::new(),
            turn: VecDeque::new(),
            waiting: 0,
            max_waiting,
            refused: 0,
        })))
    }

    /// Waits for a place, in `lane`'s turn.
    pub(crate) async fn acquire(&self, lane: &str) -> Result<Permit, CryptoError> {
        let granted = {
            let mut s = lock(&self.0);
            if s.free > 0 {
                s.free -= 1;
                return Ok(Permit(Some(self.0.clone())));
            }
            if s.max_waiting > 0 && s.waiting >= s.max_waiting {
                let mine = s.lanes.get(lane).map_or(0, VecDeque::len) + 1;
                let longest = s
                    .lanes
                    .iter()
                    .max_by_key(|(_, q)| q.len())
                    .map(|(name, q)| (name.clone(), q.len()));
                s.refused += 1;
                let waiting = u64::try_from(s.waiting).unwrap_or(u64::MAX);
                match longest {
                    Some((name, len)) if len > mine => {
                        // len ≥ 2, so the lane keeps a waiter and its place in turn.
                        if let Some(evicted) = s.lanes.get_mut(&name).and_then(VecDeque::pop_back) {
                            s.waiting -= 1;
                            let _ = evicted.send(Err(CryptoError::Busy(waiting)));
                        }
                    }
                    _ => return Err(CryptoError::Busy(waiting)),
                }
            }
            let (grant, granted) = oneshot::channel();
            match s.lanes.get_mut(lane) {
                Some(queue) => queue.push_back(grant),
                None => {
                    s.lanes.insert(lane.to_string(), VecDeque::from([grant]));
                    s.turn.push_back(lane.to_string());
                }
            }
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
    async fn lanes_are_served_in_turn_not_in_arrival_order() {
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
        // The good login arrived last, behind four from one address, and is served second.
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
