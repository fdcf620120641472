//! BertForSequenceClassification: BertModel, dropout on the pooled output, a linear classifier.
use tch::nn::Path;
use tch::{Reduction, Tensor};

use super::bert::{any_padding, BertModel};
use super::config::BertConfig;
use super::layers::Linear;
use super::packing::Packing;
use super::varlen::AttentionCore;
use crate::data::labels::ProblemType;

#[derive(Debug)]
pub struct BertForSequenceClassification {
    bert: BertModel,
    classifier: Linear,
    dropout: f64,
}

impl BertForSequenceClassification {
    /// Builds the module tree under `p` with HF's names (`bert.*`, `classifier.*`); all weights start
    /// at their "empty" values and are filled by `weights::load_pretrained`.
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertForSequenceClassification {
            bert: BertModel::new(&p / "bert", cfg),
            classifier: Linear::new(&p / "classifier", cfg.hidden_size, cfg.num_labels()),
            dropout: cfg.classifier_dropout_prob(),
        }
    }

    /// Returns logits (B, num_labels).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let padded = any_padding(attention_mask);
        self.forward_with_padding_t(input_ids, attention_mask, token_type_ids, padded, train)
    }

    /// `forward_t` with "is any position padded?" answered by the caller (`BertModel::forward_with_padding_t`).
    pub fn forward_with_padding_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        padded: bool,
        train: bool,
    ) -> Tensor {
        let outputs =
            self.bert.forward_with_padding_t(input_ids, attention_mask, token_type_ids, padded, train);
        let pooled_output = outputs.pooler_output.dropout(self.dropout, train);
        self.classifier.forward(&pooled_output)
    }

    /// `forward_t` without computing padding: same arguments, same logits (B, num_labels) up to
    /// float rounding, same parameters. The real tokens are packed once per batch and every
    /// per-token layer runs on them only; the attention core is picked for the device.
    /// `attention_mask` may also be the host's copy of a GPU batch's mask: then the packing is
    /// worked out without waiting for the GPU ([`Packing::new`]).
    pub fn forward_unpadded_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let device = input_ids.device();
        let packing = Packing::new(attention_mask, device);
        let core = AttentionCore::for_device(device);
        self.forward_packed_t(input_ids, token_type_ids, &packing, core, train)
    }

    /// `forward_unpadded_t` with the packing and attention core given (to reuse a packing, or to
    /// compare cores).
    pub fn forward_packed_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        packing: &Packing,
        core: AttentionCore,
        train: bool,
    ) -> Tensor {
        let outputs = self.bert.forward_packed_t(input_ids, token_type_ids, packing, core, train);
        let pooled_output = outputs.pooler_output.dropout(self.dropout, train);
        self.classifier.forward(&pooled_output)
    }
}

/// HF's single-label loss: mean cross-entropy over the batch. logits (B, C), labels (B,) int64.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)
}

/// The loss BertForSequenceClassification computes for its `problem_type`, as a batch mean or
/// (`Reduction::Sum`) a batch sum: cross-entropy (with HF's label smoothing, which equals
/// PyTorch's `CrossEntropyLoss(label_smoothing)`), binary cross-entropy with logits over (B, C)
/// multi-hot labels, or mean squared error of the single output against (B,) values.
pub fn loss(
    logits: &Tensor,
    labels: &Tensor,
    problem: ProblemType,
    label_smoothing: f64,
    reduction: Reduction,
) -> Tensor {
    match problem {
        ProblemType::SingleLabelClassification => {
            logits.cross_entropy_loss::<Tensor>(labels, None, reduction, -100, label_smoothing)
        }
        ProblemType::MultiLabelClassification => {
            logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, reduction)
        }
        // HF: MSELoss()(logits.squeeze(), labels.squeeze()) with num_labels == 1.
        ProblemType::Regression => logits.squeeze_dim(-1).mse_loss(labels, reduction),
    }
}
