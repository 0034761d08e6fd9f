#![no_main]
//! Fuzzes `vane::fuzzing::chunked_body`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::chunked_body(data));
