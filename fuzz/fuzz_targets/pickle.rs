//! The pytorch_model.bin reader (zip and legacy torch.save, its own pickle machine).
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let path = input_file("pytorch_model.bin", data);
    let _ = bertfit::weights::pickle::read_pytorch_checkpoint(&path);
});
