#![no_main]
//! cargo fuzz run sf_id — see keyward::fuzzing::sf_id for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::sf_id(data));
