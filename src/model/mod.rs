//! BERT in the shape of transformers' `modeling_bert.py` (one file per part, HF parameter paths),
//! and the BERT-like families beside it, one module each: `roberta` (and XLM-RoBERTa), `electra`,
//! `distilbert`; DeBERTa-v2/v3 (`deberta`, its own disentangled attention) and ModernBERT
//! (`modernbert`, its own encoder). [`SequenceClassifier`] is the one type the rest of bertfit holds.
pub mod attention;
pub mod bert;
pub mod classifier;
pub mod config;
pub mod deberta;
pub mod distilbert;
pub mod dropout;
pub mod electra;
pub mod embeddings;
pub mod encoder;
pub mod family;
pub mod flops;
pub mod heads;
pub mod layers;
pub mod layout;
pub mod length_groups;
pub mod modernbert;
pub mod names;
pub mod packing;
pub mod roberta;
pub mod sdpa;
pub mod varlen;

pub use bert::{BertModel, BertModelOutput};
pub use classifier::SequenceClassifier;
pub use config::{BertConfig, ProblemType};
pub use family::Family;
pub use flops::ModelFlops;
pub use heads::{cross_entropy, loss, BertForSequenceClassification};
pub use layout::{Layout, LayoutPolicy};
pub use packing::Packing;
pub use varlen::{unpadded_by_default, AttentionCore, KernelFallback};
