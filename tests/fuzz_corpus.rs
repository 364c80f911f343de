//! The fuzz targets' seed corpora and every input the fuzzers ever found a fault with
//! (`fuzz/corpus/<target>/`), run through the same checks on the stable toolchain, so a fixed
//! crash stays fixed in CI. The fuzzing itself (cargo-fuzz, nightly) is in docs/security.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

fn run(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target} fails on {}", path.display());
        n += 1;
    }
    assert!(n >= 3, "the {target} corpus lost its seeds ({n})");
}

#[test]
fn soap_envelope_corpus() {
    run("soap_envelope", keyward::fuzzing::soap_envelope);
}

#[test]
fn oauth_form_corpus() {
    run("oauth_form", keyward::fuzzing::oauth_form);
}

#[test]
fn ip_range_corpus() {
    run("ip_range", keyward::fuzzing::ip_range);
}

#[test]
fn sf_id_corpus() {
    run("sf_id", keyward::fuzzing::sf_id);
}

#[test]
fn token_split_corpus() {
    run("token_split", keyward::fuzzing::token_split);
}
