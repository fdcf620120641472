//! config.json: parsed and validated, then the derived values the model uses.
#![no_main]
use bertfit::model::BertConfig;
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let path = input_file("config.json", data);
    if let Ok(cfg) = BertConfig::from_file(&path) {
        let _ = (cfg.head_dim(), cfg.num_labels(), cfg.labels(), cfg.parameter_estimate());
        let _ = cfg.to_json_pretty();
    }
});
