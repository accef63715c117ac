//! Fuzz target: [`kaufmann_fuzz::generated_reader`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaufmann_fuzz::generated_reader(data));
