//! BERT in the shape of transformers' `modeling_bert.py`: one file per part, HF parameter paths.
pub mod attention;
pub mod bert;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod flops;
pub mod heads;
pub mod layers;
pub mod layout;
pub mod length_groups;
pub mod names;
pub mod packing;
pub mod sdpa;
pub mod varlen;

pub use bert::{BertModel, BertModelOutput};
pub use config::{BertConfig, ProblemType};
pub use flops::ModelFlops;
pub use heads::{cross_entropy, loss, BertForSequenceClassification};
pub use layout::{Layout, LayoutPolicy};
pub use packing::Packing;
pub use varlen::{unpadded_by_default, AttentionCore, KernelFallback};
