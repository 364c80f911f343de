//! Cryptography in one place: Argon2id password hashes on a bounded blocking pool (with a dummy
//! hash for attempts that must cost the same as a real one), SHA-256 digests of high-entropy
//! secrets (tokens, sessions, client secrets), constant-time comparison and random secrets.

pub mod cert;
pub mod jws;
pub mod pkce;
mod pool;

use crate::domain::ids::BASE62;
use crate::domain::secret::Password;
use crate::domain::token::SecurityToken;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use pool::HashPool;
use rand::Rng;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid password hash parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing pool is shut down")]
    PoolClosed,
    /// `password_hash.max_queue` hashes are already waiting and this caller's address sends the
    /// most of them: the caller should say "try again shortly" (503) rather than wait.
    #[error("too many password checks are waiting ({0}); try again shortly")]
    Busy(u64),
}

/// Argon2id cost parameters (docs/rules.md, Non-functional: OWASP's m=19456 KiB, t=2, p=1 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashParams {
    fn argon2(&self) -> Result<Argon2<'static>, CryptoError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| CryptoError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    pub fn validate(&self) -> Result<(), CryptoError> {
        self.argon2().map(|_| ())
    }
}

thread_local! {
    /// The Argon2 memory of the hashing thread this runs on, kept from one hash to the next: a
    /// hash neither allocates nor faults in 19 MiB of fresh pages, and the memory in use stays
    /// `pool_size × memory_kib` (it grows only for a stored hash with a larger cost).
    static MEMORY: std::cell::RefCell<keyward_argon2::Memory> =
        std::cell::RefCell::new(keyward_argon2::Memory::new());
}

/// Argon2 of the password with these parameters into `out`, computed by the reference C
/// implementation's SIMD code (`keyward_argon2`; the argon2 crate parses and writes the PHC
/// strings) with this thread's reusable memory.
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), keyward_argon2::Error> {
    let inputs = keyward_argon2::Inputs {
        variant: match algorithm {
            Algorithm::Argon2d => keyward_argon2::Variant::D,
            Algorithm::Argon2i => keyward_argon2::Variant::I,
            Algorithm::Argon2id => keyward_argon2::Variant::Id,
        },
        version: version as u32,
        m_cost: params.m_cost(),
        t_cost: params.t_cost(),
        lanes: params.p_cost(),
        password: password.as_bytes(),
        salt,
        secret: &[],
        ad: &[],
    };
    MEMORY.with(|cell| keyward_argon2::hash_raw(&inputs, out, &mut cell.borrow_mut()))
}

/// Which Argon2 code path runs (`avx2`, `sse2` or `ref`), for the benchmark's report.
pub fn argon2_implementation() -> &'static str {
    keyward_argon2::implementation()
}

