#![no_main]
//! cargo fuzz run soap_envelope — see keyward::fuzzing::soap_envelope for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::soap_envelope(data));
