//! The three torch.nn layers BERT is made of, with torch's parameter names.
//!
//! Parameters are created as zeros, drawing nothing from the random generator: pretrained weights
//! overwrite them, and only the ones the checkpoint lacks get HF's init (`weights::init`). That keeps
//! the random stream in step with `from_pretrained`, which builds the model without initialising it.
use tch::nn::Path;
use tch::{Device, Kind, Tensor};

use crate::torch_ext;

/// torch.nn.Linear: y = x W^T + b, W is (out, in).
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(p: Path, in_features: i64, out_features: i64) -> Self {
        Linear {
            weight: p.zeros("weight", &[out_features, in_features]),
            bias: p.zeros("bias", &[out_features]),
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        linear(xs, &self.weight, Some(&self.bias))
    }
}

/// Rows of packed tokens are padded to a multiple of this under CPU autocast ([`linear`]).
pub const ROW_BUCKET: i64 = 64;

/// `xs.linear(weight, bias)`, with one difference under CPU autocast in bf16/fp16 (oneDNN's GEMMs):
/// 2-D inputs (N, in), packed tokens and the heads' (B, H) rows, are computed over N rounded up to
/// a multiple of [`ROW_BUCKET`] with zero rows and the product's first N rows kept
/// ([`torch_ext::bucketed_linear`], which casts and pads in one pass). oneDNN builds a kernel per
/// shape and caches 1024 of them; N, the batch's real token count, is new almost every step, so
/// every step paid the kernel builds (about 1 ms each, 20 a step for MiniLM: measured with
/// ONEDNN_VERBOSE=2) and a long run kept evicting them. Bucketed, a run meets a few dozen shapes.
/// fp32 runs MKL's GEMM, which builds nothing: there nothing changes.
pub fn linear(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    match cpu_autocast_reduced() {
        Some(dtype) if xs.dim() == 2 && xs.device() == Device::Cpu => {
            torch_ext::bucketed_linear(xs, weight, bias, ROW_BUCKET, dtype)
                .unwrap_or_else(|e| panic!("linear over bucketed rows: {e}"))
        }
        _ => xs.linear(weight, bias),
    }
}

/// The dtype of CPU autocast when it is on in bf16 or fp16.
fn cpu_autocast_reduced() -> Option<Kind> {
    torch_ext::autocast_state(Device::Cpu)
        .ok()
        .filter(|s| s.enabled && matches!(s.dtype, Kind::BFloat16 | Kind::Half))
        .map(|s| s.dtype)
}

/// torch.nn.LayerNorm over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    eps: f64,
    size: i64,
}

