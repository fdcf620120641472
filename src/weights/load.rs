//! Strict loading of an HF checkpoint into the model's VarStore, as `from_pretrained` does it:
//! legacy `gamma`/`beta` renamed, the family's base-model prefix (`bert.`, `roberta.`...) accepted
//! or added, buffers ignored, other tasks' heads (`cls.*`, `lm_head.*`...) set aside and said,
//! every shape checked, only the classification head (and BERT's pooler, which masked-LM
//! checkpoints lack) allowed to be missing, and then initialised as HF does.
use std::collections::{BTreeSet, HashMap};

use tch::{Kind, Tensor};

use super::init::init_weights;
use super::pickle::read_pytorch_checkpoint;
use super::resolve::WeightsFile;
use crate::error::{Error, Result};
use crate::model::config::BertConfig;
use crate::model::family::Family;

/// What loading did, for the log line HF prints as "Some weights ... were newly initialized".
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Model parameters the checkpoint lacked, initialised with HF's init.
    pub newly_initialized: Vec<String>,
    /// Checkpoint buffers skipped (`position_ids`, `token_type_ids`): not parameters.
    pub ignored: Vec<String>,
    /// Checkpoint tensors of another task's head (`cls.*`, `lm_head.*`, RoBERTa's pooler...) that
    /// the classifier does not use, said as HF says "Some weights ... were not used".
    pub unused: Vec<String>,
    /// The checkpoint's floating dtype; weights are always kept in fp32.
    pub checkpoint_dtype: Option<Kind>,
}

pub fn read_checkpoint(file: &WeightsFile) -> Result<Vec<(String, Tensor)>> {
    match file {
        WeightsFile::Safetensors(path) => super::safetensors::read(path),
        WeightsFile::PytorchBin(path) => read_pytorch_checkpoint(path),
    }
}

/// Where a checkpoint key goes in the family's classification model.
#[derive(Debug, PartialEq)]
enum Place {
    /// The model parameter of that name.
    Parameter(String),
    /// A buffer HF recomputes (`position_ids`, `token_type_ids`): skipped.
    Buffer,
    /// Another task's head: skipped and said.
    OtherHead,
}

/// Where checkpoint tensor `key` goes; `has_prefix`: the checkpoint names the base model's
/// parameters with the family's prefix (a task model's checkpoint) or without (a base model's).
fn place(key: &str, family: Family, has_prefix: bool) -> Place {
    if key.ends_with("position_ids") || key.ends_with("embeddings.token_type_ids") {
        return Place::Buffer;
    }
    // Old TF-converted checkpoints name LayerNorm parameters gamma/beta (HF renames them on load).
    let key = if let Some(stem) = key.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = key.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        key.to_string()
    };
    let is_head = family.head_prefixes().iter().any(|p| key.starts_with(p));
    let name = if has_prefix || is_head || family.is_foreign_head(&key) {
        key
    } else {
        format!("{}.{key}", family.base_model_prefix())
    };
    if family.is_foreign_head(&name) {
        Place::OtherHead
    } else {
        Place::Parameter(name)
    }
}

/// Fills `variables` (the VarStore's, named as HF's state dict) from `file`.
pub fn load_pretrained(
    variables: &HashMap<String, Tensor>,
    cfg: &BertConfig,
    file: &WeightsFile,
) -> Result<LoadReport> {
    let path = file.path();
    let tensors = read_checkpoint(file)?;
    let family = cfg.family();
    let prefix = format!("{}.", family.base_model_prefix());
    let has_prefix = tensors.iter().any(|(k, _)| k.starts_with(&prefix));
    let mut report = LoadReport::default();
    let mut loaded = BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut mismatched = Vec::new();
    for (key, src) in &tensors {
        let name = match place(key, family, has_prefix) {
            Place::Parameter(name) => name,
            Place::Buffer => {
                report.ignored.push(key.clone());
                continue;
            }
            Place::OtherHead => {
                report.unused.push(key.clone());
                continue;
            }
        };
        let Some(dst) = variables.get(&name) else {
            if family.ignores_unexpected(key) {
                report.unused.push(key.clone());
            } else {
                unexpected.push(key.clone());
            }
            continue;
        };
        if src.size() != dst.size() {
            let model_name = if name == *key { String::new() } else { format!(" ('{name}')") };
            mismatched.push(format!(
                "'{key}'{model_name}: checkpoint {:?}, model {:?}",
                src.size(),
                dst.size()
            ));
            continue;
        }
        copy_checked(path, key, src, dst)?;
        report.checkpoint_dtype.get_or_insert(src.kind());
        if !loaded.insert(name.clone()) {
            return Err(Error::weights(
                path,
                format!("tensor '{key}' maps to '{name}', which is already loaded"),
            ));
        }
    }
    refuse_unplaced(path, mismatched, unexpected)?;
    let mut missing: Vec<String> = variables.keys().filter(|k| !loaded.contains(*k)).cloned().collect();
    missing.sort();
    let not_allowed: Vec<String> = missing.iter().filter(|k| !family.may_be_missing(k)).cloned().collect();
    if !not_allowed.is_empty() {
        return Err(Error::weights(
            path,
            format!("{} tensor(s) missing from the checkpoint: {}", not_allowed.len(), preview(&not_allowed)),
        ));
    }
    let missing_set: BTreeSet<&str> = missing.iter().map(String::as_str).collect();
    init_weights(variables, cfg, |name| missing_set.contains(name));
    report.newly_initialized = missing;
    Ok(report)
}

