//! The `scaled_dot_product_attention` calls the CPU attention cores make on packed tokens: over a
//! padded layout (the padded and grouped cores), or one sequence at a time. Plain functions of
//! tensors, below every core file, so that the cores depend on them and not on each other.
use tch::{Device, Kind, Tensor};

/// Attention over a padded layout: qkv (B, T, 3, nh, hs), key_mask (B, 1, 1, T) true = attend
/// (`None`: every key; a (B, 1, T, T) mask, such as [`windowed_mask`]'s, is taken as well) ->
/// (B * T, nh * hs), every slot, padded ones included (callers keep the real ones). The one SDPA call of the padded and the grouped cores.
pub fn attend_padded(qkv: &Tensor, key_mask: Option<&Tensor>, dropout: f64, scale: f64) -> Tensor {
    let size = qkv.size();
    let (b, t) = (size[0], size[1]);
    let x = qkv.permute([2, 0, 3, 1, 4]); // 3 x (B, nh, T, hs)
    let attn_output = Tensor::scaled_dot_product_attention(
        &x.get(0),
        &x.get(1),
        &x.get(2),
        key_mask,
        dropout,
        false,
        Some(scale),
        false,
    ); // (B, nh, T, hs)
    attn_output.transpose(1, 2).reshape([b * t, -1])
}

/// One attention call's inputs on packed tokens: q, k, v (N, nh, hs), the attention dropout
/// probability (0 in eval) and the score scale (1/sqrt(hs)), as every attention core takes them.
#[derive(Clone, Copy)]
pub struct PackedQkv<'a> {
    pub query: &'a Tensor,
    pub key: &'a Tensor,
    pub value: &'a Tensor,
    pub dropout: f64,
    pub scale: f64,
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

/// One SDPA call per sequence: q, k, v (N, nh, hs) packed, sequence b the `lengths[b]` rows after
/// the ones before it -> (N, nh * hs). Maskless, or with each sequence's keys limited to its
/// `window` band when one is given (each sequence's positions start at 0 there, as in its padded
/// row: right padding).
pub fn per_sequence(lengths: &[i64], qkv: &PackedQkv, window: Option<i64>) -> Tensor {
    let PackedQkv { query, key, value, dropout, scale } = *qkv;
    let n = query.size()[0];
    let mut outputs = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &len in lengths {
        // (len, nh, hs) -> (1, nh, len, hs)
        let one = |x: &Tensor| x.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
        let mask = with_window(None, len, window, query.device());
        let attn_output = Tensor::scaled_dot_product_attention(
            &one(query),
            &one(key),
            &one(value),
            mask.as_ref(),
            dropout,
            false,
            Some(scale),
            false,
        );
        outputs.push(attn_output.squeeze_dim(0).transpose(0, 1).reshape([len, -1]));
        start += len;
    }
    Tensor::cat(&outputs, 0).view([n, -1])
}
