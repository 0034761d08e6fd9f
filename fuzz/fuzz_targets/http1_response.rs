#![no_main]
//! Fuzzes `vane::fuzzing::http1_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::http1_response(data));