fn hash_blocking(argon: &Argon2<'static>, password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| CryptoError::Hash(e.to_string()))?;
    let params = argon.params().clone();
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = argon2::password_hash::Output::init_with(output_len, |out| {
        argon2_into(
            Algorithm::Argon2id,
            Version::V0x13,
            &params,
            password,
            salt_raw,
            out,
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| CryptoError::Hash(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params)
            .map_err(|e| CryptoError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Verifies with the algorithm, version and parameters of the stored hash, so old hashes keep
/// verifying after the configured cost changes. Blocking, on the calling thread: what one place
/// of the pool does (the benchmark's raw hash rate calls it directly).
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = argon2_into(algorithm, version, &params, password, salt_raw, &mut out);
    computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// One hash for the pool: the work, and where its result goes.
struct HashJob<F, T> {
    work: F,
    argon: Argon2<'static>,
    done: tokio::sync::oneshot::Sender<Result<T, CryptoError>>,
    invocations: Arc<AtomicU64>,
}

impl<F, T> pool::Job for HashJob<F, T>
where
    F: FnOnce(Argon2<'static>) -> (T, bool) + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>) -> bool {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let (result, proved) = (self.work)(self.argon);
        let _ = self.done.send(Ok(result));
        proved
    }

    fn refuse(self: Box<Self>, why: CryptoError) {
        let _ = self.done.send(Err(why));
    }

    fn abandoned(&self) -> bool {
        self.done.is_closed()
    }
}

/// Occupies a pool thread until released ([`Hasher::hold_place`]).
struct Hold {
    started: tokio::sync::oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl pool::Job for Hold {
    fn run(self: Box<Self>) -> bool {
        let _ = self.started.send(());
        let _ = self.release.recv();
        false
    }

    fn refuse(self: Box<Self>, _: CryptoError) {}

    fn abandoned(&self) -> bool {
        self.started.is_closed()
    }
}

/// Something run once on a pool thread, whoever waits for it.
struct Once(Box<dyn FnOnce() + Send>);

impl pool::Job for Once {
    fn run(self: Box<Self>) -> bool {
        (self.0)();
        false
    }

    fn refuse(self: Box<Self>, _: CryptoError) {}

    fn abandoned(&self) -> bool {
        false
    }
}

/// A place in the hash pool taken by [`Hasher::hold_place`], given back when dropped.
pub struct PoolPlace(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

/// The lane of hashes that are not logins: password changes and new users.
const OWN_LANE: &str = "";

/// Argon2id on a bounded pool: `pool_size` threads of its own run the hashes, each reusing its
/// Argon2 memory, so memory stays at `pool_size × memory_kib` however many logins arrive. Logins wait
/// for the pool in their source address's lane (`pool`), so a flood from some addresses does not
/// starve the others (the least busy address goes first), and the waiting room is bounded
/// (`with_max_queue`).
pub struct Hasher {
    params: HashParams,
    argon: Argon2<'static>,
    pool: HashPool,
    dummy_hash: String,
    invocations: Arc<AtomicU64>,
}

impl Hasher {
    /// `pool_size` 0 means one per CPU core.
    pub fn new(params: HashParams, pool_size: usize) -> Result<Hasher, CryptoError> {
        let argon = params.argon2()?;
        let pool_size = if pool_size == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            pool_size
        };
        // A hash of a random password nobody knows, with the configured cost: verifying against
        // it costs what verifying a real user's password costs (R-L4).
        // Made on a hashing thread, whose memory is kept for the hashes to come anyway.
        let pool = HashPool::start(pool_size, 0)?;
        let (made, dummy) = std::sync::mpsc::channel();
        let dummy_argon = argon.clone();
        pool.submit(
            OWN_LANE,
            Box::new(Once(Box::new(move || {
                let _ = made.send(hash_blocking(&dummy_argon, &random_base62(32)));
            }))),
        );
        let dummy_hash = dummy.recv().map_err(|_| CryptoError::PoolClosed)??;
        Ok(Hasher {
            params,
            argon,
            pool,
            dummy_hash,
            invocations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bounds the hashes waiting for the pool: with `max_queue` waiting, the address asking the
    /// most of the pool is refused ([`CryptoError::Busy`]) — its newest waiter, or the newcomer
    /// when it is from that address. Without a bound a flood would queue without limit and hold
    /// memory and connections until clients time out. 0: no bound.
    pub fn with_max_queue(self, max_queue: usize) -> Hasher {
        self.pool.set_max_waiting(max_queue);
        self
    }

    /// How many hashes or verifications have run (tests count them per login path; /metrics).
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// Takes one place in the pool, as a hash would, until the returned value is dropped. Tests
    /// use it to fill the pool at a moment of their choosing.
    pub async fn hold_place(&self) -> Result<PoolPlace, CryptoError> {
        let (started, running) = tokio::sync::oneshot::channel();
        let (release, hold) = std::sync::mpsc::channel();
        self.pool.submit(
            OWN_LANE,
            Box::new(Hold {
                started,
                release: hold,
            }),
        );
        running.await.map_err(|_| CryptoError::PoolClosed)?;
        Ok(PoolPlace(release))
    }

    /// Hashes refused because the queue was full (`max_queue`).
    pub fn refusals(&self) -> u64 {
        self.pool.refused()
    }

    /// Hashes waiting for a place in the pool.
    pub fn queue_depth(&self) -> u64 {
        self.pool.waiting()
    }

    /// Runs one hash on a pool thread, waiting in `lane`'s turn. A hash that has started runs to
    /// its end on its thread even when the caller stops waiting (a client that disconnects), so
    /// the bound holds; one still waiting when its caller leaves is skipped. `work` says with
    /// its result whether it proved a password (then it is not counted against the lane).
    async fn run<T: Send + 'static>(
        &self,
        lane: &str,
        work: impl FnOnce(Argon2<'static>) -> (T, bool) + Send + 'static,
    ) -> Result<T, CryptoError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.pool.submit(
            lane,
            Box::new(HashJob {
                work,
                argon: self.argon.clone(),
                done,
                invocations: self.invocations.clone(),
            }),
        );
        result.await.map_err(|_| CryptoError::PoolClosed)?
    }

    /// Hashes a new password (administrative and personal changes: one lane of their own).
    pub async fn hash(&self, password: &Password) -> Result<String, CryptoError> {
        let pw = password.clone();
        self.run(OWN_LANE, move |argon| {
            (hash_blocking(&argon, pw.expose()), false)
        })
        .await?
    }

    /// Verifies against the stored PHC string, or against the dummy hash when there is none;
    /// the dummy always fails.
    pub async fn verify(
        &self,
        password: &Password,
        phc: Option<&str>,
    ) -> Result<bool, CryptoError> {
        self.verify_from(OWN_LANE, password, phc, true).await
    }

    /// [`Hasher::verify`] for a login from the source address `lane` (its
    /// `domain::throttle::address_key`). A right password earns the lane the pool's credit only
    /// when `credit` says the login would then succeed: the right password without the token
    /// it needs is failed work like a guess, so a flood of them ranks behind other addresses.
    pub async fn verify_from(
        &self,
        lane: &str,
        password: &Password,
        phc: Option<&str>,
        credit: bool,
    ) -> Result<bool, CryptoError> {
        let pw = password.clone();
        let (target, real) = match phc {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        self.run(lane, move |_| {
            let proved = verify_blocking(pw.expose(), &target) && real;
            (proved, proved && credit)
        })
        .await
    }

    /// The same work as a verification, with no user behind it.
    pub async fn dummy_verify_from(
        &self,
        lane: &str,
        password: &Password,
    ) -> Result<(), CryptoError> {
        self.verify_from(lane, password, None, false)
            .await
            .map(|_| ())
    }

    /// True when a stored hash was made with other parameters than the configured ones, so the
    /// next successful login should re-hash it (docs/rules.md, Non-functional).
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || params.m_cost() != self.params.memory_kib
            || params.t_cost() != self.params.iterations
            || params.p_cost() != self.params.parallelism
    }
}

/// SHA-256 digest, hex. Tokens, session ids and client secrets are high-entropy, so a fast
/// digest is as safe as a slow hash for them and keeps logins at one Argon2 per attempt
/// (docs/rules.md, Non-functional).
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `s` has the shape of a [`digest`] (64 lowercase hex characters): what the sessions
/// pages name sessions and refresh tokens by, checked before it reaches a query.
pub fn looks_like_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn token_digest(token: &SecurityToken) -> String {
    digest(token.expose())
}

/// Constant-time equality for digests and other secrets of public length.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `len` characters of base62 from the OS CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut rng = seeded_rng();
    (0..len)
        .map(|_| BASE62[rng.gen_range(0..62)] as char)
        .collect()
}

/// A CSPRNG (ChaCha12) freshly seeded with 256 bits from the OS: one `getrandom` call for a
/// whole secret, where drawing each character from `OsRng` made one call per character (a
/// session id took 32).
pub fn seeded_rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::from_rng(OsRng).unwrap_or_else(|_| rand::rngs::StdRng::from_entropy())
}

/// A password that passes every complexity setting: upper, lower, digits and a special
/// character, 20 characters in all (~115 bits).
pub fn random_password() -> Password {
    let mut rng = OsRng;
    loop {
        let mut s = random_base62(18);
        const SPECIAL: &[u8] = b"!#$%-_=+";
        s.push(SPECIAL[rng.gen_range(0..SPECIAL.len())] as char);
        s.push(char::from(b'0' + rng.gen_range(0..10u8)));
        if s.chars().any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase()) {
            return Password::new(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hash_then_verify_and_count() {
        let h = Hasher::new(cheap(), 2).unwrap();
        let pw = Password::new("correct horse 1");
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!phc.contains("correct horse"));
        assert!(h.verify(&pw, Some(&phc)).await.unwrap());
        assert!(
            !h.verify(&Password::new("correct horse 2"), Some(&phc))
                .await
                .unwrap()
        );
        assert!(!h.verify(&pw, Some("not a hash")).await.unwrap());
        assert_eq!(h.invocations(), 4);
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = Hasher::new(cheap(), 1).unwrap();
        let pw = Password::new("interop Passw0rd");
        // Ours verifies with the argon2 crate's own verifier …
        let ours = h.hash(&pw).await.unwrap();
        let argon = cheap().argon2().unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon.verify_password(b"interop Passw0rd", &parsed).is_ok());
        assert!(argon.verify_password(b"interop passw0rd", &parsed).is_err());
        // … and a hash made by it (older keyward, other parameters, Argon2i) verifies with ours.
        for (alg, m, t) in [(Algorithm::Argon2id, 128, 2), (Algorithm::Argon2i, 64, 3)] {
            let other = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let theirs = other
                .hash_password(b"interop Passw0rd", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(h.verify(&pw, Some(&theirs)).await.unwrap(), "{theirs}");
            assert!(
                !h.verify(&Password::new("wrong"), Some(&theirs))
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn r_l4_dummy_hash_never_accepts_and_costs_one_invocation() {
        let h = Hasher::new(cheap(), 1).unwrap();
        assert!(!h.verify(&Password::new(""), None).await.unwrap());
        h.dummy_verify_from("203.0.113.1", &Password::new("anything"))
            .await
            .unwrap();
        assert_eq!(h.invocations(), 2);
        // The dummy hash has the configured cost.
        assert!(!h.needs_rehash(&h.dummy_hash));
    }

    #[tokio::test]
    async fn rehash_needed_when_parameters_change() {
        let old = Hasher::new(cheap(), 1).unwrap();
        let phc = old.hash(&Password::new("pw12345678")).await.unwrap();
        let new = Hasher::new(
            HashParams {
                memory_kib: 128,
                ..cheap()
            },
            1,
        )
        .unwrap();
        assert!(new.needs_rehash(&phc));
        assert!(!old.needs_rehash(&phc));
        // Old hashes still verify under the new configuration.
        assert!(
            new.verify(&Password::new("pw12345678"), Some(&phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_pool_bound_holds_when_callers_give_up() {
        let h = Arc::new(Hasher::new(cheap(), 1).unwrap());
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let caller = {
            let h = h.clone();
            tokio::spawn(async move {
                h.run("t", move |_| {
                    let _ = started.send(());
                    let _ = wait.recv();
                    ((), false)
                })
                .await
            })
        };
        running.await.unwrap();
        // The caller gives up (a client disconnected) while its hash is still running.
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(
            h.pool.busy(),
            1,
            "the place was given back while the hash was still running"
        );
        // A new hash queues behind it, and runs once it really ends.
        let next = {
            let h = h.clone();
            tokio::spawn(async move { h.hash(&Password::new("b")).await })
        };
        while h.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(h.queue_depth(), 0);
    }

    #[tokio::test]
    async fn beyond_max_queue_a_hash_is_refused_at_once_and_the_queue_still_drains() {
        let h = Arc::new(Hasher::new(cheap(), 1).unwrap().with_max_queue(1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move {
                h.run("t", move |_| {
                    let _ = started.send(());
                    let _ = wait.recv();
                    ((), false)
                })
                .await
            })
        };
        running.await.unwrap();
        let queued = {
            let h = h.clone();
            tokio::spawn(async move { h.hash(&Password::new("queued")).await })
        };
        while h.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        // One running, one waiting: the next is refused without waiting or hashing.
        let before = h.invocations();
        match h.hash(&Password::new("refused")).await {
            Err(CryptoError::Busy(1)) => {}
            other => panic!("expected Busy(1), got {other:?}"),
        }
        assert_eq!(h.invocations(), before);
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        // With the queue drained, hashes run again.
        h.hash(&Password::new("later")).await.unwrap();
    }

    #[test]
    fn digests_and_constant_time_compare() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ct_eq(&digest("a"), &digest("a")));
        assert!(!ct_eq(&digest("a"), &digest("b")));
        assert!(!ct_eq("a", "ab"));
    }

    #[test]
    fn random_passwords_pass_the_strictest_policy() {
        use crate::domain::policy::{Complexity, OrgPolicy};
        let strict = OrgPolicy {
            complexity: Complexity::UpperLowerNumericSpecial,
            min_password_length: 20,
            ..OrgPolicy::default()
        };
        for _ in 0..200 {
            strict
                .check_password(&random_password(), "x@example.com")
                .unwrap();
        }
    }
}
