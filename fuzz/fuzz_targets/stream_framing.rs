//! Fuzz target for `switchyard_actors::fuzz_checks::stream_framing` (see that module for the property).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_actors::fuzz_checks::stream_framing(data));
