//! BertModel: embeddings, encoder, pooler (modeling_bert.py `BertModel`, `BertPooler`).
use tch::nn::Path;
use tch::{Kind, Tensor};

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::encoder::BertEncoder;
use super::layers::Linear;
use super::layout::Layout;
use super::packing::Packing;
use super::varlen::AttentionCore;

/// Dense + tanh over the first ([CLS]) token.
#[derive(Debug)]
pub struct BertPooler {
    dense: Linear,
}

impl BertPooler {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        BertPooler { dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.hidden_size) }
    }

    /// (B, T, H) -> (B, H)
    pub fn forward(&self, hidden_states: &Tensor) -> Tensor {
        let first_token_tensor = hidden_states.select(1, 0);
        self.dense.forward(&first_token_tensor).tanh()
    }

    /// Packed (N, H) -> (B, H): each sequence's position 0, which the packing always keeps.
    pub fn forward_packed(&self, hidden_states: &Tensor, packing: &Packing) -> Tensor {
        let first_token_tensor = hidden_states.index_select(0, &packing.first_tokens);
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
    /// (B, T, H)
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

    /// input_ids, attention_mask, token_type_ids: (B, T) int64.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> BertModelOutput {
        let padded = any_padding(attention_mask);
        self.forward_with_padding_t(input_ids, attention_mask, token_type_ids, padded, train)
    }

    /// `forward_t` with its one decision that reads the mask's values (is any position padded?)
    /// made by the caller, e.g. from the loader's host copy of a mask on a GPU ([`any_padding`]),
    /// so that the host need not wait for the GPU to read it back.
    pub fn forward_with_padding_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        padded: bool,
        train: bool,
    ) -> BertModelOutput {
        let embedding_output = self.embeddings.forward_t(input_ids, token_type_ids, train);
        let mask = bidirectional_mask(attention_mask, padded);
        let layout = Layout::Padded { attention_mask: mask.as_ref() };
        let last_hidden_state = self.encoder.forward_t(&embedding_output, layout, train);
        let pooler_output = self.pooler.forward(&last_hidden_state);
        BertModelOutput { last_hidden_state, pooler_output }
    }

    /// `forward_t` on the tokens `packing` keeps: last_hidden_state is packed (N, H) (put it back
    /// in (B, T, H) with `packing.unpack`), pooler_output is (B, H) as in `forward_t`.
    pub fn forward_packed_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        packing: &Packing,
        core: AttentionCore,
        train: bool,
    ) -> BertModelOutput {
        let embedding_output = self.embeddings.forward_packed_t(input_ids, token_type_ids, packing, train);
        let layout = Layout::Packed { packing, core };
        let last_hidden_state = self.encoder.forward_t(&embedding_output, layout, train);
        let pooler_output = self.pooler.forward_packed(&last_hidden_state, packing);
        BertModelOutput { last_hidden_state, pooler_output }
    }
}

/// Whether any position of a (B, T) attention mask is 0 (reads it: on a GPU, waits for it).
pub fn any_padding(attention_mask: &Tensor) -> bool {
    attention_mask.numel() > 0 && attention_mask.min().int64_value(&[]) == 0
}

/// HF's `create_bidirectional_mask` for SDPA: `None` when no position is padded (`padded` false,
/// [`any_padding`]), else a boolean (B, 1, T, T) mask, true where a query may attend to a key. SDPA
/// turns false into -inf, the exact form of HF's "dtype minimum" additive mask.
pub fn bidirectional_mask(attention_mask: &Tensor, padded: bool) -> Option<Tensor> {
    if !padded {
        return None;
    }
    let (b, t) = attention_mask.size2().unwrap_or((0, 0));
    Some(attention_mask.to_kind(Kind::Bool).view([b, 1, 1, t]).expand([b, 1, t, t], false))
}
