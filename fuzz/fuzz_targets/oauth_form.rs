#![no_main]
//! cargo fuzz run oauth_form — see keyward::fuzzing::oauth_form for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::oauth_form(data));
