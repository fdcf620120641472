//! BertLayer (attention + feed-forward) and BertEncoder, the stack of `num_hidden_layers` of them.
use tch::nn::Path;
use tch::Tensor;

use super::attention::{BertAttention, BertSelfOutput};
use super::config::BertConfig;
use super::layers::{activation, Linear};
use super::layout::Layout;

#[derive(Debug)]
pub struct BertIntermediate {
    dense: Linear,
    hidden_act: String,
}

impl BertIntermediate {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertIntermediate {
            dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.intermediate_size),
            hidden_act: cfg.hidden_act.clone(),
        }
    }

    pub fn forward(&self, hidden_states: &Tensor) -> Tensor {
        activation(&self.hidden_act, &self.dense.forward(hidden_states))
    }
}

/// BertOutput: the FFN's projection back to the hidden size, dropout, residual and LayerNorm. HF's
/// class has BertSelfOutput's modules and forward over `intermediate_size` inputs: one type here.
pub type BertOutput = BertSelfOutput;

/// BertOutput over `cfg.intermediate_size` inputs, at `p`.
pub fn bert_output(p: Path, cfg: &BertConfig) -> BertOutput {
    BertSelfOutput::with_inputs(p, cfg, cfg.intermediate_size)
}

#[derive(Debug)]
pub struct BertLayer {
    attention: BertAttention,
    intermediate: BertIntermediate,
    output: BertOutput,
}

impl BertLayer {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertLayer {
            attention: BertAttention::new(&p / "attention", cfg),
            intermediate: BertIntermediate::new(&p / "intermediate", cfg),
            output: bert_output(&p / "output", cfg),
        }
    }

    /// The feed-forward part is per token: it runs the same on either layout.
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let attention_output = self.attention.forward_t(hidden_states, layout, train);
        let intermediate_output = self.intermediate.forward(&attention_output);
        self.output.forward_t(&intermediate_output, &attention_output, layout.draws(), train)
    }
}

#[derive(Debug)]
pub struct BertEncoder {
    layer: Vec<BertLayer>,
}

impl BertEncoder {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let p = &p / "layer";
        BertEncoder { layer: (0..cfg.num_hidden_layers).map(|i| BertLayer::new(&p / i, cfg)).collect() }
    }

    /// hidden_states: (B, T, H) or packed (N, H), as `layout` says -> the same shape.
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let mut hidden_states = hidden_states.shallow_clone();
        for layer_module in &self.layer {
            hidden_states = layer_module.forward_t(&hidden_states, layout, train);
        }
        hidden_states
    }
}
