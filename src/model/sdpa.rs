//! The `scaled_dot_product_attention` calls the CPU attention cores make on packed tokens: over a
//! padded layout (the padded and grouped cores), or one sequence at a time. Plain functions of
//! tensors, below every core file, so that the cores depend on them and not on each other.
use tch::Tensor;

/// Attention over a padded layout: qkv (B, T, 3, nh, hs), key_mask (B, 1, 1, T) true = attend
/// (`None`: every key) -> (B * T, nh * hs), every slot, padded ones included (callers keep the
/// real ones). The one SDPA call of the padded and the grouped cores.
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

/// One maskless SDPA call per sequence: q, k, v (N, nh, hs) packed, sequence b the `lengths[b]`
/// rows after the ones before it -> (N, nh * hs).
pub fn per_sequence(lengths: &[i64], qkv: &PackedQkv) -> Tensor {
    let PackedQkv { query, key, value, dropout, scale } = *qkv;
    let n = query.size()[0];
    let mut outputs = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &len in lengths {
        // (len, nh, hs) -> (1, nh, len, hs)
        let one = |x: &Tensor| x.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
        let attn_output = Tensor::scaled_dot_product_attention(
            &one(query),
            &one(key),
            &one(value),
            None::<&Tensor>,
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
