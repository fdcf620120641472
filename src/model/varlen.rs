//! The attention core for packed tokens: the one step of the unpadded forward that needs to know
//! which tokens belong to which sequence.
//!
//! On CUDA the packed tokens go straight into libtorch's varlen kernels (`_flash_attention_forward`
//! and `_efficient_attention_forward` with cumulative sequence lengths, which tch 0.24 does not
//! bind: `crate::torch_ext::varlen_attention`). The CPU has no such kernel, so there the core goes
//! through `scaled_dot_product_attention` (`super::sdpa`): on the padded layout, one sequence at a
//! time, or in groups of similar length (`super::length_groups`).
use std::cell::OnceCell;
use std::fmt;

use tch::{Device, Kind, Tensor};

use super::packing::Packing;
use super::sdpa::{attend_padded, per_sequence, with_window, PackedQkv};
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
    /// kernel refuses the input (the CPU, an older GPU): the refusal is recorded as a
    /// [`KernelFallback`] for the caller to report, and the rest of the batch attends `Padded`.
    Varlen,
}

impl AttentionCore {
    /// The CPU: `Grouped` (measured fastest there: BENCHMARKS.md, scripts/bench_unpadded.sh); the
    /// padded core's masked attention over the batch's longest row is what a long batch spends
    /// its time on. CUDA: `Varlen` (no padding at all, one kernel call per layer; what
    /// scripts/gpu-check.sh times against the padded layout).
    pub fn for_device(device: Device) -> AttentionCore {
        if device == Device::Cpu {
            AttentionCore::Grouped
        } else {
            AttentionCore::Varlen
        }
    }
}

/// Whether training and evaluation run unpadded when the user does not say: where it was
/// measured faster. CPU: yes (BENCHMARKS.md). CUDA: not measured yet (scripts/gpu-check.sh times
/// both), so the padded layout, SDPA's fast path, stays the default.
pub fn unpadded_by_default(device: Device) -> bool {
    device == Device::Cpu
}

/// A varlen kernel that refused an input: the batch attended on the padded layout instead.
/// Silently falling back would hide that `--unpadded` on this GPU is not the fast path it was
/// asked for, so the caller reports it (once per kernel: `LayoutPolicy::fallback`).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelFallback {
    pub kernel: VarlenKernel,
    /// What to tell the user: the kernel, the input, libtorch's reason.
    pub message: String,
}

impl fmt::Display for KernelFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The packed layout's attention core for one batch: the core, the varlen kernels not to try
/// (refused earlier in the run), and the refusal this batch met, shared by every layer.
#[derive(Debug)]
pub struct PackedAttention {
    pub core: AttentionCore,
    skip: Vec<VarlenKernel>,
    fallback: OnceCell<KernelFallback>,
}

impl PackedAttention {
    pub fn new(core: AttentionCore, skip: &[VarlenKernel]) -> PackedAttention {
        PackedAttention { core, skip: skip.to_vec(), fallback: OnceCell::new() }
    }

    /// The varlen kernel refusal this batch met, if any.
    pub fn fallback(&self) -> Option<&KernelFallback> {
        self.fallback.get()
    }

    /// q, k, v packed -> (N, nh * hs). `scale` is 1/sqrt(hs) as in the padded forward.
    pub fn attention(&self, packing: &Packing, qkv: &PackedQkv) -> Tensor {
        self.attention_windowed(packing, qkv, None)
    }

    /// [`attention`](Self::attention) with each query's keys limited to those at most `window`
    /// positions away in its row (ModernBERT's local layers; `None`: no window). The per-sequence
    /// and grouped cores add the band to their masks. The varlen kernels' window arguments are
    /// not bound (`torch_ext::varlen_attention`), so `Varlen` attends a window through the padded
    /// core with an explicit mask: one masked SDPA call, correct but not the varlen fast path.
    pub fn attention_windowed(&self, packing: &Packing, qkv: &PackedQkv, window: Option<i64>) -> Tensor {
        match (self.core, &packing.lengths) {
            (AttentionCore::PerSequence, Some(lengths)) => per_sequence(lengths, qkv, window),
            (AttentionCore::Grouped, Some(_)) => match packing.length_groups() {
                Some(groups) => groups.attention(qkv, window),
                None => padded(packing, qkv, window),
            },
            (AttentionCore::Varlen, Some(_)) if window.is_none() => {
                self.varlen(packing, qkv).unwrap_or_else(|| padded(packing, qkv, None))
            }
            _ => padded(packing, qkv, window),
        }
    }

    /// The varlen kernel's output (N, nh * hs), or `None` when there is none for this input (the
    /// caller attends on the padded layout instead). A refusal is recorded once, and the kernel
    /// is not tried again for this batch.
    fn varlen(&self, packing: &Packing, qkv: &PackedQkv) -> Option<Tensor> {
        let PackedQkv { dropout, scale, .. } = *qkv;
        // Contiguous (N, nh, hs) each, as the kernels were always handed them.
        let (query, key, value) =
            (qkv.part(0).contiguous(), qkv.part(1).contiguous(), qkv.part(2).contiguous());
        let (query, key, value) = (&query, &key, &value);
        let kernel = varlen_kernel(query.kind())?;
        let cu = packing.cu_seqlens()?;
        if self.skip.contains(&kernel) || self.fallback.get().is_some_and(|f| f.kernel == kernel) {
            return None;
        }
        let n = query.size()[0];
        match torch_ext::varlen_attention(
            kernel,
            query,
            key,
            value,
            &cu.offsets,
            cu.max_seqlen,
            dropout,
            scale,
        ) {
            Ok(out) => Some(out.view([n, -1])),
            Err(why) => {
                // libtorch's first sentence; the rest is its dispatch-key listing.
                let reason = why.to_string();
                let reason = reason.lines().next().unwrap_or_default();
                let reason = reason.split_once(". ").map_or(reason, |(first, _)| first);
                let message = format!(
                    "bertfit: the {kernel:?} varlen attention kernel refused {:?} {:?} on {:?} ({reason}); \
                     attending on the padded layout instead",
                    query.kind(),
                    query.size(),
                    query.device()
                );
                let _ = self.fallback.set(KernelFallback { kernel, message });
                None
            }
        }
    }
}

/// The padded core: one scatter of q/k/v into the padded layout, one masked SDPA call, one gather;
/// with a `window`, the key mask and the band in one mask. The positions are those of the padded
/// rows, so any padding (left too) is windowed as HF does.
fn padded(packing: &Packing, qkv: &PackedQkv, window: Option<i64>) -> Tensor {
    let PackedQkv { dropout, scale, .. } = *qkv;
    let n = qkv.tokens();
    // One scatter for the three: (N, 3, nh, hs) -> (B, T, 3, nh, hs).
    let mask = with_window(packing.key_mask.as_ref(), packing.seq_len, window, qkv.device());
    let qkv = packing.unpack(&qkv.qkv);
    attend_padded(&qkv, mask.as_ref(), dropout, scale).index_select(0, &packing.indices).view([n, -1])
}

/// The kernel for the dtype the projections produced (under autocast: its dtype).
pub fn varlen_kernel(kind: Kind) -> Option<VarlenKernel> {
    match kind {
        Kind::Half | Kind::BFloat16 => Some(VarlenKernel::Flash),
        Kind::Float => Some(VarlenKernel::Efficient),
        _ => None,
    }
}
