//! BertAttention = BertSelfAttention (through `scaled_dot_product_attention`, as HF's default "sdpa"
//! attention implementation calls it) + BertSelfOutput.
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::layers::{LayerNorm, Linear};
use super::packing::Packing;
use super::varlen::{self, AttentionCore};

#[derive(Debug)]
pub struct BertSelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    num_attention_heads: i64,
    attention_head_size: i64,
    dropout: f64,
}

impl BertSelfAttention {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let h = cfg.hidden_size;
        BertSelfAttention {
            query: Linear::new(&p / "query", h, h),
            key: Linear::new(&p / "key", h, h),
            value: Linear::new(&p / "value", h, h),
            num_attention_heads: cfg.num_attention_heads,
            attention_head_size: cfg.head_dim(),
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// hidden_states: (B, T, H); attention_mask: boolean (B, 1, T, T), true = attend, or `None` when
    /// nothing is padded (HF passes `None` then too, which lets SDPA pick its fused kernel).
    pub fn forward_t(&self, hidden_states: &Tensor, attention_mask: Option<&Tensor>, train: bool) -> Tensor {
        let (b, t, _) = hidden_states.size3().unwrap_or((0, 0, 0));
        let hidden_shape = [b, t, self.num_attention_heads, self.attention_head_size];
        let query_layer = self.query.forward(hidden_states).view(hidden_shape).transpose(1, 2); // (B, nh, T, hs)
        let key_layer = self.key.forward(hidden_states).view(hidden_shape).transpose(1, 2);
        let value_layer = self.value.forward(hidden_states).view(hidden_shape).transpose(1, 2);
        let scaling = (self.attention_head_size as f64).powf(-0.5);
        let dropout = if train { self.dropout } else { 0.0 };
        let attn_output = Tensor::scaled_dot_product_attention(
            &query_layer,
            &key_layer,
            &value_layer,
            attention_mask,
            dropout,
            false,
            Some(scaling),
            false,
        ); // (B, nh, T, hs)
        attn_output.transpose(1, 2).reshape([b, t, -1])
    }

    /// The same on packed tokens: hidden_states (N, H) -> (N, H). Only the attention core sees the
    /// sequences (`varlen::attention`); the projections run on the N real tokens.
    pub fn forward_packed_t(
        &self,
        hidden_states: &Tensor,
        packing: &Packing,
        core: AttentionCore,
        train: bool,
    ) -> Tensor {
        let hidden_shape = [-1, self.num_attention_heads, self.attention_head_size];
        let query_layer = self.query.forward(hidden_states).view(hidden_shape); // (N, nh, hs)
        let key_layer = self.key.forward(hidden_states).view(hidden_shape);
        let value_layer = self.value.forward(hidden_states).view(hidden_shape);
        let scaling = (self.attention_head_size as f64).powf(-0.5);
        let dropout = if train { self.dropout } else { 0.0 };
        varlen::attention(core, packing, &query_layer, &key_layer, &value_layer, dropout, scaling)
    }
}

/// Projection, dropout, residual and LayerNorm after self-attention.
#[derive(Debug)]
pub struct BertSelfOutput {
    dense: Linear,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl BertSelfOutput {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertSelfOutput {
            dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.hidden_size),
            layer_norm: LayerNorm::new(&p / "LayerNorm", cfg.hidden_size, cfg.layer_norm_eps),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, input_tensor: &Tensor, train: bool) -> Tensor {
        let hidden_states = self.dense.forward(hidden_states).dropout(self.dropout, train);
        self.layer_norm.forward(&(hidden_states + input_tensor))
    }
}

#[derive(Debug)]
pub struct BertAttention {
    self_attention: BertSelfAttention,
    output: BertSelfOutput,
}

impl BertAttention {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertAttention {
            self_attention: BertSelfAttention::new(&p / "self", cfg),
            output: BertSelfOutput::new(&p / "output", cfg),
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, attention_mask: Option<&Tensor>, train: bool) -> Tensor {
        let self_output = self.self_attention.forward_t(hidden_states, attention_mask, train);
        self.output.forward_t(&self_output, hidden_states, train)
    }

    /// hidden_states: packed (N, H); BertSelfOutput is per token, so it runs unchanged.
    pub fn forward_packed_t(
        &self,
        hidden_states: &Tensor,
        packing: &Packing,
        core: AttentionCore,
        train: bool,
    ) -> Tensor {
        let self_output = self.self_attention.forward_packed_t(hidden_states, packing, core, train);
        self.output.forward_t(&self_output, hidden_states, train)
    }
}
