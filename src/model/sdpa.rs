//! The `scaled_dot_product_attention` calls the CPU attention cores make on packed tokens: over a
//! padded layout (the padded and grouped cores), or one sequence at a time. Plain functions of
//! tensors, below every core file, so that the cores depend on them and not on each other.
use tch::{Device, Kind, Tensor};

use super::dropout::Draws;
use crate::torch_ext;

/// Rows at most this long attend in fp32 under CPU autocast ([`attend`]).
pub const FP32_UP_TO: i64 = 128;

/// Attention over a padded layout: qkv (B, T, 3, nh, hs), key_mask (B, 1, 1, T) true = attend
/// (`None`: every key; a (B, 1, T, T) mask, such as [`windowed_mask`]'s, is taken as well) ->
/// (B * T, nh * hs), every slot, padded ones included (callers keep the real ones). The one SDPA call of the padded and the grouped cores.
pub fn attend_padded(qkv: &Tensor, key_mask: Option<&Tensor>, dropout: f64, scale: f64) -> Tensor {
    let size = qkv.size();
    let (b, t) = (size[0], size[1]);
    // unbind, not three selects: its backward stacks the three gradients, where each select's
    // backward is a zeroed copy of all three.
    let x = qkv.permute([2, 0, 3, 1, 4]).unbind(0); // 3 x (B, nh, T, hs)
    let attn_output = attend(&x[0], &x[1], &x[2], key_mask, dropout, scale); // (B, nh, T, hs)
    attn_output.transpose(1, 2).reshape([b * t, -1])
}

/// Softmax attention of (B, nh, T, hs) query, key and value under a bool mask broadcast to
/// (B, nh, T, T) (true = attend; `None`: every key) -> (B, nh, T, hs): the packed cores' one call.
/// Without dropout, SDPA (which picks the CPU's fused flash kernel). With dropout on the CPU,
/// SDPA can only take its math path, whose masks `bernoulli_` draws serially; the same math is
/// written out here with the weights dropped by Philox masks ([`Draws::Philox`]): the packed
/// layout never reproduces PyTorch's draws. On other devices, SDPA with its fused dropout.
pub fn attend(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Option<&Tensor>,
    dropout: f64,
    scale: f64,
) -> Tensor {
    if query.device() == Device::Cpu
        && matches!(query.kind(), Kind::BFloat16 | Kind::Half)
        && query.size()[2] <= FP32_UP_TO
    {
        // Short rows under CPU autocast: attend in fp32 (MKL), autocast paused. oneDNN's bf16
        // batched products build a kernel for every new (rows x heads, T, T) shape, and the groups'
        // shapes are new nearly every step; at these lengths the builds cost more than bf16 saves
        // (MiniLM at max length 128: `bmm` 115 ms in bf16 against 58 ms in fp32 over 8 steps).
        if let Ok(_fp32) = torch_ext::AutocastPaused::new(Device::Cpu) {
            let f = |x: &Tensor| x.to_kind(Kind::Float);
            return attend(&f(query), &f(key), &f(value), mask, dropout, scale);
        }
    }
    if dropout == 0.0 || query.device() != Device::Cpu {
        return Tensor::scaled_dot_product_attention(
            query,
            key,
            value,
            mask,
            dropout,
            false,
            Some(scale),
            false,
        );
    }
    let scores = (query * scale).matmul(&key.transpose(-2, -1)); // (B, nh, T, T)
    let scores = match mask {
        Some(m) => scores.masked_fill(&m.logical_not(), f64::NEG_INFINITY),
        None => scores,
    };
    // In the scores' dtype: libtorch's reduced-precision softmax accumulates in fp32 and rounds once,
    // which is HF's eager fp32 softmax cast back to bf16 under autocast, without two casts of
    // (B, nh, T, T) forward and two back.
    let attn_weights = scores.softmax(-1, scores.kind());
    Draws::Philox.dropout(&attn_weights, dropout, true).matmul(value)
}

/// One attention call's inputs on packed tokens: q, k, v stacked (N, 3, nh, hs), the attention
/// dropout probability (0 in eval) and the score scale (1/sqrt(hs)), as every attention core takes
/// them. Stacked because the padded and grouped cores gather the three in one copy, and a fused
/// QKV projection produces them so with none.
pub struct PackedQkv {
    pub qkv: Tensor,
    pub dropout: f64,
    pub scale: f64,
}

impl PackedQkv {
    /// q, k, v (N, nh, hs), stacked here.
    pub fn new(query: &Tensor, key: &Tensor, value: &Tensor, dropout: f64, scale: f64) -> PackedQkv {
        PackedQkv { qkv: Tensor::stack(&[query, key, value], 1), dropout, scale }
    }

    /// q (0), k (1) or v (2): (N, nh, hs), a view.
    pub fn part(&self, i: i64) -> Tensor {
        self.qkv.select(1, i)
    }

    pub fn tokens(&self) -> i64 {
        self.qkv.size()[0]
    }

    pub fn device(&self) -> Device {
        self.qkv.device()
    }
}

/// (T, T) bool, true where a query may attend to a key at most `window` positions away: HF's
/// `sliding_window_bidirectional_overlay` (|q - k| <= window), ModernBERT's local attention.
pub fn window_band(t: i64, window: i64, device: Device) -> Tensor {
    let positions = Tensor::arange(t, (Kind::Int64, device));
    (positions.unsqueeze(1) - positions.unsqueeze(0)).abs().le(window)
}

/// The mask of a padded layout of T positions: the (B, 1, 1, T) key mask as it is without a
/// `window`, else with the band of `window` -> (B or 1, 1, T, T). `None`: every key may be seen.
pub fn with_window(key_mask: Option<&Tensor>, t: i64, window: Option<i64>, device: Device) -> Option<Tensor> {
    match window {
        Some(w) => Some(windowed_mask(key_mask, t, w, device)),
        None => key_mask.map(Tensor::shallow_clone),
    }
}

/// A (B, 1, 1, T) key mask (`None`: every key) and the band of `window` -> (B or 1, 1, T, T).
pub fn windowed_mask(key_mask: Option<&Tensor>, t: i64, window: i64, device: Device) -> Tensor {
    let band = window_band(t, window, device).view([1, 1, t, t]);
    match key_mask {
        Some(keys) => keys.logical_and(&band),
        None => band,
    }
}

/// One SDPA call per sequence: q, k, v packed, sequence b the `lengths[b]` rows after
/// the ones before it -> (N, nh * hs). Maskless, or with each sequence's keys limited to its
/// `window` band when one is given (each sequence's positions start at 0 there, as in its padded
/// row: right padding).
pub fn per_sequence(lengths: &[i64], qkv: &PackedQkv, window: Option<i64>) -> Tensor {
    let n = qkv.tokens();
    let mut outputs = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &len in lengths {
        // (len, 3, nh, hs) -> 3 x (1, nh, len, hs)
        let x = qkv.qkv.narrow(0, start, len).permute([1, 2, 0, 3]).unsqueeze(1).unbind(0);
        let mask = with_window(None, len, window, qkv.device());
        let attn_output = attend(&x[0], &x[1], &x[2], mask.as_ref(), qkv.dropout, qkv.scale);
        outputs.push(attn_output.squeeze_dim(0).transpose(0, 1).reshape([len, -1]));
        start += len;
    }
    Tensor::cat(&outputs, 0).view([n, -1])
}
