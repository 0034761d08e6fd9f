#![no_main]
//! Fuzzes `vane::fuzzing::head_rewrite`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::head_rewrite(data));
