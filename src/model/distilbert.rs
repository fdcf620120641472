//! DistilBERT for sequence classification (modeling_distilbert.py): word + position embeddings (no
//! token types), `TransformerBlock`s whose attention has no output dropout, and a
//! pre_classifier + ReLU head on the first token.
use serde_json::{Map, Value};
use tch::nn::Path;
use tch::Tensor;

use super::attention::{attention_core, Heads};
use super::config::BertConfig;
use super::dropout::Draws;
use super::embeddings::BertEmbeddings;
use super::layers::{activation, LayerNorm, Linear};
use super::layout::Layout;
use super::names::{HfInit, Names};

/// DistilBertConfig's key names and the BertConfig fields that hold them.
pub const HF_KEYS: &[(&str, &str)] = &[
    ("dim", "hidden_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("hidden_dim", "intermediate_size"),
    ("activation", "hidden_act"),
    ("dropout", "hidden_dropout_prob"),
    ("attention_dropout", "attention_probs_dropout_prob"),
];

/// BertConfig fields DistilBertConfig does not have (written out of its config.json).
const NOT_IN_DISTILBERT: &[&str] = &["type_vocab_size", "position_embedding_type", "layer_norm_eps"];

/// DistilBERT's LayerNorms are built with a fixed eps (`nn.LayerNorm(config.dim, eps=1e-12)`).
const LAYER_NORM_EPS: f64 = 1e-12;

/// DistilBertConfig's integer keys that size tensors (checked as integers before reading).
pub const SIZE_KEYS: &[&str] = &["dim", "n_layers", "n_heads", "hidden_dim"];

/// config.json's DistilBertConfig keys renamed to BertConfig's, before it is read.
pub fn config_from_hf(map: &mut Map<String, Value>) {
    for (ours, bert) in HF_KEYS {
        if let Some(v) = map.remove(*ours) {
            map.insert((*bert).into(), v);
        }
    }
    map.insert("layer_norm_eps".into(), LAYER_NORM_EPS.into());
}

/// The reverse, for writing config.json as DistilBertConfig does.
pub fn config_to_hf(map: &mut Map<String, Value>) {
    for key in NOT_IN_DISTILBERT {
        map.remove(*key);
    }
    if map.get("classifier_dropout") == Some(&Value::Null) {
        map.remove("classifier_dropout");
    }
    for (ours, bert) in HF_KEYS {
        if let Some(v) = map.remove(*bert) {
            map.insert((*ours).into(), v);
        }
    }
}

/// DistilBertSelfAttention: q_lin, k_lin, v_lin, the attention core, out_lin (no dropout after).
#[derive(Debug)]
pub struct DistilBertSelfAttention {
    q_lin: Linear,
    k_lin: Linear,
    v_lin: Linear,
    out_lin: Linear,
    heads: Heads,
    dropout: f64,
}

impl DistilBertSelfAttention {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let dim = cfg.hidden_size;
        DistilBertSelfAttention {
            q_lin: Linear::new(&p / "q_lin", dim, dim),
            k_lin: Linear::new(&p / "k_lin", dim, dim),
            v_lin: Linear::new(&p / "v_lin", dim, dim),
            out_lin: Linear::new(&p / "out_lin", dim, dim),
            heads: Heads {
                num_attention_heads: cfg.num_attention_heads,
                attention_head_size: cfg.head_dim(),
            },
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let query_layer = self.q_lin.forward(hidden_states);
        let key_layer = self.k_lin.forward(hidden_states);
        let value_layer = self.v_lin.forward(hidden_states);
        let dropout = if train { self.dropout } else { 0.0 };
        let attn_output = attention_core(&query_layer, &key_layer, &value_layer, self.heads, layout, dropout);
        self.out_lin.forward(&attn_output)
    }
}

/// FFN: lin1, activation, lin2, dropout.
#[derive(Debug)]
pub struct Ffn {
    lin1: Linear,
    lin2: Linear,
    activation: String,
    dropout: f64,
}

impl Ffn {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        Ffn {
            lin1: Linear::new(&p / "lin1", cfg.hidden_size, cfg.intermediate_size),
            lin2: Linear::new(&p / "lin2", cfg.intermediate_size, cfg.hidden_size),
            activation: cfg.hidden_act.clone(),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// `draws`: the layout's ([`Layout::draws`]).
    pub fn forward_t(&self, input: &Tensor, draws: Draws, train: bool) -> Tensor {
        let x = activation(&self.activation, &self.lin1.forward(input));
        draws.dropout(&self.lin2.forward(&x), self.dropout, train)
    }
}

/// TransformerBlock: attention, sa_layer_norm(+residual), ffn, output_layer_norm(+residual).
#[derive(Debug)]
pub struct TransformerBlock {
    attention: DistilBertSelfAttention,
    sa_layer_norm: LayerNorm,
    ffn: Ffn,
    output_layer_norm: LayerNorm,
}

impl TransformerBlock {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        TransformerBlock {
            attention: DistilBertSelfAttention::new(&p / "attention", cfg),
            sa_layer_norm: LayerNorm::new(&p / "sa_layer_norm", cfg.hidden_size, LAYER_NORM_EPS),
            ffn: Ffn::new(&p / "ffn", cfg),
            output_layer_norm: LayerNorm::new(&p / "output_layer_norm", cfg.hidden_size, LAYER_NORM_EPS),
        }
    }

    pub fn forward_t(&self, hidden_states: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let attention_output = self.attention.forward_t(hidden_states, layout, train);
        let attention_output = self.sa_layer_norm.forward(&(attention_output + hidden_states));
        let ffn_output = self.ffn.forward_t(&attention_output, layout.draws(), train);
        self.output_layer_norm.forward(&(ffn_output + attention_output))
    }
}

/// DistilBertModel: Embeddings and the `transformer.layer` stack.
#[derive(Debug)]
pub struct DistilBertModel {
    /// modeling_distilbert.py `Embeddings`: word + learned position embeddings, LayerNorm, dropout.
    embeddings: BertEmbeddings,
    layer: Vec<TransformerBlock>,
}

impl DistilBertModel {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        let layers = &p / "transformer" / "layer";
        DistilBertModel {
            embeddings: BertEmbeddings::distilbert(&p / "embeddings", cfg),
            layer: (0..cfg.num_hidden_layers).map(|i| TransformerBlock::new(&layers / i, cfg)).collect(),
        }
    }

    pub fn forward_t(&self, input_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let mut hidden_states = self.embeddings.forward_t(input_ids, None, layout, train);
        for layer_module in &self.layer {
            hidden_states = layer_module.forward_t(&hidden_states, layout, train);
        }
        hidden_states
    }
}

