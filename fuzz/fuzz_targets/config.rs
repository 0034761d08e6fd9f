#![no_main]
//! Fuzzes `vane::fuzzing::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::config(data));
