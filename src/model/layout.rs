//! How a batch's tokens lie in the hidden states the encoder passes along: padded rows or packed
//! real tokens. Every encoder layer is per token except the attention core, so the layout is
//! handed down unchanged and only `BertSelfAttention` looks at it.
use tch::Tensor;

use super::packing::Packing;
use super::varlen::AttentionCore;

#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// hidden_states (B, T, H). attention_mask: boolean (B, 1, T, T), true = attend, or `None`
    /// when nothing is padded (`bert::bidirectional_mask`).
    Padded { attention_mask: Option<&'a Tensor> },
    /// hidden_states (N, H), the tokens `packing` keeps; `core` attends within each sequence.
    Packed { packing: &'a Packing, core: AttentionCore },
}
