//! HF's `_init_weights` for the parameters a checkpoint does not provide (normally the classifier).
//! Walks `model::names::parameters` so random draws happen in HF's module order.
use std::collections::HashMap;

use tch::Tensor;

use crate::model::config::BertConfig;
use crate::model::names::{parameters, HfInit};

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
            }
        }
    })
}
