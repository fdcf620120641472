//! `from_pretrained` for the sequence classifier of config.json's family: the model built from its config and filled
//! from its checkpoint.
use tch::{nn::VarStore, Device};

use super::load::{load_pretrained, LoadReport};
use super::resolve::ModelFiles;
use crate::error::Result;
use crate::model::{BertConfig, SequenceClassifier};

pub struct Pretrained {
    pub vs: VarStore,
    pub model: SequenceClassifier,
    pub report: LoadReport,
}

/// Builds the model for `config` (whose `id2label` fixes the classifier size) on `device` and loads
/// `files`' weights into it; weights the checkpoint lacks get HF's init.
pub fn from_pretrained(files: &ModelFiles, config: &BertConfig, device: Device) -> Result<Pretrained> {
    let vs = VarStore::new(device);
    let model = SequenceClassifier::new(vs.root(), config);
    let report = load_pretrained(&vs.variables(), config, &files.weights)?;
    Ok(Pretrained { vs, model, report })
}
