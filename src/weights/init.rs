//! HF's `_init_weights` for the parameters a checkpoint does not provide (normally the classifier).
//! Walks `model::names::parameters` so random draws happen in HF's module order.
use std::collections::HashMap;

use tch::Tensor;

use crate::model::config::BertConfig;
use crate::model::names::{parameters, HfInit};

/// torch.nn.init.trunc_normal_(t, mean=0, std, a=-cutoff*std, b=cutoff*std), step by step as
/// torch does it (uniform on the truncated CDF's range, inverse error function, scale, clamp), so
/// the draws and the values are torch's.
fn trunc_normal_(t: &mut Tensor, std: f64, cutoff: f64) {
    // norm_cdf(-cutoff) and norm_cdf(cutoff), with libtorch's erf (Rust's std has none).
    let erf = |x: f64| Tensor::from(x).erf().double_value(&[]);
    let norm_cdf = |x: f64| (1.0 + erf(x / 2f64.sqrt())) / 2.0;
    let (l, u) = (norm_cdf(-cutoff), norm_cdf(cutoff));
    let _ = t.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
    let _ = t.erfinv_();
    let _ = t.g_mul_scalar_(std * 2f64.sqrt());
    let _ = t.g_add_scalar_(0.0);
    let _ = t.clamp_(-cutoff * std, cutoff * std);
}

/// Initialises, in HF order, each parameter whose name `select` accepts.
pub fn init_weights(variables: &HashMap<String, Tensor>, cfg: &BertConfig, select: impl Fn(&str) -> bool) {
    tch::no_grad(|| {
        for (name, init) in parameters(cfg) {
            if !select(&name) {
                continue;
            }
            let Some(t) = variables.get(&name) else { continue };
            let mut t = t.shallow_clone();
            match init {
                HfInit::Normal => {
                    let _ = t.normal_(0.0, cfg.initializer_range);
                }
                HfInit::NormalPaddingZeroed => {
                    let _ = t.normal_(0.0, cfg.initializer_range);
                    let _ = t.get(cfg.pad_token_id).zero_();
                }
                HfInit::Zeros => {
                    let _ = t.zero_();
                }
                HfInit::Ones => {
                    let _ = t.fill_(1.0);
                }
                HfInit::NormalThenTruncNormal { std, cutoff } => {
                    let _ = t.normal_(0.0, cfg.initializer_range);
                    trunc_normal_(&mut t, std, cutoff);
                }
            }
        }
    })
}
