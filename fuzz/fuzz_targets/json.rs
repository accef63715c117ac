//! Fuzz target: [`kaufmann_fuzz::json`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaufmann_fuzz::json(data));
