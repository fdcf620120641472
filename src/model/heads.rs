//! BertForSequenceClassification: BertModel, dropout on the pooled output, a linear classifier.
use tch::nn::Path;
use tch::{Reduction, Tensor};

use super::bert::BertModel;
use super::config::{BertConfig, ProblemType};
use super::layers::Linear;
use super::layout::Layout;

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

    /// Returns logits (B, num_labels). input_ids, token_type_ids: (B, T) int64; `layout`: the
    /// batch's ([`super::LayoutPolicy::for_batch`]). The padded and the packed layouts compute the
    /// same logits up to float rounding, from the same parameters.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let outputs = self.bert.forward_t(input_ids, token_type_ids, layout, train);
        let pooled_output = layout.dropout(&outputs.pooler_output, self.dropout, train);
        self.classifier.forward(&pooled_output)
    }
}

/// HF's single-label loss: mean cross-entropy over the batch. logits (B, C), labels (B,) int64.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    loss(logits, labels, ProblemType::SingleLabelClassification, 0.0, Reduction::Mean)
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