impl LayerNorm {
    pub fn new(p: Path, size: i64, eps: f64) -> Self {
        LayerNorm { weight: p.ones("weight", &[size]), bias: p.zeros("bias", &[size]), eps, size }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.layer_norm([self.size], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// torch.nn.Embedding. `padding_idx` (HF sets it for word embeddings) gets no gradient, as in torch.
#[derive(Debug)]
pub struct Embedding {
    pub weight: Tensor,
    padding_idx: i64,
    /// A vocabulary-sized table: its gradient may come back as rows ([`RowGradients`]).
    rows_gradient: bool,
}

thread_local! {
    static ROW_GRADIENTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While one is alive, forwards on this thread give vocabulary tables ([`Embedding::vocabulary`])
/// on the CPU a gradient of the looked-up rows (`nn.Embedding(sparse=True)`'s backward) instead of
/// a dense table: the dense backward zeroes the whole table every step (47 MB for BERT's
/// vocabulary at hidden size 384) to add a few thousand rows into it. Whoever backpropagates must
/// then take the rows: the trainer's optimizer adds them into a table it keeps zeroed
/// (`train::row_grads`), with the same additions in the same order, so the sums are the dense
/// backward's bits. Scoped like autocast, so that every other caller of the model (prediction,
/// tests, benches) keeps dense gradients. Not on CUDA, where the dense kernel is cheap and sorted.
pub struct RowGradients {
    previous: bool,
}

impl RowGradients {
    pub fn on() -> RowGradients {
        RowGradients { previous: ROW_GRADIENTS.with(|r| r.replace(true)) }
    }
}

impl Drop for RowGradients {
    fn drop(&mut self) {
        ROW_GRADIENTS.with(|r| r.set(self.previous));
    }
}

impl Embedding {
    pub fn new(p: Path, num_embeddings: i64, dim: i64, padding_idx: Option<i64>) -> Self {
        Embedding {
            weight: p.zeros("weight", &[num_embeddings, dim]),
            padding_idx: padding_idx.unwrap_or(-1),
            rows_gradient: false,
        }
    }

    /// A word-embedding table, whose gradient may come back as rows ([`RowGradients`]).
    pub fn vocabulary(p: Path, num_embeddings: i64, dim: i64, padding_idx: Option<i64>) -> Self {
        Embedding { rows_gradient: true, ..Self::new(p, num_embeddings, dim, padding_idx) }
    }

    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let sparse =
            self.rows_gradient && ids.device() == Device::Cpu && ROW_GRADIENTS.with(std::cell::Cell::get);
        Tensor::embedding(&self.weight, ids, self.padding_idx, false, sparse)
    }
}

/// HF's ACT2FN for the names `BertConfig::validate` accepts.
pub fn activation(name: &str, xs: &Tensor) -> Tensor {
    match name {
        "gelu" => xs.gelu("none"),
        "gelu_new" | "gelu_pytorch_tanh" => xs.gelu("tanh"),
        "relu" => xs.relu(),
        _ => xs.silu(), // "silu" | "swish"; anything else is refused when the config is read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torch_ext::AutocastGuard;

    /// The bucketed linear is autocast's `linear` on the zero-padded rows, bit for bit: output,
    /// and the gradients of input, weight and bias.
    #[test]
    fn bucketed_linear_is_autocasts_linear_on_the_padded_rows() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(1);
        let opts = (Kind::Float, Device::Cpu);
        let n = 100;
        let x = Tensor::randn([n, 32], opts).set_requires_grad(true);
        let w = Tensor::randn([24, 32], opts).set_requires_grad(true);
        let b = Tensor::randn([24], opts).set_requires_grad(true);
        let g = Tensor::randn([n, 24], opts);
        let grads = |y: &Tensor| {
            let loss = (y.to_kind(Kind::Float) * &g).sum(Kind::Float);
            Tensor::run_backward(&[loss], &[&x, &w, &b], false, false)
        };
        let _autocast = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        let got = linear(&x, &w, Some(&b));
        let padded = x.constant_pad_nd([0, 0, 0, 128 - n]);
        let want = padded.linear(&w, Some(&b)).narrow(0, 0, n);
        assert_eq!(got.kind(), want.kind());
        assert!(got.equal(&want), "forward");
        for (name, (a, e)) in ["input", "weight", "bias"].iter().zip(grads(&got).iter().zip(&grads(&want))) {
            assert_eq!(a.kind(), e.kind(), "{name}");
            assert!(a.equal(e), "{name} gradient");
        }
    }

    /// Without a bias (ModernBERT's linears by default) it computes the plain bf16 product.
    #[test]
    fn bucketed_linear_without_a_bias() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(2);
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([64, 16], opts);
        let w = Tensor::randn([8, 16], opts).set_requires_grad(true);
        let _autocast = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        let got = linear(&x, &w, None);
        let want = x.to_kind(Kind::BFloat16).mm(&w.detach().to_kind(Kind::BFloat16).tr());
        assert!(got.equal(&want));
        got.to_kind(Kind::Float).sum(Kind::Float).backward();
        assert_eq!(w.grad().size(), w.size());
    }

    #[test]
    fn packed_rows_under_cpu_autocast_keep_their_count_values_and_gradients() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([100, 16], opts).set_requires_grad(true);
        let (w, b) = (Tensor::randn([8, 16], opts), Tensor::randn([8], opts));
        let _autocast = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        let got = linear(&x, &w, Some(&b));
        let want = x.linear(&w, Some(&b));
        assert_eq!((got.size(), got.kind()), (vec![100, 8], Kind::BFloat16));
        assert!(got.to_kind(Kind::Float).allclose(&want.to_kind(Kind::Float), 1e-2, 1e-2, false));
        let grad = |y: &Tensor| {
            Tensor::run_backward(&[y.to_kind(Kind::Float).sum(Kind::Float)], &[&x], false, false)
        };
        let (g_got, g_want) = (grad(&got).remove(0), grad(&want).remove(0));
        assert!(g_got.allclose(&g_want, 1e-2, 1e-2, false));
    }
}
