//! How a batch's tokens lie in the hidden states the encoder passes along: padded rows or packed
//! real tokens. Every encoder layer is per token except the attention core, so the layout is
//! built once per batch, handed down unchanged, and only the embeddings (which tokens, which
//! positions), the attention core (`attention::attention_core`, every family's) and the pooler or
//! classification head (where each sequence's first token is) look at it.
//!
//! [`LayoutPolicy::for_batch`] is the one place a batch's layout is decided, for training,
//! evaluation and prediction alike: from the host's copy of the attention mask, so that on a GPU
//! the host never waits for the device to learn where the real tokens are. `Layout::padded` and
//! `Layout::packed` build one layout or the other whatever the policy (tests and benches compare them).
use tch::{Device, Kind, Tensor};

use super::dropout::Draws;
use super::packing::Packing;
use super::varlen::{AttentionCore, KernelFallback, PackedAttention};
use crate::device::to_device_async;
use crate::torch_ext::VarlenKernel;

#[derive(Debug)]
pub enum Layout {
    /// hidden_states (B, T, H). attention_mask: boolean (B, 1, T, T) on the model's device, true =
    /// attend, or `None` when nothing is padded ([`bidirectional_mask`]).
    Padded { attention_mask: Option<Tensor> },
    /// hidden_states (N, H), the tokens `packing` keeps; `attention` attends within each sequence.
    Packed { packing: Packing, attention: PackedAttention },
}

impl Layout {
    /// The padded layout of a batch whose (B, T) mask is `attention_mask`, for a model on `device`.
    /// A mask on the host is read without waiting for the GPU; one on a GPU is read back first.
    pub fn padded(attention_mask: &Tensor, device: Device) -> Layout {
        let mask = bidirectional_mask(attention_mask, any_padding(attention_mask));
        Layout::Padded { attention_mask: mask.map(|m| expand_keys(&to_device_async(&m, device))) }
    }

    /// The packed layout of the same batch ([`Packing::new`]), attending through `core`.
    pub fn packed(attention_mask: &Tensor, device: Device, core: AttentionCore) -> Layout {
        LayoutPolicy::new(device, true).with_core(core).for_batch(attention_mask)
    }

    /// The tokens the layout keeps of a (B, T, ...) input: all of them, or packed (N, ...).
    pub fn tokens(&self, xs: &Tensor) -> Tensor {
        match self {
            Layout::Padded { .. } => xs.shallow_clone(),
            Layout::Packed { packing, .. } => packing.pack(xs),
        }
    }

    /// Each kept token's position id for `input_ids` (B, T): (1, T) for the padded rows, (N,) its
    /// place in its padded row for the packed tokens.
    pub fn position_ids(&self, input_ids: &Tensor) -> Tensor {
        match self {
            Layout::Padded { .. } => {
                let seq_length = input_ids.size()[1];
                Tensor::arange(seq_length, (Kind::Int64, input_ids.device())).unsqueeze(0)
            }
            Layout::Packed { packing, .. } => packing.position_ids.shallow_clone(),
        }
    }

    /// Each sequence's position 0 ([CLS]) of hidden_states laid out this way -> (B, H). The
    /// packing always keeps position 0, whatever its mask.
    pub fn first_tokens(&self, hidden_states: &Tensor) -> Tensor {
        match self {
            Layout::Padded { .. } => hidden_states.select(1, 0),
            Layout::Packed { packing, .. } => hidden_states.index_select(0, &packing.first_tokens),
        }
    }

    /// Where this layout's dropout masks come from ([`Draws`]): libtorch's in the padded layout,
    /// the one `--reproduce-pytorch` computes; Philox on the CPU in the packed one.
    pub fn draws(&self) -> Draws {
        match self {
            Layout::Padded { .. } => Draws::Torch,
            Layout::Packed { .. } => Draws::Philox,
        }
    }

    /// `xs` with dropout `p` when training, drawn as [`Layout::draws`] says.
    pub fn dropout(&self, xs: &Tensor, p: f64, train: bool) -> Tensor {
        self.draws().dropout(xs, p, train)
    }

    /// The varlen kernel refusal a forward on this layout met, if any.
    pub fn fallback(&self) -> Option<&KernelFallback> {
        match self {
            Layout::Padded { .. } => None,
            Layout::Packed { attention, .. } => attention.fallback(),
        }
    }
}

/// How a run lays out its batches on its device: padded, or packed (`--unpadded`) with the
/// device's attention core ([`AttentionCore::for_device`]). Made once per run (or per loaded
/// model); it remembers the varlen kernels that refused an input, so that later batches do not
/// try them again.
#[derive(Debug)]
pub struct LayoutPolicy {
    device: Device,
    unpadded: bool,
    core: AttentionCore,
    refused: Vec<VarlenKernel>,
}

impl LayoutPolicy {
    pub fn new(device: Device, unpadded: bool) -> LayoutPolicy {
        LayoutPolicy { device, unpadded, core: AttentionCore::for_device(device), refused: Vec::new() }
    }

