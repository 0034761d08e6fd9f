#![no_main]
//! Fuzzes `vane::fuzzing::answer_check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::answer_check(data));
