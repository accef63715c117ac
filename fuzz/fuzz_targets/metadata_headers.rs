//! Fuzz target: [`kaufmann_fuzz::metadata_headers`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaufmann_fuzz::metadata_headers(data));
