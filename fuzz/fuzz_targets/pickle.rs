//! The pytorch_model.bin reader (zip and legacy torch.save, its own pickle machine).
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::pickle(data));
