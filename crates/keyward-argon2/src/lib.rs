//! Argon2 (RFC 9106) computed by the reference C implementation (phc-winner-argon2 20190702,
//! vendored under `c/`) with its SIMD code: AVX2 where the CPU has it, SSE2 otherwise, chosen
//! at run time; BENCHMARKS.md has what it gains over the portable Rust implementation.
//!
//! The only unsafe code of keyward is here, the calls into C. They are sound because every
//! pointer passed is a live slice with its length; the library writes only `out` and the
//! memory lent to it, for one call on the calling thread (`ARGON2_NO_THREADS`), and asks for
//! exactly the size the parameters imply, which the call checks.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int};
use std::sync::Once;

/// One Argon2 block: 1 KiB, aligned for SIMD loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Block([u64; 128]);

/// Memory for Argon2, owned by the caller and reused from one hash to the next: a hash neither
/// allocates nor faults in fresh pages. It grows to the largest cost it has been used for.
#[derive(Default)]
pub struct Memory {
    blocks: Vec<Block>,
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Bytes held.
    pub fn len_bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<Block>()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    D,
    I,
    Id,
}

/// The library's error, with its own text (`argon2_error_message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(c_int);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: argon2_error_message returns a pointer to a static NUL-terminated string for
        // every code, "Unknown error code" for codes it does not know.
        let text = unsafe { CStr::from_ptr(argon2_error_message(self.0)) };
        write!(f, "argon2: {} ({})", text.to_string_lossy(), self.0)
    }
}

impl std::error::Error for Error {}

/// The inputs of one Argon2 computation.
pub struct Inputs<'a> {
    pub variant: Variant,
    /// 0x10 or 0x13.
    pub version: u32,
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    /// Lanes (parallelism); computed one after another on the calling thread.
    pub lanes: u32,
    pub password: &'a [u8],
    pub salt: &'a [u8],
    /// Optional key and associated data (RFC 9106 K and X); empty for password hashing.
    pub secret: &'a [u8],
    pub ad: &'a [u8],
}

/// Which code path hashes: `"avx2"`, `"sse2"` (x86-64 without AVX2) or `"ref"` (elsewhere).
pub fn implementation() -> &'static str {
    init();
    if cfg!(target_arch = "x86_64") {
        // SAFETY: written once under `INIT` before this read; never written again.
        if unsafe { keyward_argon2_avx2 } != 0 {
            "avx2"
        } else {
            "sse2"
        }
    } else {
        "ref"
    }
}

/// Argon2 of `inputs` into `out` (its length is the tag length, 4 bytes or more), using
/// `memory` as the working memory.
pub fn hash_raw(inputs: &Inputs<'_>, out: &mut [u8], memory: &mut Memory) -> Result<(), Error> {
    init();
    let len = |s: &[u8]| u32::try_from(s.len()).map_err(|_| Error(ARGON2_INCORRECT_PARAMETER));
    // The library rounds memory down to a multiple of 4 blocks per lane, at least 8 per lane;
    // it asks the allocator for exactly that. Lend at least that much.
    let lanes = inputs.lanes.max(1) as usize;
    let blocks = (inputs.m_cost as usize).max(8 * lanes);
    if memory.blocks.len() < blocks {
        memory.blocks.resize(blocks, Block([0; 128]));
    }
    let mut ctx = Argon2Context {
        out: out.as_mut_ptr(),
        outlen: len(out)?,
        pwd: ptr_or_null(inputs.password),
        pwdlen: len(inputs.password)?,
        salt: ptr_or_null(inputs.salt),
        saltlen: len(inputs.salt)?,
        secret: ptr_or_null(inputs.secret),
        secretlen: len(inputs.secret)?,
        ad: ptr_or_null(inputs.ad),
        adlen: len(inputs.ad)?,
        t_cost: inputs.t_cost,
        m_cost: inputs.m_cost,
        lanes: inputs.lanes,
        threads: 1,
        version: inputs.version,
        allocate_cbk: Some(lend),
        free_cbk: Some(give_back),
        // No ARGON2_FLAG_CLEAR_PASSWORD / _SECRET: the library must not write to the inputs.
        flags: 0,
    };
    let variant = match inputs.variant {
        Variant::D => 0,
        Variant::I => 1,
        Variant::Id => 2,
    };
    LENT.with(|l| l.set((memory.blocks.as_mut_ptr().cast::<u8>(), memory.len_bytes())));
    // SAFETY: see the crate's first lines. Every pointer in `ctx` is a live slice of the stated
    // length (or null with length 0); `out` and `memory` are exclusively borrowed for the call;
    // the library runs on this thread only, so `lend` sees the memory set just above.
    let code = unsafe { argon2_ctx(&mut ctx, variant) };
    LENT.with(|l| l.set((std::ptr::null_mut(), 0)));
    if code == ARGON2_OK {
        Ok(())
    } else {
        Err(Error(code))
    }
}

