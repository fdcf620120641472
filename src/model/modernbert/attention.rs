//! ModernBertAttention: the fused `Wqkv` projection, rotary positions on query and key, the
//! attention core (HF's "sdpa" interface: `scaled_dot_product_attention` with a boolean mask and
//! the attention dropout inside it), `Wo` and `out_drop`. Local ("sliding_attention") layers
//! attend within `sliding_window` positions: [`Layouts`] carries the window for them.
use tch::nn::Path;
use tch::Tensor;

use super::layers::Linear;
use super::rotary::Rotary;
use super::settings::ModernBertSettings;
use crate::model::attention::{attention_core, Heads};
use crate::model::config::BertConfig;
use crate::model::layout::Layout;
use crate::model::sdpa::{windowed_mask, PackedQkv};

/// What the layers of one forward attend over: the batch's layout (global layers) and, for the
/// local layers of a padded batch, the same layout with the window band in its mask (HF's
/// `create_bidirectional_sliding_window_mask`), made once per forward. A packed batch's local
/// layers pass the window to the packed attention core, which bands each sequence itself.
#[derive(Debug)]
pub struct Layouts<'a> {
    pub batch: &'a Layout,
    local_padded: Option<Layout>,
    window: i64,
}

impl<'a> Layouts<'a> {
    /// `seq_len`: the padded rows' length T; `window`: `sliding_window` (local_attention // 2).
    pub fn new(batch: &'a Layout, seq_len: i64, window: i64, device: tch::Device) -> Self {
        let local_padded = match batch {
            Layout::Padded { attention_mask } => {
                // HF's SDPA mask skip (`_ignore_bidirectional_mask_sdpa`): no padding and rows
                // shorter than the window, so every key is within it; the same rule, so that
                // SDPA gets the mask exactly where transformers gives it one.
                let attention_mask = if attention_mask.is_none() && seq_len < window {
                    None
                } else {
                    let keys = attention_mask.as_ref().map(|m| m.narrow(2, 0, 1));
                    Some(windowed_mask(keys.as_ref(), seq_len, window, device))
                };
                Some(Layout::Padded { attention_mask })
            }
            Layout::Packed { .. } => None,
        };
        Layouts { batch, local_padded, window }
    }
}

#[derive(Debug)]
#[allow(non_snake_case)]
pub struct ModernBertAttention {
    Wqkv: Linear,
    Wo: Linear,
    heads: Heads,
    attention_dropout: f64,
    /// A global ("full_attention") layer, or a local one.
    global: bool,
}

impl ModernBertAttention {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings, global: bool) -> Self {
        let h = cfg.hidden_size;
        ModernBertAttention {
            Wqkv: Linear::new(&p / "Wqkv", h, 3 * h, s.attention_bias),
            Wo: Linear::new(&p / "Wo", h, h, s.attention_bias),
            heads: Heads {
                num_attention_heads: cfg.num_attention_heads,
                attention_head_size: cfg.head_dim(),
            },
            attention_dropout: s.attention_dropout,
            global,
        }
    }

    /// hidden_states (B, T, H) or packed (N, H) -> the same shape. `rotary`: this layer kind's
    /// cos and sin for the batch's tokens.
    pub fn forward_t(
        &self,
        hidden_states: &Tensor,
        layouts: &Layouts,
        rotary: &Rotary,
        train: bool,
    ) -> Tensor {
        let Heads { num_attention_heads: nh, attention_head_size: hs } = self.heads;
        let input_shape = &hidden_states.size()[..hidden_states.dim() - 1];
        let mut split = input_shape.to_vec();
        split.extend_from_slice(&[3, nh, hs]);
        let qkv = self.Wqkv.forward(hidden_states).view(split.as_slice()); // (..., 3, nh, hs)
        let states = qkv.unbind(-3);
        let (query, key) = rotary.apply(&states[0], &states[1]);
        let mut merged = input_shape.to_vec();
        merged.push(nh * hs);
        let merge = |x: &Tensor| x.reshape(merged.as_slice()); // (..., H), as the cores take it
        let (query, key, value) = (merge(&query), merge(&key), merge(&states[2]));
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let attn_output = match (self.global, &layouts.local_padded, layouts.batch) {
            (false, Some(local), _) => attention_core(&query, &key, &value, self.heads, local, dropout),
            (false, None, Layout::Packed { packing, attention }) => {
                let heads = |x: &Tensor| x.view([-1, nh, hs]);
                let (q, k, v) = (heads(&query), heads(&key), heads(&value));
                let qkv = PackedQkv::new(&q, &k, &v, dropout, self.heads.scaling());
                attention.attention_windowed(packing, &qkv, Some(layouts.window))
            }
            _ => attention_core(&query, &key, &value, self.heads, layouts.batch, dropout),
        };
        // out_drop: nn.Identity when attention_dropout is 0, which draws as little as p = 0.
        self.Wo.forward(&attn_output).dropout(self.attention_dropout, train)
    }
}
