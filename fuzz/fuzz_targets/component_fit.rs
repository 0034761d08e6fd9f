#![no_main]
//! Fuzzes `vane::fuzzing::component_fit`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vane::fuzzing::component_fit(data));