fn ptr_or_null(s: &[u8]) -> *mut u8 {
    if s.is_empty() {
        std::ptr::null_mut()
    } else {
        // The library reads through it only (no clearing flags are set).
        s.as_ptr().cast_mut()
    }
}

thread_local! {
    /// The memory `hash_raw` lends to the library for the length of one call on this thread.
    static LENT: Cell<(*mut u8, usize)> = const { Cell::new((std::ptr::null_mut(), 0)) };
}

/// The library's allocator: hands out the memory lent for this call, if it is large enough.
extern "C" fn lend(memory: *mut *mut u8, bytes: usize) -> c_int {
    let (ptr, len) = LENT.with(Cell::get);
    if ptr.is_null() || bytes > len || memory.is_null() {
        return ARGON2_MEMORY_ALLOCATION_ERROR;
    }
    // SAFETY: `memory` is the library's out-parameter, checked non-null.
    unsafe { *memory = ptr };
    ARGON2_OK
}

/// The library's deallocator: the memory stays with its owner.
extern "C" fn give_back(_memory: *mut u8, _bytes: usize) {}

static INIT: Once = Once::new();
static PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Uses the SSE2 path even on a CPU with AVX2, for this process; false (and nothing changes)
/// once a hash has run. For testing the path that CPUs without AVX2 take.
#[doc(hidden)]
pub fn use_sse2_path() -> bool {
    PORTABLE.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut first = false;
    INIT.call_once(|| {
        first = true;
        init_once();
    });
    first
}

/// Once per process, before the first hash: choose the code path, and keep the library from
/// wiping its working memory after each hash — the memory is the caller's, kept for the next
/// hash, which overwrites it (the Rust implementation this replaces did not wipe either;
/// docs/security.md says what wiping would cost).
fn init() {
    INIT.call_once(init_once);
}

fn init_once() {
    // SAFETY: plain `int` globals of the C library, written here, under `INIT`, before any hash
    // runs; `Once` orders these writes before every later call on any thread.
    unsafe {
        FLAG_clear_internal_memory = 0;
        #[cfg(target_arch = "x86_64")]
        {
            let portable = PORTABLE.load(std::sync::atomic::Ordering::SeqCst);
            keyward_argon2_avx2 =
                c_int::from(!portable && std::arch::is_x86_feature_detected!("avx2"));
        }
    }
}

const ARGON2_OK: c_int = 0;
const ARGON2_MEMORY_ALLOCATION_ERROR: c_int = -22;
const ARGON2_INCORRECT_PARAMETER: c_int = -25;

/// `argon2_context` of c/include/argon2.h, field for field.
#[repr(C)]
struct Argon2Context {
    out: *mut u8,
    outlen: u32,
    pwd: *mut u8,
    pwdlen: u32,
    salt: *mut u8,
    saltlen: u32,
    secret: *mut u8,
    secretlen: u32,
    ad: *mut u8,
    adlen: u32,
    t_cost: u32,
    m_cost: u32,
    lanes: u32,
    threads: u32,
    version: u32,
    allocate_cbk: Option<extern "C" fn(*mut *mut u8, usize) -> c_int>,
    free_cbk: Option<extern "C" fn(*mut u8, usize)>,
    flags: u32,
}

