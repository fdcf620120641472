//! The sequence classifier of whichever family config.json names: what the trainer, evaluation,
//! prediction and checkpoints hold, one forward over the batch's `Layout` for all of them.
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::deberta::DebertaV2ForSequenceClassification;
use super::distilbert::DistilBertForSequenceClassification;
use super::electra::ElectraForSequenceClassification;
use super::family::Family;
use super::heads::BertForSequenceClassification;
use super::layout::Layout;
use super::modernbert::ModernBertForSequenceClassification;
use super::roberta::RobertaForSequenceClassification;

/// transformers' `AutoModelForSequenceClassification`: the family's `*ForSequenceClassification`.
#[derive(Debug)]
pub enum SequenceClassifier {
    Bert(BertForSequenceClassification),
    /// RoBERTa and XLM-RoBERTa (one module, two class names).
    Roberta(RobertaForSequenceClassification),
    Electra(ElectraForSequenceClassification),
    DistilBert(DistilBertForSequenceClassification),
    ModernBert(ModernBertForSequenceClassification),
    DebertaV2(DebertaV2ForSequenceClassification),
}

impl SequenceClassifier {
    /// Builds `cfg.family()`'s module tree under `p` with HF's names; all weights start at their
    /// "empty" values and are filled by `weights::load_pretrained`.
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        match cfg.family() {
            Family::Bert => SequenceClassifier::Bert(BertForSequenceClassification::new(p, cfg)),
            Family::Roberta | Family::XlmRoberta => {
                SequenceClassifier::Roberta(RobertaForSequenceClassification::new(p, cfg))
            }
            Family::Electra => SequenceClassifier::Electra(ElectraForSequenceClassification::new(p, cfg)),
            Family::DistilBert => {
                SequenceClassifier::DistilBert(DistilBertForSequenceClassification::new(p, cfg))
            }
            Family::ModernBert => {
                SequenceClassifier::ModernBert(ModernBertForSequenceClassification::new(p, cfg))
            }
            Family::DebertaV2 => {
                SequenceClassifier::DebertaV2(DebertaV2ForSequenceClassification::new(p, cfg))
            }
        }
    }

    /// Returns logits (B, num_labels). input_ids, token_type_ids: (B, T) int64 (DistilBERT and ModernBERT have no
    /// token types and ignore them); `layout`: the batch's ([`super::LayoutPolicy::for_batch`]).
    /// The padded and the packed layouts compute the same logits up to float rounding.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        match self {
            SequenceClassifier::Bert(m) => m.forward_t(input_ids, token_type_ids, layout, train),
            SequenceClassifier::Roberta(m) => m.forward_t(input_ids, token_type_ids, layout, train),
            SequenceClassifier::Electra(m) => m.forward_t(input_ids, token_type_ids, layout, train),
            SequenceClassifier::DistilBert(m) => m.forward_t(input_ids, layout, train),
            SequenceClassifier::ModernBert(m) => m.forward_t(input_ids, layout, train),
            SequenceClassifier::DebertaV2(m) => m.forward_t(input_ids, token_type_ids, layout, train),
        }
    }
}
