//! A checkpoint folder as a resume reads it before trusting it: trainer_state.json (bertfit's
//! position, the best model's folder), training_state.safetensors (optimizer state, generator
//! state, data order) and the manifest. The input is the three files, each behind a 4-byte
//! little-endian length; every check must return (an error or Ok), never panic or hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::checkpoint(data));
