//! Fuzz target for `switchyard_actors::fuzz_checks::provider_cohere` (see that module for the property).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_actors::fuzz_checks::provider_cohere(data));
