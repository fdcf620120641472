//! Data: reading labelled text, the label map, tokenization, batch order and collation.
pub mod batch;
pub mod csv;
pub mod dataset;
pub mod labels;
pub mod sampler;
pub mod tokenize;
