//! DebertaV2Embeddings (modeling_deberta_v2.py): word embeddings at `embedding_size`, plus the
//! absolute position table only when `position_biased_input` (DeBERTa-v3: none) and the token
//! types only when `type_vocab_size` > 0 (v3: none); `embed_proj` (no bias) to `hidden_size` when
//! the widths differ; LayerNorm; the padded positions zeroed by the attention mask; dropout.
use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::DebertaSettings;
use crate::model::config::BertConfig;
use crate::model::layers::{Embedding, LayerNorm};
use crate::model::layout::Layout;

#[derive(Debug)]
pub struct DebertaV2Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Option<Embedding>,
    token_type_embeddings: Option<Embedding>,
    /// nn.Linear(embedding_size, hidden_size, bias=False): the weight only.
    embed_proj: Option<Tensor>,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl DebertaV2Embeddings {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        let (e, h) = (cfg.embedding_size(), cfg.hidden_size);
        DebertaV2Embeddings {
            word_embeddings: Embedding::vocabulary(
                &p / "word_embeddings",
                cfg.vocab_size,
                e,
                Some(cfg.pad_token_id),
            ),
            position_embeddings: s
                .position_biased_input
                .then(|| Embedding::new(&p / "position_embeddings", cfg.max_position_embeddings, e, None)),
            token_type_embeddings: (cfg.type_vocab_size > 0)
                .then(|| Embedding::new(&p / "token_type_embeddings", cfg.type_vocab_size, e, None)),
            embed_proj: (e != h).then(|| (&p / "embed_proj").zeros("weight", &[h, e])),
            layer_norm: LayerNorm::new(&p / "LayerNorm", h, cfg.layer_norm_eps),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// input_ids, token_type_ids: (B, T) int64 -> (B, T, H), or packed (N, H).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let mut embeddings = self.word_embeddings.forward(&layout.tokens(input_ids));
        if let Some(position_embeddings) = &self.position_embeddings {
            embeddings = &embeddings + position_embeddings.forward(&layout.position_ids(input_ids));
        }
        if let Some(token_type_embeddings) = &self.token_type_embeddings {
            embeddings = &embeddings + token_type_embeddings.forward(&layout.tokens(token_type_ids));
        }
        if let Some(weight) = &self.embed_proj {
            embeddings = embeddings.linear::<Tensor>(weight, None);
        }
        let mut embeddings = self.layer_norm.forward(&embeddings);
        if let Some(mask) = token_mask(layout) {
            let mask = mask.unsqueeze(-1).to_kind(embeddings.kind());
            embeddings = &embeddings * mask;
        }
        layout.dropout(&embeddings, self.dropout, train)
    }
}

/// The attention mask of each token the layout keeps, (B, T) or (N,) bool, or `None` when every
/// kept token is real (multiplying by ones changes nothing, so it is skipped). The packed layout
/// keeps a masked position 0 (left padding), which HF zeroes like any padded position.
fn token_mask(layout: &Layout) -> Option<Tensor> {
    match layout {
        // (B, 1, T, T), the key mask repeated over the queries: its first query row.
        Layout::Padded { attention_mask } => attention_mask.as_ref().map(|m| m.select(1, 0).select(1, 0)),
        Layout::Packed { packing, .. } => packing.key_mask.as_ref().map(|m| {
            let size = m.size();
            packing.pack(&m.view([size[0], size[3]]).to_kind(Kind::Bool))
        }),
    }
}
