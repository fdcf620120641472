//! DebertaV2Layer and DebertaV2Encoder (modeling_deberta_v2.py): BERT's layer around the
//! disentangled attention, and the relative embeddings every layer shares (`rel_embeddings`,
//! through `encoder.LayerNorm` when `norm_rel_ebd` says "layer_norm").
use tch::nn::Path;
use tch::Tensor;

use super::attention::{AttentionContext, DebertaV2Attention};
use super::config::DebertaSettings;
use crate::model::config::BertConfig;
use crate::model::encoder::{bert_output, BertIntermediate, BertOutput};
use crate::model::layers::{Embedding, LayerNorm};
use crate::model::layout::Layout;

/// DebertaV2Layer: DebertaV2Attention, DebertaV2Intermediate and DebertaV2Output (the latter two
/// are BertIntermediate and BertOutput, "Copied from" in HF).
#[derive(Debug)]
pub struct DebertaV2Layer {
    attention: DebertaV2Attention,
    intermediate: BertIntermediate,
    output: BertOutput,
}

impl DebertaV2Layer {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        DebertaV2Layer {
            attention: DebertaV2Attention::new(&p / "attention", cfg, s),
            intermediate: BertIntermediate::new(&p / "intermediate", cfg),
            output: bert_output(&p / "output", cfg),
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, ctx: &AttentionContext, train: bool) -> Tensor {
        let attention_output = self.attention.forward_t(hidden_states, ctx, train);
        let intermediate_output = self.intermediate.forward(&attention_output);
        self.output.forward_t(&intermediate_output, &attention_output, ctx.layout.draws(), train)
    }
}

#[derive(Debug)]
pub struct DebertaV2Encoder {
    layer: Vec<DebertaV2Layer>,
    /// nn.Embedding(2 * att_span, hidden_size), only with `relative_attention`.
    rel_embeddings: Option<Embedding>,
    layer_norm: Option<LayerNorm>,
}

impl DebertaV2Encoder {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        let h = cfg.hidden_size;
        let layers = &p / "layer";
        DebertaV2Encoder {
            layer: (0..cfg.num_hidden_layers).map(|i| DebertaV2Layer::new(&layers / i, cfg, s)).collect(),
            rel_embeddings: s
                .relative_attention
                .then(|| Embedding::new(&p / "rel_embeddings", 2 * s.att_span(), h, None)),
            layer_norm: s.norm_rel_ebd.then(|| LayerNorm::new(&p / "LayerNorm", h, cfg.layer_norm_eps)),
        }
    }

    /// get_rel_embedding: the table, normalised when `norm_rel_ebd` asks.
    fn rel_embedding(&self) -> Option<Tensor> {
        let rel = &self.rel_embeddings.as_ref()?.weight;
        Some(match &self.layer_norm {
            Some(layer_norm) => layer_norm.forward(rel),
            None => rel.shallow_clone(),
        })
    }

    /// hidden_states: (B, T, H) or packed (N, H), as `layout` says -> the same shape.
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let ctx = AttentionContext { layout, rel_embeddings: self.rel_embedding() };
        let mut hidden_states = hidden_states.shallow_clone();
        for layer_module in &self.layer {
            hidden_states = layer_module.forward_t(&hidden_states, &ctx, train);
        }
        hidden_states
    }
}
