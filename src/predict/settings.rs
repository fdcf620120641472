//! The model and how it runs: the settings `predict` and `evaluate` share (`--model`,
//! `--max-length`, `--batch-size`, `--prefetch`, `--device`, `--threads`).
use tch::Device;

use super::saved::{describe_device, SavedModel};
use crate::data::batch::Padding;
use crate::data::loader::LoaderSettings;
use crate::error::Result;
use crate::train::report::Reporter;

/// Validated inference settings, part of `PredictArgs` and `EvaluateArgs`.
#[derive(Debug, Clone)]
pub struct InferenceArgs {
    /// Model folder, or a model name in the Hugging Face cache.
    pub model: String,
    /// Tokens per example, [CLS] and [SEP] included; longer texts are truncated.
    pub max_length: usize,
    pub batch_size: usize,
    /// Model batches made ahead of the forward pass.
    pub prefetch: usize,
    pub device: Device,
    /// The device came from `--device auto` (said in the first line).
    pub device_auto: bool,
    pub threads: Option<i32>,
}

impl InferenceArgs {
    /// Says which device runs, sets libtorch's thread count, and loads the model onto the device.
    pub fn load_model(&self, reporter: &mut dyn Reporter) -> Result<SavedModel> {
        reporter.device(&describe_device(self.device, self.device_auto));
        if let Some(t) = self.threads {
            tch::set_num_threads(t);
        }
        SavedModel::load(&self.model, self.device)
    }

    /// The loader's settings: each batch padded to its longest example, in pinned memory when the
    /// model is on CUDA.
    pub fn loader_settings(&self, pad_id: i64) -> LoaderSettings {
        LoaderSettings {
            padding: Padding::Longest,
            max_length: self.max_length,
            pad_id,
            prefetch: self.prefetch,
            pin_for: self.device.is_cuda().then_some(self.device),
        }
    }
}
