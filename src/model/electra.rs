//! ELECTRA for sequence classification (modeling_electra.py): BERT's embeddings at
//! `embedding_size`, projected to `hidden_size` when the two differ, BERT's encoder, no pooler, and
//! a dense + GELU head on the first token.
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::encoder::BertEncoder;
use super::layers::Linear;
use super::layout::Layout;
use super::names::{HfInit, Names};
use super::roberta::{HeadActivation, RobertaClassificationHead};

/// ElectraModel: ElectraEmbeddings (= `BertEmbeddings` at `embedding_size`), the optional
/// `embeddings_project`, ElectraEncoder (= `BertEncoder`).
#[derive(Debug)]
pub struct ElectraModel {
    embeddings: BertEmbeddings,
    embeddings_project: Option<Linear>,
    encoder: BertEncoder,
}

impl ElectraModel {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let e = cfg.embedding_size();
        ElectraModel {
            embeddings: BertEmbeddings::new(&p / "embeddings", cfg),
            embeddings_project: (e != cfg.hidden_size)
                .then(|| Linear::new(&p / "embeddings_project", e, cfg.hidden_size)),
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
        let mut embedding_output = self.embeddings.forward_t(input_ids, Some(token_type_ids), layout, train);
        if let Some(embeddings_project) = &self.embeddings_project {
            embedding_output = embeddings_project.forward(&embedding_output);
        }
        self.encoder.forward_t(&embedding_output, layout, train)
    }
}

/// ElectraForSequenceClassification.
#[derive(Debug)]
pub struct ElectraForSequenceClassification {
    electra: ElectraModel,
    /// ElectraClassificationHead: RoBERTa's head with GELU.
    classifier: RobertaClassificationHead,
}

impl ElectraForSequenceClassification {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        ElectraForSequenceClassification {
            electra: ElectraModel::new(&p / "electra", cfg),
            classifier: RobertaClassificationHead::new(&p / "classifier", cfg, HeadActivation::Gelu),
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
        let sequence_output = self.electra.forward_t(input_ids, token_type_ids, layout, train);
        self.classifier.forward_t(&sequence_output, layout, train)
    }
}

/// The state dict's names in module order.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let mut n = Names::default();
    n.embedding("electra.embeddings.word_embeddings", true);
    n.embedding("electra.embeddings.position_embeddings", false);
    n.embedding("electra.embeddings.token_type_embeddings", false);
    n.layer_norm("electra.embeddings.LayerNorm");
    if cfg.embedding_size() != cfg.hidden_size {
        n.linear("electra.embeddings_project");
    }
    n.bert_encoder("electra.encoder", cfg);
    n.linear("classifier.dense");
    n.linear("classifier.out_proj");
    n.0
}
