//! model.safetensors through the loader's reader (tch's read_safetensors, then the dtype and
//! NaN checks of loading).
#![no_main]
use bertfit::weights::{read_checkpoint, WeightsFile};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let path = input_file("model.safetensors", data);
    if let Ok(tensors) = read_checkpoint(&WeightsFile::Safetensors(path)) {
        for (_, t) in tensors {
            if t.is_floating_point() {
                let _ = t.f_isfinite().and_then(|f| f.f_all());
            }
        }
    }
});