/// DistilBertForSequenceClassification: pre_classifier, ReLU, dropout (`seq_classif_dropout`),
/// classifier over the first token.
#[derive(Debug)]
pub struct DistilBertForSequenceClassification {
    distilbert: DistilBertModel,
    pre_classifier: Linear,
    classifier: Linear,
    dropout: f64,
}

impl DistilBertForSequenceClassification {
    pub fn new(p: Path, cfg: &BertConfig) -> Self {
        DistilBertForSequenceClassification {
            distilbert: DistilBertModel::new(&p / "distilbert", cfg),
            pre_classifier: Linear::new(&p / "pre_classifier", cfg.hidden_size, cfg.hidden_size),
            classifier: Linear::new(&p / "classifier", cfg.hidden_size, cfg.num_labels()),
            dropout: cfg.classifier_dropout_prob(),
        }
    }

    /// -> logits (B, num_labels). DistilBERT has no token types: there is no such input.
    pub fn forward_t(&self, input_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let hidden_state = self.distilbert.forward_t(input_ids, layout, train); // (bs, seq_len, dim)
        let pooled_output = layout.first_tokens(&hidden_state); // (bs, dim)
        let pooled_output = self.pre_classifier.forward(&pooled_output).relu(); // (bs, dim)
        let pooled_output = layout.dropout(&pooled_output, self.dropout, train); // (bs, dim)
        self.classifier.forward(&pooled_output) // (bs, num_labels)
    }
}

/// The state dict's names in module order.
pub fn parameters(cfg: &BertConfig) -> Vec<(String, HfInit)> {
    let mut n = Names::default();
    n.embedding("distilbert.embeddings.word_embeddings", true);
    n.embedding("distilbert.embeddings.position_embeddings", false);
    n.layer_norm("distilbert.embeddings.LayerNorm");
    for i in 0..cfg.num_hidden_layers {
        let l = format!("distilbert.transformer.layer.{i}");
        for m in ["q_lin", "k_lin", "v_lin", "out_lin"] {
            n.linear(&format!("{l}.attention.{m}"));
        }
        n.layer_norm(&format!("{l}.sa_layer_norm"));
        n.linear(&format!("{l}.ffn.lin1"));
        n.linear(&format!("{l}.ffn.lin2"));
        n.layer_norm(&format!("{l}.output_layer_norm"));
    }
    n.linear("pre_classifier");
    n.linear("classifier");
    n.0
}
