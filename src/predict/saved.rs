//! A fine-tuned `*ForSequenceClassification` folder (bertfit's or transformers' `save_pretrained`)
//! loaded for inference: config, tokenizer, weights, and what its outputs mean.
//!
//! Unlike training, the classifier must come from the checkpoint: a head HF would newly initialise
//! is random, and its predictions would be noise that looks like an answer.
use std::path::PathBuf;
use std::sync::Arc;

use tch::nn::VarStore;
use tch::{Device, Kind};

use super::head::Head;
use crate::data::batch::Batch;
use crate::data::tokenize::Tokenizer;
use crate::error::{Error, Result};
use crate::model::{unpadded_by_default, BertConfig, LayoutPolicy, SequenceClassifier};
use crate::train::report::Reporter;
use crate::weights::{from_pretrained, resolve, Pretrained};

pub struct SavedModel {
    pub dir: PathBuf,
    pub config: BertConfig,
    pub tokenizer: Arc<Tokenizer>,
    pub head: Head,
    pub device: Device,
    model: SequenceClassifier,
    /// Padded or unpadded as the device's default (the same logits, less compute where unpadded).
    layouts: LayoutPolicy,
    /// Owns the weights the model's tensors point into.
    _vs: VarStore,
}

impl SavedModel {
    /// `spec`: a model folder or a name in the Hugging Face cache (as `train --model`).
    pub fn load(spec: &str, device: Device) -> Result<SavedModel> {
        let files = resolve(spec)?;
        let config = BertConfig::from_file(&files.config)?;
        let head = Head::from_config(&config, &files.config)?;
        let tokenizer = Arc::new(Tokenizer::from_dir(&files.dir)?);
        let Pretrained { vs, model, report } = from_pretrained(&files, &config, device)?;
        if !report.newly_initialized.is_empty() {
            return Err(Error::weights(
                &files.dir,
                format!(
                    "this checkpoint has no trained classifier ({} missing): it is a base model, and \
                     its predictions would come from a random head; fine-tune it first (bertfit train) \
                     and pass the folder that writes",
                    report.newly_initialized.join(", ")
                ),
            ));
        }
        let layouts = LayoutPolicy::new(device, unpadded_by_default(device));
        Ok(SavedModel { dir: files.dir, config, tokenizer, head, device, model, layouts, _vs: vs })
    }

    /// Checks `max_length` against the tokenizer's minimum and the model's position embeddings, and
    /// sentence pairs against its token types.
    pub fn check_max_length(&self, max_length: usize, pairs: bool) -> Result<()> {
        self.tokenizer.check_max_length(max_length, pairs)?;
        if pairs {
            self.config
                .check_pairs(self.tokenizer.has_token_types())
                .map_err(|msg| Error::usage("--text-pair-column", msg))?;
        }
        if max_length as i64 > self.config.max_sequence_length() {
            return Err(Error::usage(
                "--max-length",
                format!(
                    "{max_length} exceeds the {} tokens the model's position embeddings hold \
                     (max_position_embeddings {})",
                    self.config.max_sequence_length(),
                    self.config.max_position_embeddings
                ),
            ));
        }
        Ok(())
    }

    /// The model in eval mode (no dropout) without gradients: logits (B, C), row by row, as f32
    /// on the CPU. `batch` is the loader's, on the host: its layout is read from there, as in
    /// training, without waiting for the device. A kernel fallback is told to `reporter`.
    pub fn logits(&mut self, batch: &Batch, reporter: &mut dyn Reporter) -> Result<Vec<f32>> {
        let b = batch.to_device(self.device);
        let layout = self.layouts.for_batch(&batch.attention_mask);
        let logits = tch::no_grad(|| self.model.forward_t(&b.input_ids, &b.token_type_ids, &layout, false));
        if let Some(fallback) = self.layouts.fallback(&layout) {
            reporter.note(&fallback.to_string());
        }
        let flat = logits.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1);
        Ok(Vec::<f32>::try_from(&flat)?)
    }
}

pub use crate::train::report::describe_device;