/// Copies checkpoint tensor `key` into the model's `dst` after checking it is floating point and
/// finite; `copy_` casts to the variable's fp32, so an fp16 checkpoint still trains with fp32
/// master weights.
fn copy_checked(path: &std::path::Path, key: &str, src: &Tensor, dst: &Tensor) -> Result<()> {
    if !src.is_floating_point() {
        return Err(Error::weights(
            path,
            format!("tensor '{key}' is {:?}, expected floating point", src.kind()),
        ));
    }
    // A diverged run saves NaN weights; loading them would show up much later as a NaN loss,
    // blamed on the learning rate.
    let torch = |what: &str, e: tch::TchError| Error::damaged(path, format!("tensor '{key}': {what}"), e);
    let bad = src
        .f_isfinite()
        .and_then(|f| f.f_logical_not())
        .and_then(|f| f.f_sum(Kind::Int64))
        .and_then(|f| f.f_int64_value(&[]))
        .map_err(|e| torch("libtorch cannot check its values for NaN", e))?;
    if bad > 0 {
        return Err(Error::weights(
            path,
            format!(
                "tensor '{key}' holds {bad} NaN or infinite value(s) of {}: the checkpoint is damaged \
                 (a run that diverged saves such weights)",
                src.numel()
            ),
        ));
    }
    tch::no_grad(|| dst.shallow_clone().f_copy_(src))
        .map_err(|e| torch("libtorch cannot copy it into the model", e))?;
    Ok(())
}

/// Refuses checkpoint tensors whose shape differs from the model's (`mismatched`) or that have no
/// place in it (`unexpected`).
fn refuse_unplaced(
    path: &std::path::Path,
    mut mismatched: Vec<String>,
    mut unexpected: Vec<String>,
) -> Result<()> {
    mismatched.sort();
    unexpected.sort();
    if !mismatched.is_empty() {
        return Err(Error::weights(
            path,
            format!(
                "{} tensor(s) do not have the shape config.json implies: {}",
                mismatched.len(),
                mismatched.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    if !unexpected.is_empty() {
        return Err(Error::weights(
            path,
            format!("{} tensor(s) the model has no place for: {}", unexpected.len(), preview(&unexpected)),
        ));
    }
    Ok(())
}

fn preview(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names.iter().take(SHOWN).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str) -> Place {
        Place::Parameter(name.into())
    }

    #[test]
    fn names_follow_hf_loading_rules() {
        let bert = Family::Bert;
        assert_eq!(
            place("embeddings.LayerNorm.gamma", bert, false),
            param("bert.embeddings.LayerNorm.weight")
        );
        assert_eq!(place("bert.pooler.dense.weight", bert, true), param("bert.pooler.dense.weight"));
        assert_eq!(place("classifier.bias", bert, false), param("classifier.bias"));
        assert_eq!(place("cls.predictions.bias", bert, true), Place::OtherHead);
        assert_eq!(place("embeddings.position_ids", bert, false), Place::Buffer);
    }

    #[test]
    fn each_family_has_its_prefix_and_heads() {
        let r = Family::XlmRoberta;
        assert_eq!(
            place("encoder.layer.0.output.dense.bias", r, false),
            param("roberta.encoder.layer.0.output.dense.bias")
        );
        assert_eq!(place("pooler.dense.weight", r, false), Place::OtherHead);
        assert_eq!(place("lm_head.dense.weight", r, true), Place::OtherHead);
        assert_eq!(place("classifier.out_proj.weight", r, true), param("classifier.out_proj.weight"));
        let e = Family::Electra;
        assert_eq!(place("discriminator_predictions.dense.bias", e, true), Place::OtherHead);
        assert_eq!(place("embeddings_project.weight", e, false), param("electra.embeddings_project.weight"));
        let d = Family::DistilBert;
        assert_eq!(place("pre_classifier.weight", d, false), param("pre_classifier.weight"));
        assert_eq!(place("vocab_projector.bias", d, true), Place::OtherHead);
        // ModernBertForMaskedLM's `head.*` is the classifier's too: kept; its decoder set aside.
        let m = Family::ModernBert;
        assert_eq!(place("head.dense.weight", m, true), param("head.dense.weight"));
        assert_eq!(place("decoder.bias", m, true), Place::OtherHead);
        assert_eq!(place("layers.0.attn.Wqkv.weight", m, false), param("model.layers.0.attn.Wqkv.weight"));
    }
}
