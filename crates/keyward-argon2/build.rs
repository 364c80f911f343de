//! Builds the vendored Argon2 reference implementation (c/, phc-winner-argon2 20190702, CC0 or
//! Apache 2.0). On x86-64 its SIMD `opt.c` is built twice, for AVX2 and for plain x86-64
//! (SSE2), and `c/dispatch.c` picks one at run time, so the binary runs on any x86-64 CPU and
//! uses AVX2 where there is one. Elsewhere the portable `ref.c` is used.

fn base() -> cc::Build {
    let mut b = cc::Build::new();
    b.include("c/include")
        .include("c/src")
        .opt_level(3)
        .warnings(false)
        // keyward runs each hash on one of its own threads: no pthreads inside the library.
        .define("ARGON2_NO_THREADS", None);
    b
}

fn main() {
    println!("cargo:rerun-if-changed=c");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let mut core = base();
    core.file("c/src/argon2.c")
        .file("c/src/core.c")
        .file("c/src/encoding.c")
        .file("c/src/thread.c")
        .file("c/src/blake2/blake2b.c");
    if arch == "x86_64" {
        core.file("c/dispatch.c");
        base()
            .file("c/src/opt.c")
            .define("fill_segment", "keyward_fill_segment_avx2")
            .flag("-mavx2")
            .compile("keyward_argon2_avx2");
        base()
            .file("c/src/opt.c")
            .define("fill_segment", "keyward_fill_segment_sse2")
            .compile("keyward_argon2_sse2");
    } else {
        core.file("c/src/ref.c");
    }
    core.compile("keyward_argon2");
}