unsafe extern "C" {
    fn argon2_ctx(context: *mut Argon2Context, variant: c_int) -> c_int;
    fn argon2_error_message(code: c_int) -> *const c_char;
    static mut FLAG_clear_internal_memory: c_int;
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    static mut keyward_argon2_avx2: c_int;
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(non_upper_case_globals)]
static mut keyward_argon2_avx2: c_int = 0;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 9106 §5: the test vectors (m=32, t=3, p=4, 32-byte password of 0x01, salt 0x02,
    /// secret 0x03, associated data 0x04).
    #[test]
    fn rfc_9106_test_vectors() {
        let (pwd, salt, secret, ad) = ([1u8; 32], [2u8; 16], [3u8; 8], [4u8; 12]);
        for (variant, want) in [
            (
                Variant::D,
                "512b391b6f1162975371d30919734294f868e3be3984f3c1a13a4db9fabe4acb",
            ),
            (
                Variant::I,
                "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8",
            ),
            (
                Variant::Id,
                "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
            ),
        ] {
            let mut out = [0u8; 32];
            let inputs = Inputs {
                variant,
                version: 0x13,
                m_cost: 32,
                t_cost: 3,
                lanes: 4,
                password: &pwd,
                salt: &salt,
                secret: &secret,
                ad: &ad,
            };
            hash_raw(&inputs, &mut out, &mut Memory::new()).unwrap();
            assert_eq!(hex(&out), want, "{variant:?}");
        }
    }

    /// The same tags as the RustCrypto implementation keyward used before, over random inputs,
    /// costs, lane counts, both versions and all three variants, with one reused memory.
    #[test]
    fn matches_the_rust_implementation() {
        use argon2::{Algorithm, Argon2, Params, Version};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9106);
        let mut memory = Memory::new();
        for round in 0..60 {
            let lanes = rng.gen_range(1..=4u32);
            let m_cost = rng.gen_range(8 * lanes..=300);
            let t_cost = rng.gen_range(1..=3);
            let (variant, algorithm) = [
                (Variant::D, Algorithm::Argon2d),
                (Variant::I, Algorithm::Argon2i),
                (Variant::Id, Algorithm::Argon2id),
            ][round % 3];
            let (version, v) = if round % 7 == 0 {
                (0x10, Version::V0x10)
            } else {
                (0x13, Version::V0x13)
            };
            let password: Vec<u8> = (0..rng.gen_range(0..80)).map(|_| rng.r#gen()).collect();
            let salt: Vec<u8> = (0..rng.gen_range(8..40)).map(|_| rng.r#gen()).collect();
            let tag_len = rng.gen_range(4..=64);
            let mut ours = vec![0u8; tag_len];
            let inputs = Inputs {
                variant,
                version,
                m_cost,
                t_cost,
                lanes,
                password: &password,
                salt: &salt,
                secret: &[],
                ad: &[],
            };
            hash_raw(&inputs, &mut ours, &mut memory).unwrap();
            let params = Params::new(m_cost, t_cost, lanes, Some(tag_len)).unwrap();
            let mut theirs = vec![0u8; tag_len];
            Argon2::new(algorithm, v, params)
                .hash_password_into(&password, &salt, &mut theirs)
                .unwrap();
            assert_eq!(
                ours, theirs,
                "round {round}: {variant:?} v{version:x} m={m_cost} t={t_cost} p={lanes}"
            );
        }
    }

    #[test]
    fn bad_parameters_are_errors_not_crashes() {
        let mut out = [0u8; 32];
        let base = Inputs {
            variant: Variant::Id,
            version: 0x13,
            m_cost: 64,
            t_cost: 1,
            lanes: 1,
            password: b"pw",
            salt: b"saltsalt",
            secret: &[],
            ad: &[],
        };
        let short_salt = Inputs {
            salt: b"short",
            ..base
        };
        let e = hash_raw(&short_salt, &mut out, &mut Memory::new()).unwrap_err();
        assert!(e.to_string().contains("Salt is too short"), "{e}");
        let no_passes = Inputs { t_cost: 0, ..base };
        assert!(hash_raw(&no_passes, &mut out, &mut Memory::new()).is_err());
        let mut short_tag = [0u8; 2];
        assert!(hash_raw(&base, &mut short_tag, &mut Memory::new()).is_err());
        assert!(hash_raw(&base, &mut out, &mut Memory::new()).is_ok());
    }

    #[test]
    fn reports_its_code_path() {
        let path = implementation();
        assert!(["avx2", "sse2", "ref"].contains(&path));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(path == "avx2", std::arch::is_x86_feature_detected!("avx2"));
    }
}
