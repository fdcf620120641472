//! torch.nn.Linear and torch.nn.LayerNorm with the bias optional: ModernBERT builds its linear
//! layers with `bias=config.attention_bias` / `mlp_bias` / `classifier_bias` and its LayerNorms
//! with `bias=config.norm_bias` (false in the published checkpoints). Zero-initialised, as
//! `super::super::layers` explains.
use tch::nn::Path;
use tch::Tensor;

/// torch.nn.Linear(in, out, bias=bias).
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(p: Path, in_features: i64, out_features: i64, bias: bool) -> Self {
        Linear {
            weight: p.zeros("weight", &[out_features, in_features]),
            bias: bias.then(|| p.zeros("bias", &[out_features])),
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        crate::model::layers::linear(xs, &self.weight, self.bias.as_ref())
    }
}

/// torch.nn.LayerNorm(size, eps=norm_eps, bias=norm_bias) over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    eps: f64,
    size: i64,
}

impl LayerNorm {
    pub fn new(p: Path, size: i64, eps: f64, bias: bool) -> Self {
        LayerNorm {
            weight: p.ones("weight", &[size]),
            bias: bias.then(|| p.zeros("bias", &[size])),
            eps,
            size,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.layer_norm([self.size], Some(&self.weight), self.bias.as_ref(), self.eps, true)
    }
}
