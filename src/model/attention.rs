//! BertAttention (modeling_bert.py; RoBERTa, XLM-R and ELECTRA have the same module under their
//! own class names) = BertSelfAttention (through `scaled_dot_product_attention`, as HF's default "sdpa"
//! attention implementation calls it) + BertSelfOutput.
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::dropout::Draws;
use super::layers::{linear, LayerNorm, Linear};
use super::layout::Layout;
use super::sdpa::PackedQkv;

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

    /// hidden_states: (B, T, H) or packed (N, H), as `layout` says -> the same shape. The
    /// projections are per token; only the attention core ([`attention_core`]) sees the layout.
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let heads = Heads {
            num_attention_heads: self.num_attention_heads,
            attention_head_size: self.attention_head_size,
        };
        let dropout = if train { self.dropout } else { 0.0 };
        if let Layout::Packed { packing, attention } = layout {
            // One GEMM for the three projections, whose output is already the cores' stacked
            // q/k/v: larger products, and under autocast one cast of the input instead of three.
            // HF's three Linear modules stay the parameters; cat's backward splits their
            // gradients. Packed only: the padded layout is `--reproduce-pytorch`'s, and one
            // product may round otherwise than three.
            let weight = Tensor::cat(&[&self.query.weight, &self.key.weight, &self.value.weight], 0);
            let bias = Tensor::cat(&[&self.query.bias, &self.key.bias, &self.value.bias], 0);
            let qkv = linear(hidden_states, &weight, Some(&bias)).view([
                -1,
                3,
                heads.num_attention_heads,
                heads.attention_head_size,
            ]);
            return attention.attention(packing, &PackedQkv { qkv, dropout, scale: heads.scaling() });
        }
        let query_layer = self.query.forward(hidden_states);
        let key_layer = self.key.forward(hidden_states);
        let value_layer = self.value.forward(hidden_states);
        attention_core(&query_layer, &key_layer, &value_layer, heads, layout, dropout)
    }
}

/// The head split of an attention module.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub num_attention_heads: i64,
    pub attention_head_size: i64,
}

impl Heads {
    /// The score scale, 1/sqrt(head size).
    pub fn scaling(&self) -> f64 {
        (self.attention_head_size as f64).powf(-0.5)
    }
}

/// Softmax attention of projected (B, T, H) or packed (N, H) query, key and value -> the same
/// shape, heads merged; `dropout` on the attention weights (0 in eval). Shared by every family's
/// self-attention (HF's `attention_interface` call, "sdpa" by default): SDPA over the padded rows
/// with their mask (`None` when nothing is padded: HF passes `None` then too, which lets SDPA pick
/// its fused kernel), or the packed layout's attention core over its sequences (`super::varlen`).
pub fn attention_core(
    query_layer: &Tensor,
    key_layer: &Tensor,
    value_layer: &Tensor,
    heads: Heads,
    layout: &Layout,
    dropout: f64,
) -> Tensor {
    let (nh, hs) = (heads.num_attention_heads, heads.attention_head_size);
    let scaling = heads.scaling();
    match layout {
        Layout::Padded { attention_mask } => {
            let (b, t, _) = query_layer.size3().unwrap_or((0, 0, 0));
            let heads = |x: &Tensor| x.view([b, t, nh, hs]).transpose(1, 2); // (B, nh, T, hs)
            let attn_output = Tensor::scaled_dot_product_attention(
                &heads(query_layer),
                &heads(key_layer),
                &heads(value_layer),
                attention_mask.as_ref(),
                dropout,
                false,
                Some(scaling),
                false,
            ); // (B, nh, T, hs)
            attn_output.transpose(1, 2).reshape([b, t, -1])
        }
        Layout::Packed { packing, attention } => {
            let heads = |x: &Tensor| x.view([-1, nh, hs]); // (N, nh, hs)
            let qkv =
                PackedQkv::new(&heads(query_layer), &heads(key_layer), &heads(value_layer), dropout, scaling);
            attention.attention(packing, &qkv)
        }
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
        Self::with_inputs(p, cfg, cfg.hidden_size)
    }

    /// The same modules over `in_features` inputs ([`super::encoder::BertOutput`]).
    pub fn with_inputs(p: Path, cfg: &BertConfig, in_features: i64) -> Self {
        BertSelfOutput {
            dense: Linear::new(&p / "dense", in_features, cfg.hidden_size),
            layer_norm: LayerNorm::new(&p / "LayerNorm", cfg.hidden_size, cfg.layer_norm_eps),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// `draws`: the layout's ([`Layout::draws`]).
    pub fn forward_t(
        &self,
        hidden_states: &Tensor,
        input_tensor: &Tensor,
        draws: Draws,
        train: bool,
    ) -> Tensor {
        let hidden_states = draws.dropout(&self.dense.forward(hidden_states), self.dropout, train);
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

    /// BertSelfOutput is per token: it runs the same on either layout.
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let self_output = self.self_attention.forward_t(hidden_states, layout, train);
        self.output.forward_t(&self_output, hidden_states, layout.draws(), train)
    }
}
