//! The attention core for packed tokens: the one step of the unpadded forward that needs to know
//! which tokens belong to which sequence.
//!
//! On CUDA the packed tokens go straight into libtorch's varlen kernels (`_flash_attention_forward`
//! and `_efficient_attention_forward` with cumulative sequence lengths, which tch 0.24 does not
//! bind: `crate::torch_ext::varlen_attention`). The CPU has no such kernel, so there the core goes
//! through `scaled_dot_product_attention`: on the padded layout, one sequence at a time, or in
//! groups of similar length.
use std::sync::Mutex;

use tch::{Kind, Tensor};

use super::packing::Packing;
use crate::torch_ext::{self, VarlenKernel};

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
    /// libtorch's varlen kernels on the packed (N, nh, hs) tokens with cumulative sequence lengths:
    /// no padded slot and one call per layer. FlashAttention-2 for fp16/bf16 (autocast), the
    /// memory-efficient kernel for fp32. Right padding only; `Padded` otherwise, and wherever the
    /// kernel refuses the input (the CPU, an older GPU): said once on stderr, then `Padded` for
    /// the rest of the process.
    Varlen,
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
        (AttentionCore::Varlen, Some(_)) => varlen(packing, query, key, value, dropout, scale)
            .unwrap_or_else(|| padded(packing, query, key, value, dropout, scale)),
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

/// Kernels that refused an input once, with libtorch's reason; not tried again in this process.
static REFUSED: Mutex<Vec<VarlenKernel>> = Mutex::new(Vec::new());

/// The kernels that refused an input in this process (each was then replaced by the padded core).
pub fn refused_kernels() -> Vec<VarlenKernel> {
    REFUSED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// The kernel for the dtype the projections produced (under autocast: its dtype).
pub fn varlen_kernel(kind: Kind) -> Option<VarlenKernel> {
    match kind {
        Kind::Half | Kind::BFloat16 => Some(VarlenKernel::Flash),
        Kind::Float => Some(VarlenKernel::Efficient),
        _ => None,
    }
}

/// The varlen kernel's output (N, nh * hs), or `None` when there is none for this input (the
/// caller attends on the padded layout instead). A refusal is reported once per kernel: silently
/// falling back would hide that `--unpadded` on this GPU is not the fast path it was asked for.
fn varlen(
    packing: &Packing,
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    dropout: f64,
    scale: f64,
) -> Option<Tensor> {
    let kernel = varlen_kernel(query.kind())?;
    let cu = packing.cu_seqlens()?;
    let refused = REFUSED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if refused.contains(&kernel) {
        return None;
    }
    drop(refused);
    let n = query.size()[0];
    match torch_ext::varlen_attention(kernel, query, key, value, &cu.offsets, cu.max_seqlen, dropout, scale) {
        Ok(out) => Some(out.view([n, -1])),
        Err(why) => {
            let mut refused = REFUSED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !refused.contains(&kernel) {
                refused.push(kernel);
                // libtorch's first sentence; the rest is its dispatch-key listing.
                let reason = why.to_string();
                let reason = reason.lines().next().unwrap_or_default();
                let reason = reason.split_once(". ").map_or(reason, |(first, _)| first);
                eprintln!(
                    "bertfit: the {kernel:?} varlen attention kernel refused {:?} {:?} on {:?} ({reason}); \
                     attending on the padded layout instead",
                    query.kind(),
                    query.size(),
                    query.device()
                );
            }
            None
        }
    }
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
    /// longest row is what a long batch spends its time on. CUDA: `Varlen` (no padding at all, one
    /// kernel call per layer; what scripts/gpu-check.sh times against the padded layout).
    pub fn for_device(device: tch::Device) -> AttentionCore {
        if device == tch::Device::Cpu {
            AttentionCore::Grouped
        } else {
            AttentionCore::Varlen
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
