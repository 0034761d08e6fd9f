#![no_main]
//! Fuzzes `vane::fuzzing::http1_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::http1_request(data));
