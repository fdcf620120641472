//! BertModel: embeddings, encoder, pooler (modeling_bert.py `BertModel`, `BertPooler`).
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::encoder::BertEncoder;
use super::layers::Linear;
use super::layout::Layout;

/// Dense + tanh over the first ([CLS]) token.
#[derive(Debug)]
pub struct BertPooler {
    dense: Linear,
}

impl BertPooler {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertPooler { dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.hidden_size) }
    }

    /// (B, T, H) or packed (N, H), as `layout` says -> (B, H)
    pub fn forward(&self, hidden_states: &Tensor, layout: &Layout) -> Tensor {
        let first_token_tensor = layout.first_tokens(hidden_states);
        self.dense.forward(&first_token_tensor).tanh()
    }
}

#[derive(Debug)]
pub struct BertModel {
    embeddings: BertEmbeddings,
    encoder: BertEncoder,
    pooler: BertPooler,
}

/// What BertModel returns (HF `BaseModelOutputWithPooling`).
#[derive(Debug)]
pub struct BertModelOutput {
    /// (B, T, H), or packed (N, H) on the packed layout (back to (B, T, H) with `Packing::unpack`).
    pub last_hidden_state: Tensor,
    /// (B, H)
    pub pooler_output: Tensor,
}

impl BertModel {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertModel {
            embeddings: BertEmbeddings::new(&p / "embeddings", cfg),
            encoder: BertEncoder::new(&p / "encoder", cfg),
            pooler: BertPooler::new(&p / "pooler", cfg),
        }
    }

    /// input_ids, token_type_ids: (B, T) int64 on the model's device; `layout` is the batch's,
    /// made from its attention mask (`LayoutPolicy::for_batch`), and stands for HF's
    /// `attention_mask` argument.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> BertModelOutput {
        let embedding_output = self.embeddings.forward_t(input_ids, Some(token_type_ids), layout, train);
        let last_hidden_state = self.encoder.forward_t(&embedding_output, layout, train);
        let pooler_output = self.pooler.forward(&last_hidden_state, layout);
        BertModelOutput { last_hidden_state, pooler_output }
    }
}
