//! Saving a fine-tuned model as an HF folder that `from_pretrained` loads: config.json with the label
//! maps, model.safetensors in state-dict order, and the tokenizer files.
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::config::BertConfig;
use crate::model::names::parameters;

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file where a good one was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-bertfit");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// config.json as HF's `save_pretrained` writes it for BertForSequenceClassification.
pub fn save_config(out: &Path, cfg: &BertConfig) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.architectures = Some(vec!["BertForSequenceClassification".into()]);
    cfg.problem_type.get_or_insert_with(|| "single_label_classification".into());
    write_atomic(&out.join("config.json"), cfg.to_json_pretty().as_bytes())
}

/// model.safetensors: every parameter in fp32, HF names, state-dict order, `{"format": "pt"}`.
pub fn save_weights(path: &Path, cfg: &BertConfig, variables: &HashMap<String, Tensor>) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, _) in parameters(cfg) {
        let t = variables
            .get(&name)
            .ok_or_else(|| Error::weights(path, format!("model has no parameter '{name}' to save")))?;
        let t = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let mut bytes = vec![0u8; t.numel() * 4];
        t.f_copy_data_u8(&mut bytes, t.numel())?;
        tensors.push((name, shape, bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::weights(path, format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::tensor::serialize(views, &metadata)
        .map_err(|e| Error::weights(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}
