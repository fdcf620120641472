//! ModernBertEncoderLayer (pre-norm: `attn_norm`, which layer 0 does without, and `mlp_norm`,
//! each before its residual branch) and ModernBertModel: embeddings, the layers (every
//! `global_attn_every_n_layers`-th global, the others local), `final_norm`.
use tch::nn::Path;
use tch::Tensor;

use super::attention::{Layouts, ModernBertAttention};
use super::embeddings::ModernBertEmbeddings;
use super::layers::LayerNorm;
use super::mlp::ModernBertMLP;
use super::rotary::ModernBertRotaryEmbedding;
use super::settings::ModernBertSettings;
use crate::model::config::BertConfig;
use crate::model::layout::Layout;

#[derive(Debug)]
pub struct ModernBertEncoderLayer {
    /// `nn.Identity()` in layer 0: the embeddings' norm came just before.
    attn_norm: Option<LayerNorm>,
    attn: ModernBertAttention,
    mlp_norm: LayerNorm,
    mlp: ModernBertMLP,
    global: bool,
}

impl ModernBertEncoderLayer {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings, layer_idx: usize) -> Self {
        let norm = |name: &str| LayerNorm::new(&p / name, cfg.hidden_size, s.norm_eps, s.norm_bias);
        let global = s.global_layers[layer_idx];
        ModernBertEncoderLayer {
            attn_norm: (layer_idx > 0).then(|| norm("attn_norm")),
            attn: ModernBertAttention::new(&p / "attn", cfg, s, global),
            mlp_norm: norm("mlp_norm"),
            mlp: ModernBertMLP::new(&p / "mlp", cfg, s),
            global,
        }
    }

    pub fn forward_t(
        &self,
        hidden_states: &Tensor,
        layouts: &Layouts,
        rotary: &super::rotary::Rotary,
        train: bool,
    ) -> Tensor {
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(hidden_states),
            None => hidden_states.shallow_clone(),
        };
        let hidden_states = hidden_states + self.attn.forward_t(&normed, layouts, rotary, train);
        let mlp_output = self.mlp.forward_t(&self.mlp_norm.forward(&hidden_states), train);
        hidden_states + mlp_output
    }
}

#[derive(Debug)]
pub struct ModernBertModel {
    embeddings: ModernBertEmbeddings,
    layers: Vec<ModernBertEncoderLayer>,
    final_norm: LayerNorm,
    rotary_emb: ModernBertRotaryEmbedding,
    sliding_window: i64,
}

impl ModernBertModel {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings) -> Self {
        let layers = &p / "layers";
        ModernBertModel {
            embeddings: ModernBertEmbeddings::new(&p / "embeddings", cfg, s),
            layers: (0..cfg.num_hidden_layers as usize)
                .map(|i| ModernBertEncoderLayer::new(&layers / i, cfg, s, i))
                .collect(),
            final_norm: LayerNorm::new(&p / "final_norm", cfg.hidden_size, s.norm_eps, s.norm_bias),
            rotary_emb: ModernBertRotaryEmbedding::new(
                cfg.head_dim(),
                s.global_rope_theta,
                s.local_rope_theta,
                p.device(),
            ),
            sliding_window: s.sliding_window,
        }
    }

    /// input_ids (B, T) -> last hidden states (B, T, H), or packed (N, H).
    pub fn forward_t(&self, input_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let mut hidden_states = self.embeddings.forward_t(input_ids, layout, train);
        let seq_len = input_ids.size().get(1).copied().unwrap_or(0);
        let layouts = Layouts::new(layout, seq_len, self.sliding_window, input_ids.device());
        let position_ids = layout.position_ids(input_ids);
        let kind = hidden_states.kind();
        let global = self.rotary_emb.forward(&position_ids, true, kind);
        let local = self.rotary_emb.forward(&position_ids, false, kind);
        for layer in &self.layers {
            let rotary = if layer.global { &global } else { &local };
            hidden_states = layer.forward_t(&hidden_states, &layouts, rotary, train);
        }
        self.final_norm.forward(&hidden_states)
    }
}
