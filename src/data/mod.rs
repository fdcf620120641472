//! Data: reading labelled text (CSV, TSV, Parquet), the label map, tokenization, batch order and
//! collation, and the one background pipeline that makes batches.
pub mod batch;
pub mod check;
pub mod csv;
pub mod dataset;
pub mod labels;
pub mod loader;
pub mod parquet;
pub mod pipeline;
pub mod sampler;
pub mod splits;
pub mod stream;
pub mod table;
pub mod token_cache;
pub mod tokenize;
pub mod wordpiece_ascii;
