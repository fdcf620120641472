//! RoBERTa and XLM-RoBERTa for sequence classification (modeling_roberta.py; modeling_xlm_roberta.py
//! is the same code under `XLMRoberta*` names, also at `roberta.*`). BERT's encoder; embeddings
//! whose position ids count from `padding_idx + 1`; no pooler; a dense + tanh head on `<s>`.
use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::BertConfig;
use super::encoder::BertEncoder;
use super::layers::{Embedding, LayerNorm, Linear};
use super::layout::Layout;
use super::names::{HfInit, Names};

/// RobertaEmbeddings: BertEmbeddings with fairseq's position ids, and `padding_idx` on the position
/// table too.
#[derive(Debug)]
pub struct RobertaEmbeddings {
    word_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    position_embeddings: Embedding,
    padding_idx: i64,
    dropout: f64,
}

impl RobertaEmbeddings {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let (h, pad) = (cfg.hidden_size, cfg.pad_token_id);
        RobertaEmbeddings {
            word_embeddings: Embedding::new(&p / "word_embeddings", cfg.vocab_size, h, Some(pad)),
            token_type_embeddings: Embedding::new(&p / "token_type_embeddings", cfg.type_vocab_size, h, None),
            layer_norm: LayerNorm::new(&p / "LayerNorm", h, cfg.layer_norm_eps),
            position_embeddings: Embedding::new(
                &p / "position_embeddings",
                cfg.max_position_embeddings,
                h,
                Some(pad),
            ),
            padding_idx: pad,
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// input_ids, token_type_ids: (B, T) int64 -> (B, T, H), or packed (N, H). Positions come from
    /// the ids, not the attention mask, as in HF: a pad token keeps position `padding_idx`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx);
        let inputs_embeds = self.word_embeddings.forward(&layout.tokens(input_ids));
        let token_type_embeddings = self.token_type_embeddings.forward(&layout.tokens(token_type_ids));
        let embeddings = inputs_embeds + token_type_embeddings;
        let position_embeddings = self.position_embeddings.forward(&layout.tokens(&position_ids));
        let embeddings = embeddings + position_embeddings;
        let embeddings = self.layer_norm.forward(&embeddings);
        embeddings.dropout(self.dropout, train)
    }
}

/// fairseq's `make_positions`: non-pad tokens numbered from `padding_idx + 1`, pad tokens
/// `padding_idx`. (B, T) -> (B, T).
pub fn create_position_ids_from_input_ids(input_ids: &Tensor, padding_idx: i64) -> Tensor {
    let mask = input_ids.ne(padding_idx).to_kind(Kind::Int);
    let incremental_indices = mask.cumsum(1, Kind::Int) * &mask;
    incremental_indices.to_kind(Kind::Int64) + padding_idx
}

/// RobertaModel with `add_pooling_layer=False`, as the classifier builds it.
#[derive(Debug)]
pub struct RobertaModel {
    embeddings: RobertaEmbeddings,
    encoder: BertEncoder,
}

impl RobertaModel {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        RobertaModel {
            embeddings: RobertaEmbeddings::new(&p / "embeddings", cfg),
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
        let embedding_output = self.embeddings.forward_t(input_ids, token_type_ids, layout, train);
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
        let x = x.dropout(self.dropout, train);
        let x = self.dense.forward(&x);
        let x = match self.activation {
            HeadActivation::Tanh => x.tanh(),
            HeadActivation::Gelu => x.gelu("none"),
        };
        let x = x.dropout(self.dropout, train);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_after_the_pad_id() {
        let ids = Tensor::from_slice2(&[[0i64, 5, 6, 2], [0, 7, 1, 1]]);
        let pos = create_position_ids_from_input_ids(&ids, 1);
        assert_eq!(Vec::<i64>::try_from(pos.view(-1)).unwrap(), vec![2, 3, 4, 5, 2, 3, 1, 1]);
    }
}
