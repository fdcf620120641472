//! BertEmbeddings (modeling_bert.py `BertEmbeddings`): word + token type + absolute position,
//! then LayerNorm and dropout. The BERT-like families use the same module and differ only in
//! where position ids come from and whether there are token types:
//! - ELECTRA's `ElectraEmbeddings` is BERT's at `embedding_size` ([`BertConfig::embedding_size`]);
//! - RoBERTa's (and XLM-R's) `RobertaEmbeddings` number positions from the ids, fairseq's way
//!   ([`PositionIds::FromInputIds`]), and their position table has a padding row;
//! - DistilBERT's `Embeddings` has no token-type table.
use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::BertConfig;
use super::layers::{Embedding, LayerNorm};
use super::layout::Layout;

/// Where a family's position ids come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionIds {
    /// The token's index in its padded row (BERT's `position_ids` buffer).
    Absolute,
    /// fairseq's `make_positions` from the ids ([`create_position_ids_from_input_ids`]): a pad
    /// token keeps `padding_idx`, which is also the position table's padding row.
    FromInputIds { padding_idx: i64 },
}

#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    /// None for DistilBERT, which has no token types.
    token_type_embeddings: Option<Embedding>,
    layer_norm: LayerNorm,
    positions: PositionIds,
    dropout: f64,
}

impl BertEmbeddings {
    /// BERT's and ELECTRA's embeddings.
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        Self::build(p, cfg, PositionIds::Absolute, true)
    }

    /// RobertaEmbeddings: positions from the ids, after the pad id.
    pub fn roberta(p: Path, cfg: &BertConfig) -> Self {
        Self::build(p, cfg, PositionIds::FromInputIds { padding_idx: cfg.pad_token_id }, true)
    }

    /// DistilBERT's `Embeddings`: word + position, no token types.
    pub fn distilbert(p: Path, cfg: &BertConfig) -> Self {
        Self::build(p, cfg, PositionIds::Absolute, false)
    }

    fn build(p: Path, cfg: &BertConfig, positions: PositionIds, token_types: bool) -> Self {
        let dim = cfg.embedding_size();
        let position_padding = match positions {
            PositionIds::Absolute => None,
            PositionIds::FromInputIds { padding_idx } => Some(padding_idx),
        };
        BertEmbeddings {
            word_embeddings: Embedding::vocabulary(
                &p / "word_embeddings",
                cfg.vocab_size,
                dim,
                Some(cfg.pad_token_id),
            ),
            position_embeddings: Embedding::new(
                &p / "position_embeddings",
                cfg.max_position_embeddings,
                dim,
                position_padding,
            ),
            token_type_embeddings: token_types
                .then(|| Embedding::new(&p / "token_type_embeddings", cfg.type_vocab_size, dim, None)),
            layer_norm: LayerNorm::new(&p / "LayerNorm", dim, cfg.layer_norm_eps),
            positions,
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// input_ids, token_type_ids: (B, T) int64 -> (B, T, H), or packed (N, H): the tokens
    /// `layout` keeps, each with its position id in its padded row. `token_type_ids` is None for
    /// DistilBERT (no table), Some for the others.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        let position_ids = match self.positions {
            PositionIds::Absolute => layout.position_ids(input_ids), // (1, T) or (N,)
            PositionIds::FromInputIds { padding_idx } => {
                layout.tokens(&create_position_ids_from_input_ids(input_ids, padding_idx))
            }
        };
        // Same summation order as HF, so results agree to the last bit where the kernels do.
        let words = self.word_embeddings.forward(&layout.tokens(input_ids));
        debug_assert_eq!(self.token_type_embeddings.is_some(), token_type_ids.is_some());
        let embeddings = match (&self.token_type_embeddings, token_type_ids) {
            (Some(table), Some(ids)) => words + table.forward(&layout.tokens(ids)),
            _ => words,
        };
        let embeddings = embeddings + self.position_embeddings.forward(&position_ids);
        layout.dropout(&self.layer_norm.forward(&embeddings), self.dropout, train)
    }
}

/// fairseq's `make_positions`: non-pad tokens numbered from `padding_idx + 1`, pad tokens
/// `padding_idx`. (B, T) -> (B, T).
pub fn create_position_ids_from_input_ids(input_ids: &Tensor, padding_idx: i64) -> Tensor {
    let mask = input_ids.ne(padding_idx).to_kind(Kind::Int);
    let incremental_indices = mask.cumsum(1, Kind::Int) * &mask;
    incremental_indices.to_kind(Kind::Int64) + padding_idx
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
