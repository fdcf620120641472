//! DeBERTa-v2 and DeBERTa-v3 for sequence classification (`model_type` "deberta-v2",
//! modeling_deberta_v2.py): embeddings without absolute positions (v3), disentangled attention
//! with relative position buckets, and a ContextPooler + linear classifier on the first token.
//! One file per part: `config` (DebertaV2Config's own keys), `relative` (the position buckets),
//! `embeddings`, `attention`, `encoder`, and the head here.
pub mod attention;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod relative;

use tch::nn::Path;
use tch::Tensor;

use self::config::DebertaSettings;
use self::embeddings::DebertaV2Embeddings;
use self::encoder::DebertaV2Encoder;
use super::config::BertConfig;
use super::layers::{activation, Linear};
use super::layout::Layout;
use super::names::{HfInit, Names};

/// DebertaV2Model (z_steps 0, as HF builds it).
#[derive(Debug)]
pub struct DebertaV2Model {
    embeddings: DebertaV2Embeddings,
    encoder: DebertaV2Encoder,
}

impl DebertaV2Model {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        DebertaV2Model {
            embeddings: DebertaV2Embeddings::new(&p / "embeddings", cfg, s),
            encoder: DebertaV2Encoder::new(&p / "encoder", cfg, s),
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

/// ContextPooler: the first token, dropout (`pooler_dropout`) before the dense, then
/// `pooler_hidden_act`.
#[derive(Debug)]
pub struct ContextPooler {
    dense: Linear,
    dropout: f64,
    activation: String,
}

impl ContextPooler {
    pub fn new(p: Path, cfg: &BertConfig, s: &DebertaSettings) -> Self {
        ContextPooler {
            dense: Linear::new(&p / "dense", cfg.hidden_size, cfg.hidden_size),
            dropout: s.pooler_dropout,
            activation: s.pooler_hidden_act.clone(),
        }
    }

    /// hidden_states on `layout` -> (B, H).
    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let context_token = layout.dropout(&layout.first_tokens(hidden_states), self.dropout, train);
        let pooled_output = self.dense.forward(&context_token);
        match self.activation.as_str() {
            // ACT2FN["tanh"], which DeBERTa checkpoints' pooler may name (BERT's FFN never does).
            "tanh" => pooled_output.tanh(),
            name => activation(name, &pooled_output),
        }
    }
}

/// DebertaV2ForSequenceClassification: `deberta`, `pooler`, dropout (`cls_dropout`, else
/// `hidden_dropout_prob`), `classifier`.
#[derive(Debug)]
pub struct DebertaV2ForSequenceClassification {
    deberta: DebertaV2Model,
    pooler: ContextPooler,
    classifier: Linear,
    dropout: f64,
}

impl DebertaV2ForSequenceClassification {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        // The config was validated when it was read (BertConfig::validate): settings() cannot fail.
        let s = settings(cfg);
        DebertaV2ForSequenceClassification {
            deberta: DebertaV2Model::new(&p / "deberta", cfg, &s),
            pooler: ContextPooler::new(&p / "pooler", cfg, &s),
            classifier: Linear::new(&p / "classifier", cfg.hidden_size, cfg.num_labels()),
            dropout: s.cls_dropout,
        }
    }

    /// -> logits (B, num_labels). A packed layout of a batch that is not right-padded runs on the
    /// padded layout instead ([`padded_instead`]).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> Tensor {
        if let Some(padded) = padded_instead(layout, input_ids) {
            return self.forward_t(input_ids, token_type_ids, &padded, train);
        }
        let encoder_layer = self.deberta.forward_t(input_ids, token_type_ids, layout, train);
        let pooled_output = self.pooler.forward_t(&encoder_layer, layout, train);
        let pooled_output = layout.dropout(&pooled_output, self.dropout, train);
        self.classifier.forward(&pooled_output)
    }
}

/// The padded layout of a packed batch that is not right-padded (left padding, holes), whose
/// rows may start with a masked token: HF masks the query rows of padded positions too
/// (`get_attention_mask`), so such a token attends evenly to every position of its padded row,
/// padding included, and the packing has dropped the padding's values. The pooler reads that
/// token, so only the padded layout gives HF's logits (tests/family_deberta.rs, left-padded rows).
/// Right-padded rows (what bertfit's tokenizers make) start with a real token and stay packed.
fn padded_instead(layout: &Layout, input_ids: &Tensor) -> Option<Layout> {
    let Layout::Packed { packing, .. } = layout else { return None };
    if packing.lengths.is_some() {
        return None;
    }
    let (b, t) = input_ids.size2().ok()?;
    // The (B, T) mask again: the packing's key mask up to its length, nothing real beyond.
    let mask = Tensor::zeros([b, t], (tch::Kind::Int64, input_ids.device()));
    if let Some(key_mask) = &packing.key_mask {
        let mut kept = mask.narrow(1, 0, packing.seq_len);
        kept.copy_(&key_mask.view([b, packing.seq_len]));
    }
    Some(Layout::padded(&mask, input_ids.device()))
}

/// The settings of a config already validated (HF's defaults for a config that was not read
/// through `BertConfig::from_json`, where the keys are absent).
pub fn settings(cfg: &BertConfig) -> DebertaSettings {
    DebertaSettings::of(cfg).unwrap_or_else(|e| panic!("DeBERTa config not validated: {e}"))
}

/// The state dict's names in module order.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let s = settings(cfg);
    let mut n = Names::default();
    let e = "deberta.embeddings";
    n.embedding(&format!("{e}.word_embeddings"), true);
    if s.position_biased_input {
        n.embedding(&format!("{e}.position_embeddings"), false);
    }
    if cfg.type_vocab_size > 0 {
        n.embedding(&format!("{e}.token_type_embeddings"), false);
    }
    if cfg.embedding_size() != cfg.hidden_size {
        n.push(format!("{e}.embed_proj.weight"), HfInit::Normal);
    }
    n.layer_norm(&format!("{e}.LayerNorm"));
    for i in 0..cfg.num_hidden_layers {
        let l = format!("deberta.encoder.layer.{i}");
        for m in ["query_proj", "key_proj", "value_proj"] {
            n.linear(&format!("{l}.attention.self.{m}"));
        }
        if s.relative_attention && !s.share_att_key {
            if s.c2p {
                n.linear(&format!("{l}.attention.self.pos_key_proj"));
            }
            if s.p2c {
                n.linear(&format!("{l}.attention.self.pos_query_proj"));
            }
        }
        n.linear(&format!("{l}.attention.output.dense"));
        n.layer_norm(&format!("{l}.attention.output.LayerNorm"));
        n.linear(&format!("{l}.intermediate.dense"));
        n.linear(&format!("{l}.output.dense"));
        n.layer_norm(&format!("{l}.output.LayerNorm"));
    }
    if s.relative_attention {
        n.embedding("deberta.encoder.rel_embeddings", false);
    }
    if s.norm_rel_ebd {
        n.layer_norm("deberta.encoder.LayerNorm");
    }
    n.linear("pooler.dense");
    n.linear("classifier");
    n.0
}
