//! Data: reading labelled text (CSV, TSV, Parquet, JSON), the label map, tokenization, batch order and
//! collation, and the one background loader that makes batches.
//!
//! Rooms, from the file up:
//! - `csv`, `parquet`, `json`: one file format each, as arrow record batches; `table`: rows of any of them,
//!   columns checked; `dataset`: labelled examples by split (one file with a split column, or one
//!   file per split); `labels`: the label map; `hf`: run_classification.py's label types;
//! - `tokenize`: HF's tokenizers (`tokenizer.json` or BERT's `vocab.txt`); `token_cache`: tokenized splits kept on disk;
//! - `sampler`: the order of one DataLoader pass, drawn as PyTorch draws it; `numpy_rng`: 🤗
//!   datasets' `Dataset.shuffle` order, drawn as NumPy draws it; `batch`: collation;
//! - `prepared`: in-memory splits, tokenized once, and batches cut from them; `stream`:
//!   `--streaming` passes through a shuffle buffer; `loader`: the background thread both feed;
//! - `training_data`: a run's data (label map, splits in memory or streamed) and its passes;
//! - `check`: `bertfit check-data`.
pub mod batch;
pub mod check;
pub mod csv;
pub mod dataset;
pub mod hf;
pub mod json;
pub mod labels;
pub mod loader;
pub mod numpy_rng;
pub mod parquet;
pub mod prepared;
pub mod sampler;
pub mod stream;
pub mod table;
pub mod token_cache;
pub mod tokenize;
pub mod training_data;
