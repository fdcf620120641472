//! config.json: parsed and validated, then the derived values the model uses.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::config(data));
