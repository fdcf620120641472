//! ModernBertEmbeddings: token embeddings, LayerNorm, dropout. No position table (positions are
//! rotary, in each attention layer) and no token types.
use tch::nn::Path;
use tch::Tensor;

use super::layers::LayerNorm;
use super::settings::ModernBertSettings;
use crate::model::config::BertConfig;
use crate::model::layers::Embedding;
use crate::model::layout::Layout;

#[derive(Debug)]
pub struct ModernBertEmbeddings {
    tok_embeddings: Embedding,
    norm: LayerNorm,
    drop: f64,
}

impl ModernBertEmbeddings {
    pub fn new(p: Path, cfg: &BertConfig, s: &ModernBertSettings) -> Self {
        ModernBertEmbeddings {
            tok_embeddings: Embedding::vocabulary(
                &p / "tok_embeddings",
                cfg.vocab_size,
                cfg.hidden_size,
                Some(cfg.pad_token_id),
            ),
            norm: LayerNorm::new(&p / "norm", cfg.hidden_size, s.norm_eps, s.norm_bias),
            drop: s.embedding_dropout,
        }
    }

    /// input_ids (B, T) -> (B, T, H), or packed (N, H) as `layout` says.
    pub fn forward_t(&self, input_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let hidden_states = self.tok_embeddings.forward(&layout.tokens(input_ids));
        self.norm.forward(&hidden_states).dropout(self.drop, train)
    }
}
