//! ModernBertPredictionHead (dense, activation, norm) and ModernBertForSequenceClassification:
//! the last hidden states pooled (`classifier_pooling`: the first token, or the mean over the
//! attention mask), the head, `drop`, `classifier`.
use tch::nn::Path;
use tch::Tensor;

use super::layer::ModernBertModel;
use super::layers::{LayerNorm, Linear};
use super::settings::{ModernBertSettings, Pooling};
use crate::model::config::BertConfig;
use crate::model::layers::activation;
use crate::model::layout::Layout;

#[derive(Debug)]
pub struct ModernBertPredictionHead {
    dense: Linear,
    act: String,
    norm: LayerNorm,
}

impl ModernBertPredictionHead {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings) -> Self {
        let h = cfg.hidden_size;
        ModernBertPredictionHead {
            dense: Linear::new(&p / "dense", h, h, s.classifier_bias),
            act: s.classifier_activation.clone(),
            norm: LayerNorm::new(&p / "norm", h, s.norm_eps, s.norm_bias),
        }
    }

    pub fn forward(&self, hidden_states: &Tensor) -> Tensor {
        self.norm.forward(&activation(&self.act, &self.dense.forward(hidden_states)))
    }
}

#[derive(Debug)]
pub struct ModernBertForSequenceClassification {
    model: ModernBertModel,
    head: ModernBertPredictionHead,
    drop: f64,
    /// `nn.Linear(hidden_size, num_labels)`: with a bias whatever `classifier_bias` says (that
    /// key is the head's dense layer's).
    classifier: Linear,
    pooling: Pooling,
}

impl ModernBertForSequenceClassification {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let s = ModernBertSettings::of(cfg);
        ModernBertForSequenceClassification {
            model: ModernBertModel::new(&p / "model", cfg, &s),
            head: ModernBertPredictionHead::new(&p / "head", cfg, &s),
            drop: cfg.classifier_dropout_prob(),
            classifier: Linear::new(&p / "classifier", cfg.hidden_size, cfg.num_labels(), true),
            pooling: s.pooling,
        }
    }

    /// -> logits (B, num_labels). ModernBERT has no token types: there is no such input.
    pub fn forward_t(&self, input_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let last_hidden_state = self.model.forward_t(input_ids, layout, train);
        let pooled = match self.pooling {
            Pooling::Cls => layout.first_tokens(&last_hidden_state),
            Pooling::Mean => mean_pool(&last_hidden_state, layout, input_ids),
        };
        let pooled_output = self.head.forward(&pooled).dropout(self.drop, train);
        self.classifier.forward(&pooled_output)
    }
}

/// The mean of each sequence's hidden states over its attention mask -> (B, H), as HF computes
/// it on the padded rows: (hidden * mask).sum(1) / mask.sum(1). The packed layout keeps position
/// 0 of a left-padded row, which its mask leaves out here as well.
fn mean_pool(hidden_states: &Tensor, layout: &Layout, input_ids: &Tensor) -> Tensor {
    let (b, t) = input_ids.size2().unwrap_or((0, 0));
    let kind = hidden_states.kind();
    let options = (kind, hidden_states.device());
    match layout {
        Layout::Padded { attention_mask } => {
            // The layout's (B, 1, T, T) mask repeats the (B, T) key mask on every query row.
            let mask = match attention_mask {
                Some(m) => m.select(1, 0).select(1, 0).to_kind(kind),
                None => Tensor::ones([b, t], options),
            };
            (hidden_states * mask.unsqueeze(-1)).sum_dim_intlist(1, false, kind)
                / mask.sum_dim_intlist(1, true, kind)
        }
        Layout::Packed { packing, .. } => {
            let mask = match &packing.key_mask {
                Some(m) => packing.pack(&m.view([b, packing.seq_len])).to_kind(kind),
                None => Tensor::ones([packing.num_tokens()], options),
            };
            let summed =
                packing.unpack(&(hidden_states * mask.unsqueeze(-1))).sum_dim_intlist(1, false, kind);
            let counts = packing.unpack(&mask.unsqueeze(-1)).sum_dim_intlist(1, false, kind);
            summed / counts
        }
    }
}
