#![no_main]
//! cargo fuzz run token_split — see keyward::fuzzing::token_split for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::token_split(data));
