//! ModernBertMLP: the GeGLU feed-forward. `Wi` is twice `intermediate_size` wide; its output is
//! cut in two, the activation of the first half gates the second, and `Wo` projects back.
use tch::nn::Path;
use tch::Tensor;

use super::layers::Linear;
use super::settings::ModernBertSettings;
use crate::model::config::BertConfig;
use crate::model::layers::activation;

#[derive(Debug)]
#[allow(non_snake_case)] // HF's names
pub struct ModernBertMLP {
    Wi: Linear,
    act: String,
    drop: f64,
    Wo: Linear,
}

impl ModernBertMLP {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        ModernBertMLP {
            Wi: Linear::new(&p / "Wi", h, 2 * i, s.mlp_bias),
            act: s.hidden_activation.clone(),
            drop: s.mlp_dropout,
            Wo: Linear::new(&p / "Wo", i, h, s.mlp_bias),
        }
    }

    /// Per token: the same on either layout.
    pub fn forward_t(&self, hidden_states: &Tensor, train: bool) -> Tensor {
        let chunks = self.Wi.forward(hidden_states).chunk(2, -1);
        let (input, gate) = (&chunks[0], &chunks[1]);
        self.Wo.forward(&(activation(&self.act, input) * gate).dropout(self.drop, train))
    }
}
