#![no_main]
//! Fuzzes `vane::fuzzing::cache_entry`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::cache_entry(data));
