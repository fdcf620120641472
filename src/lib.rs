//! bertfit: fine-tune Hugging Face BERT checkpoints for text classification on libtorch (tch),
//! computing what the PyTorch script computes.
//!
//! - `model`: BERT as in transformers' modeling_bert.py, HF parameter names.
//! - `weights`: find an HF model folder or cache entry, load it strictly, save in HF layout.
//! - `data`: read labelled text, tokenize as HF does, collate batches.
//! - `commands`: what a subcommand does around the library (train: results files, predictions).
//! - `train`: the Trainer (loop, optimiser, precision, schedules, evaluation) and the reporters a
//!   run talks through.
//! - `metrics`: accuracy, precision, recall, F1, multi-label and regression metrics (sklearn's).
//! - `predict`: a fine-tuned model over a data file (`predict`) or labelled rows (`evaluate`).
//! - `plot`: a run's metrics.jsonl as a PNG.
//! - `machine`: what the machine can do: CPU bf16 instructions, the measured GEMM peak (MFU).
//! - `device`: tensors to a device without waiting (below `model` and `data`).
//! - `random`: the one owner of libtorch's random stream, drawn from in PyTorch's order.
//! - `torch_ext`: what tch lacks (autocast with a dtype, fused Adam, AMP unscaling, varlen
//!   attention, c10d), over `csrc/`.
//! - `dist`: data-parallel training over c10d (process group, DistributedSampler, launch variables).
//! - `output`: atomic files and folders, crash recovery, the previous-run check, the folder lock.
//! - `cli`: the flags (clap), validated once into the settings the library takes.
//! - `error`: the typed errors, each naming the file, row, column, key or flag.
//! - `bounds`: the limits of every numeric flag and launcher variable, in one place.
pub mod bounds;
pub mod cli;
pub mod commands;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod machine;
pub mod metrics;
pub mod model;
pub mod output;
pub mod plot;
pub mod predict;
pub mod random;
#[cfg(test)]
mod test_support;
pub mod torch_ext;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
