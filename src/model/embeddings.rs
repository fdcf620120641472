//! BertEmbeddings (modeling_bert.py `BertEmbeddings`): word + token type + absolute position,
//! then LayerNorm and dropout. ELECTRA's `ElectraEmbeddings` is the same module at its
//! `embedding_size` width ([`BertConfig::embedding_size`]).
use tch::nn::Path;
use tch::Tensor;

use super::config::BertConfig;
use super::layers::{Embedding, LayerNorm};
use super::layout::Layout;

#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl BertEmbeddings {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let dim = cfg.embedding_size();
        BertEmbeddings {
            word_embeddings: Embedding::new(
                &p / "word_embeddings",
                cfg.vocab_size,
                dim,
                Some(cfg.pad_token_id),
            ),
            position_embeddings: Embedding::new(
                &p / "position_embeddings",
                cfg.max_position_embeddings,
                dim,
                None,
            ),
            token_type_embeddings: Embedding::new(
                &p / "token_type_embeddings",
                cfg.type_vocab_size,
                dim,
                None,
            ),
            layer_norm: LayerNorm::new(&p / "LayerNorm", dim, cfg.layer_norm_eps),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// input_ids, token_type_ids: (B, T) int64 -> (B, T, H), or packed (N, H): the tokens
    /// `layout` keeps, each with its position id in its padded row.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let position_ids = layout.position_ids(input_ids); // (1, T) or (N,)
        let inputs_embeds = self.word_embeddings.forward(&layout.tokens(input_ids));
        let token_type_embeddings = self.token_type_embeddings.forward(&layout.tokens(token_type_ids));
        // Same summation order as HF, so results agree to the last bit where the kernels do.
        let embeddings = inputs_embeds + token_type_embeddings;
        let position_embeddings = self.position_embeddings.forward(&position_ids);
        let embeddings = embeddings + position_embeddings;
        let embeddings = self.layer_norm.forward(&embeddings);
        embeddings.dropout(self.dropout, train)
    }
}
