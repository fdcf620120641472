//! Saving a fine-tuned model as an HF folder that `from_pretrained` loads: config.json with the label
//! maps, model.safetensors in state-dict order, and the tokenizer files. [`save_pretrained`] writes
//! them all into a staged folder and swaps it in whole ([`crate::output::StagedDir`]).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use tch::{Kind, Tensor};

use crate::data::tokenize::Tokenizer;
use crate::error::{Error, Result};
use crate::model::config::BertConfig;
use crate::model::names::parameters;
use crate::output::{hooks, StagedDir};

/// Moved to [`crate::output`]; kept here so existing callers compile.
pub use crate::output::write_atomic;

/// The whole HF folder `dir` (config.json, model.safetensors, tokenizer files, and each
/// `(file name, bytes)` of `extra`, e.g. training_args.json), written beside it and swapped in at
/// once: `dir` is at every instant the complete previous folder or the complete new one. Other
/// files already in `dir` (metrics.jsonl, checkpoint-* folders) are kept.
pub fn save_pretrained(
    dir: &Path,
    config: &BertConfig,
    variables: &HashMap<String, Tensor>,
    tokenizer: &Tokenizer,
    extra: &[(&str, &[u8])],
) -> Result<()> {
    let staged = StagedDir::new(dir)?;
    let at = staged.path().to_path_buf();
    let named = |e: Error| name_target(e, &at, staged.target());
    save_config(&at, config).map_err(named)?;
    hooks::save_point("config.json");
    save_weights(&at.join("model.safetensors"), config, variables).map_err(named)?;
    hooks::save_point("model.safetensors");
    tokenizer.save_files(&at).map_err(named)?;
    for (name, bytes) in extra {
        if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
            return Err(Error::io(at.join(name), std::io::Error::other("not a plain file name")));
        }
        write_atomic(&at.join(name), bytes).map_err(named)?;
        hooks::save_point(name);
    }
    staged.commit()
}

/// An error about a staged file, told as the file it stands for (`out/model.safetensors`, not
/// `.out.bertfit-tmp-123/model.safetensors`), so the message names what the user knows.
fn name_target(err: Error, staged: &Path, target: &Path) -> Error {
    let rename = |p: PathBuf| match p.strip_prefix(staged) {
        Ok(rest) => target.join(rest),
        Err(_) => p,
    };
    match err {
        Error::Io { path, source } => Error::Io { path: rename(path), source },
        Error::Weights { path, msg } => Error::Weights { path: rename(path), msg },
        Error::Config { path, msg } => Error::Config { path: rename(path), msg },
        Error::Tokenizer { path, msg } => Error::Tokenizer { path: rename(path), msg },
        other => other,
    }
}

/// config.json as HF's `save_pretrained` writes it for the family's `*ForSequenceClassification`
/// (its `model_type` kept, `architectures` naming the class `AutoModelForSequenceClassification`
/// builds).
pub fn save_config(out: &Path, cfg: &BertConfig) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.architectures = Some(vec![cfg.family().architecture().into()]);
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
