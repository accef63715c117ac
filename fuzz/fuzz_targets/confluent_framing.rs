//! Fuzz target: [`kaufmann_fuzz::confluent_framing`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kaufmann_fuzz::confluent_framing(data));
