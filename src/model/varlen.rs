//! The attention core for packed tokens: the one step of the unpadded forward that needs to know
//! which tokens belong to which sequence.
//!
//! tch 0.24 does not bind libtorch's varlen kernels (`_flash_attention_forward` and
//! `_efficient_attention_forward` with cumulative sequence lengths; only their backwards are
//! generated), so on every device the core goes through `scaled_dot_product_attention`, either on
//! the padded layout or one sequence at a time.
use tch::Tensor;

use super::packing::Packing;

/// How the packed q/k/v reach `scaled_dot_product_attention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionCore {
    /// Scatter q/k/v into (B, nh, T, hs) with zeros, attend with the key mask, gather back:
    /// one SDPA call, works for any mask.
    Padded,
    /// One maskless SDPA call per sequence on its own rows: no padded query or key at all, but B
    /// calls per layer. Used only when every row is right-padded; `Padded` otherwise.
    PerSequence,
    /// Sequences of similar length together, each group padded to its own longest row
    /// (`length_groups`): little padding and few calls. Right padding only; `Padded` otherwise.
    Grouped,
}

/// q, k, v: (N, nh, hs) packed -> (N, nh * hs). `scale` is 1/sqrt(hs) as in the padded forward.
pub fn attention(
    core: AttentionCore,
    packing: &Packing,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    dropout: f64,
    scale: f64,
) -> Tensor {
    match (core, &packing.lengths) {
        (AttentionCore::PerSequence, Some(lengths)) => {
            per_sequence(lengths, query, key, value, dropout, scale)
        }
        (AttentionCore::Grouped, Some(_)) => match packing.length_groups() {
            Some(groups) => groups.attention(query, key, value, dropout, scale),
            None => padded(packing, query, key, value, dropout, scale),
        },
        _ => padded(packing, query, key, value, dropout, scale),
    }
}

fn padded(
    packing: &Packing,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    dropout: f64,
    scale: f64,
) -> Tensor {
    let n = query.size()[0];
    // One scatter for the three: (N, 3, nh, hs) -> (B, T, 3, nh, hs).
    let qkv = packing.unpack(&Tensor::stack(&[query, key, value], 1));
    attend_padded(&qkv, packing.key_mask.as_ref(), dropout, scale)
        .index_select(0, &packing.indices)
        .view([n, -1])
}

/// Attention over a padded layout: qkv (B, T, 3, nh, hs), key_mask (B, 1, 1, T) true = attend
/// (`None`: every key) -> (B * T, nh * hs), every slot, padded ones included (callers keep the
/// real ones). The one SDPA call of the padded and the grouped cores.
pub(super) fn attend_padded(qkv: &Tensor, key_mask: Option<&Tensor>, dropout: f64, scale: f64) -> Tensor {
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

fn per_sequence(
    lengths: &[i64],
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    dropout: f64,
    scale: f64,
) -> Tensor {
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

impl AttentionCore {
    /// The CPU: `Grouped`. On 2 cores (MiniLM, batch 32, forward + backward, scripts/
    /// bench_unpadded.sh, 2026-11-29, idle machine) against the padded forward: movie snippets at
    /// 128 (54% padding) padded core 1.80x, per-sequence 1.97x, grouped 2.12x; mixed long texts at
    /// 512 (73% padding) 1.58x, 7.06x, 7.03x: the padded core's masked attention over the batch's
    /// longest row is what a long batch spends its time on. CUDA: `Padded` (SDPA's fused kernels
    /// on one call; not measured yet).
    pub fn for_device(device: tch::Device) -> AttentionCore {
        if device == tch::Device::Cpu {
            AttentionCore::Grouped
        } else {
            AttentionCore::Padded
        }
    }
}

/// Whether training and evaluation run unpadded when the user does not say: where it was
/// measured faster. CPU: yes (MiniLM forward + backward, batch 32, 2 threads: 2.1x the padded
/// layout on movie snippets at 128, 7x on mixed long texts at 512; BENCHMARKS.md). CUDA: not measured yet
/// (scripts/gpu-check.sh times both), so the padded layout, SDPA's fast path, stays the default.
pub fn unpadded_by_default(device: tch::Device) -> bool {
    device == tch::Device::Cpu
}
