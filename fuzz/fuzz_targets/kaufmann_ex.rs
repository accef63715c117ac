//! Fuzz target: [`kaufmann_fuzz::kaufmann_ex`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaufmann_fuzz::kaufmann_ex(data));
