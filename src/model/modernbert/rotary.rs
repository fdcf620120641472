//! ModernBertRotaryEmbedding and `apply_rotary_pos_emb`: rotary positions, one base for the
//! global layers (`global_rope_theta`, 160000) and one for the local ones (10000). Each token's
//! angle comes from its position id, which the layout gives: its place in its padded row, so a
//! packed batch restarts the positions at every sequence without being told.
use tch::{Device, Kind, Tensor};

/// The inverse frequencies of both layer kinds (HF's non-persistent `*_inv_freq` buffers).
#[derive(Debug)]
pub struct ModernBertRotaryEmbedding {
    global_inv_freq: Tensor,
    local_inv_freq: Tensor,
}

/// One layer kind's cos and sin for every token of the batch: (1, T, head_dim) padded or
/// (N, head_dim) packed, computed once per forward and shared by the layers of that kind.
#[derive(Debug)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl ModernBertRotaryEmbedding {
    pub fn new(head_dim: i64, global_theta: f64, local_theta: f64, device: Device) -> Self {
        ModernBertRotaryEmbedding {
            global_inv_freq: inv_freq(global_theta, head_dim, device),
            local_inv_freq: inv_freq(local_theta, head_dim, device),
        }
    }

    /// cos and sin at `position_ids` ((1, T) or (N,)) for the global or the local layers, in
    /// `kind` (the hidden states' dtype, as HF casts them).
    pub fn forward(&self, position_ids: &Tensor, global: bool, kind: Kind) -> Rotary {
        let inv_freq = if global { &self.global_inv_freq } else { &self.local_inv_freq };
        let freqs =
            position_ids.unsqueeze(-1).to_kind(Kind::Float) * inv_freq.to_device(position_ids.device());
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        Rotary { cos: emb.cos().to_kind(kind), sin: emb.sin().to_kind(kind) }
    }
}

/// `1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))`, as
/// `compute_default_rope_parameters` computes it in fp32 (`1.0 / t` is torch's reciprocal).
fn inv_freq(base: f64, dim: i64, device: Device) -> Tensor {
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Float, device)) / dim as f64;
    Tensor::pow_scalar(base, &exponents).reciprocal()
}

impl Rotary {
    /// `apply_rotary_pos_emb` on query and key laid out (B, T, nh, hs) or (N, nh, hs): in fp32,
    /// back to their dtype.
    pub fn apply(&self, query: &Tensor, key: &Tensor) -> (Tensor, Tensor) {
        let (cos, sin) = (self.cos.unsqueeze(-2), self.sin.unsqueeze(-2)); // broadcast over heads
        let rotate = |x: &Tensor| {
            let x32 = x.to_kind(Kind::Float);
            ((&x32 * &cos) + (rotate_half(&x32) * &sin)).to_kind(x.kind())
        };
        (rotate(query), rotate(key))
    }
}

/// The second half of the last dimension negated, then the first half.
fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let x1 = x.narrow(-1, 0, half);
    let x2 = x.narrow(-1, half, half);
    Tensor::cat(&[&x2.neg(), &x1], -1)
}
