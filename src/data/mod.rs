//! Data: reading labelled text (CSV, TSV, Parquet), the label map, tokenization, batch order and
//! collation.
pub mod batch;
pub mod check;
pub mod csv;
pub mod dataset;
pub mod labels;
pub mod loader;
pub mod parquet;
pub mod sampler;
pub mod stream;
pub mod table;
pub mod token_cache;
pub mod tokenize;
pub mod wordpiece_ascii;
