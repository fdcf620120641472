//! RoBERTa and XLM-RoBERTa for sequence classification (modeling_roberta.py; modeling_xlm_roberta.py
//! is the same code under `XLMRoberta*` names, also at `roberta.*`). BERT's encoder; embeddings
//! whose position ids count from `padding_idx + 1`; no pooler; a dense + tanh head on `<s>`.
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::encoder::BertEncoder;
use super::layers::Linear;
use super::layout::Layout;
use super::names::{HfInit, Names};

/// RobertaModel with `add_pooling_layer=False`, as the classifier builds it.
#[derive(Debug)]
pub struct RobertaModel {
    /// RobertaEmbeddings: BertEmbeddings with fairseq's position ids.
    embeddings: BertEmbeddings,
    encoder: BertEncoder,
}

impl RobertaModel {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        RobertaModel {
            embeddings: BertEmbeddings::roberta(&p / "embeddings", cfg),
            encoder: BertEncoder::new(&p / "encoder", cfg),
        }
    }

    /// -> last_hidden_state, (B, T, H) or packed (N, H) as `layout` says.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let embedding_output = self.embeddings.forward_t(input_ids, Some(token_type_ids), layout, train);
        self.encoder.forward_t(&embedding_output, layout, train)
    }
}

/// RobertaClassificationHead: dropout, dense, tanh, dropout, out_proj over the `<s>` token.
/// ELECTRA's `ElectraClassificationHead` is the same modules with GELU for tanh, so it is this
/// struct with [`HeadActivation::Gelu`].
#[derive(Debug)]
pub struct RobertaClassificationHead {
    dense: Linear,
    out_proj: Linear,
    dropout: f64,
    activation: HeadActivation,
}

/// The activation between the head's dense and out_proj.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadActivation {
    /// RoBERTa's (and XLM-R's) `torch.tanh`.
    Tanh,
    /// ELECTRA's `get_activation("gelu")` (erf).
    Gelu,
}

impl RobertaClassificationHead {
    pub fn new(p: Path, cfg: &BertConfig, activation: HeadActivation) -> Self {
        RobertaClassificationHead {
            dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.hidden_size),
            out_proj: Linear::new(&p / "out_proj", cfg.hidden_size, cfg.num_labels()),
            dropout: cfg.classifier_dropout_prob(),
            activation,
        }
    }

    /// features: the encoder's output on `layout` -> logits (B, num_labels).
    pub fn forward_t(&self, features: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let x = layout.first_tokens(features); // take <s> token (equiv. to [CLS])
        let x = layout.dropout(&x, self.dropout, train);
        let x = self.dense.forward(&x);
        let x = match self.activation {
            HeadActivation::Tanh => x.tanh(),
            HeadActivation::Gelu => x.gelu("none"),
        };
        let x = layout.dropout(&x, self.dropout, train);
        self.out_proj.forward(&x)
    }
}

/// RobertaForSequenceClassification (and XLMRobertaForSequenceClassification).
#[derive(Debug)]
pub struct RobertaForSequenceClassification {
    roberta: RobertaModel,
    classifier: RobertaClassificationHead,
}

impl RobertaForSequenceClassification {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        RobertaForSequenceClassification {
            roberta: RobertaModel::new(&p / "roberta", cfg),
            classifier: RobertaClassificationHead::new(&p / "classifier", cfg, HeadActivation::Tanh),
        }
    }

    /// -> logits (B, num_labels).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let sequence_output = self.roberta.forward_t(input_ids, token_type_ids, layout, train);
        self.classifier.forward_t(&sequence_output, layout, train)
    }
}

/// The state dict's names in module order (RobertaEmbeddings declares `position_embeddings` last).
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let mut n = Names::default();
    n.embedding("roberta.embeddings.word_embeddings", true);
    n.embedding("roberta.embeddings.token_type_embeddings", false);
    n.layer_norm("roberta.embeddings.LayerNorm");
    n.embedding("roberta.embeddings.position_embeddings", true);
    n.bert_encoder("roberta.encoder", cfg);
    n.linear("classifier.dense");
    n.linear("classifier.out_proj");
    n.0
}
