//! bertfit: fine-tune Hugging Face BERT checkpoints for text classification on libtorch (tch),
//! computing what the PyTorch script computes.
//!
//! - `model`: BERT as in transformers' modeling_bert.py, HF parameter names.
//! - `weights`: find an HF model folder or cache entry, load it strictly, save in HF layout.
//! - `data`: read labelled text, tokenize as HF does, collate batches.
//! - `train`: the training loop, optimiser, metrics and logs.
//! - `output`: atomic files and folders, crash recovery, the previous-run check.
pub mod cli;
pub mod data;
pub mod error;
pub mod model;
pub mod output;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
