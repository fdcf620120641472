//! model.safetensors through the loader's reader (tch's read_safetensors, then the dtype and
//! NaN checks of loading).
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("bodies.rs");

fuzz_target!(|data: &[u8]| bodies::safetensors(data));
