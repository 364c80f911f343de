#![no_main]
//! cargo fuzz run ip_range — see keyward::fuzzing::ip_range for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::ip_range(data));