    /// The same policy with the packed layout attending through `core` (to compare cores).
    pub fn with_core(self, core: AttentionCore) -> LayoutPolicy {
        LayoutPolicy { core, ..self }
    }

    /// The layout of one batch, from its (B, T) attention mask: the host's copy for a model on a
    /// GPU (the loader's batch before it is sent), so that nothing here waits for the GPU.
    pub fn for_batch(&self, attention_mask: &Tensor) -> Layout {
        if self.unpadded {
            Layout::Packed {
                packing: Packing::new(attention_mask, self.device),
                attention: PackedAttention::new(self.core, &self.refused),
            }
        } else {
            Layout::padded(attention_mask, self.device)
        }
    }

    /// After a forward on `layout`: the kernel refusal it met, the first time this policy sees
    /// that kernel refuse (the caller reports it); later layouts skip the kernel.
    pub fn fallback(&mut self, layout: &Layout) -> Option<KernelFallback> {
        let fallback = layout.fallback().filter(|f| !self.refused.contains(&f.kernel))?;
        self.refused.push(fallback.kernel);
        Some(fallback.clone())
    }
}

/// Whether any position of a (B, T) attention mask is 0 (reads it: on a GPU, waits for it).
pub fn any_padding(attention_mask: &Tensor) -> bool {
    attention_mask.numel() > 0 && attention_mask.min().int64_value(&[]) == 0
}

/// HF's `create_bidirectional_mask` for SDPA, per key: `None` when no position is padded
/// (`padded` false, [`any_padding`]), else a boolean (B, 1, 1, T) mask, true where a key may be
/// attended to; [`Layout::padded`] expands it to (B, 1, T, T) on the model's device. SDPA turns
/// false into -inf, the exact form of HF's "dtype minimum" additive mask.
pub fn bidirectional_mask(attention_mask: &Tensor, padded: bool) -> Option<Tensor> {
    if !padded {
        return None;
    }
    let (b, t) = attention_mask.size2().unwrap_or((0, 0));
    Some(attention_mask.to_kind(Kind::Bool).view([b, 1, 1, t]))
}

/// (B, 1, 1, T) -> (B, 1, T, T): every query row sees the same keys.
fn expand_keys(mask: &Tensor) -> Tensor {
    let size = mask.size();
    let (b, t) = (size[0], size[3]);
    mask.expand([b, 1, t, t], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sdpa::PackedQkv;

    fn mask(rows: &[&[i64]]) -> Tensor {
        let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
    }

    #[test]
    fn padded_layout_masks_keys_only_when_something_is_padded() {
        let full = Layout::padded(&mask(&[&[1, 1], &[1, 1]]), Device::Cpu);
        assert!(matches!(full, Layout::Padded { attention_mask: None }));
        let Layout::Padded { attention_mask: Some(m) } = Layout::padded(&mask(&[&[1, 1, 0]]), Device::Cpu)
        else {
            panic!("a padded batch needs a mask")
        };
        assert_eq!(m.size(), vec![1, 1, 3, 3]);
        assert_eq!(Vec::<bool>::try_from(m.get(0).get(0).get(2)).unwrap(), vec![true, true, false]);
    }

    #[test]
    fn a_refused_kernel_is_reported_once_and_then_skipped() {
        let _generator = crate::random::generator_lock();
        // The CPU has no varlen kernel: the Varlen core falls back, and says so through the layout.
        let m = mask(&[&[1, 1, 1, 0], &[1, 1, 0, 0]]);
        let mut policy = LayoutPolicy::new(Device::Cpu, true).with_core(AttentionCore::Varlen);
        let qkv = Tensor::randn([5, 2, 4], (Kind::Float, Device::Cpu));
        let attend = |layout: &Layout| match layout {
            Layout::Packed { packing, attention } => {
                attention.attention(packing, &PackedQkv::new(&qkv, &qkv, &qkv, 0.0, 0.5))
            }
            Layout::Padded { .. } => unreachable!("the policy is unpadded"),
        };
        let first = policy.for_batch(&m);
        let out = attend(&first);
        assert_eq!(out.size(), vec![5, 8]);
        let fallback = policy.fallback(&first).expect("the CPU refuses the varlen kernel");
        assert_eq!(fallback.kernel, VarlenKernel::Efficient);
        assert!(
            fallback.to_string().starts_with(
                "bertfit: the Efficient varlen attention kernel refused Float [5, 2, 4] on Cpu ("
            ) && fallback.to_string().ends_with("); attending on the padded layout instead"),
            "{fallback}"
        );
        assert!(policy.fallback(&first).is_none(), "reported once");
        let second = policy.for_batch(&m);
        let again = attend(&second);
        assert!(second.fallback().is_none(), "a refused kernel is not tried again");
        assert_eq!(
            Vec::<f32>::try_from(out.flatten(0, -1)).unwrap(),
            Vec::<f32>::try_from(again.flatten(0, -1)).unwrap()
        );
    }
}
