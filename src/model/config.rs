//! `BertConfig`, read from an HF `config.json` with HF's field names and defaults
//! (transformers/models/bert/configuration_bert.py). It also holds the configs of the BERT-like
//! families (`model_type` roberta, xlm-roberta, electra, distilbert: see [`Family`]), whose config
//! classes are BertConfig's fields plus a few: each family's defaults fill the keys its config.json
//! leaves out, and DistilBertConfig's own key names are read and written as DistilBERT spells them.
//!
//! Fields bertfit does not use are kept in `extra` and written back unchanged, so a saved model's
//! config.json still says everything the original said.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::distilbert;
use super::family::{config_defaults, Family};
use super::modernbert::{self, ModernBertSettings};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    /// "gelu" is the exact erf form, as HF's ACT2FN maps it.
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    /// std of the normal init of new weights (the classifier).
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: i64,
    pub position_embedding_type: String,
    /// Dropout before the classifier; `None` means `hidden_dropout_prob`, as in HF.
    pub classifier_dropout: Option<f64>,
    /// HF writes the keys as strings: {"0": "negative", "1": "positive"}.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    pub model_type: String,
    /// ElectraConfig's `embedding_size`: the embeddings' width, projected to `hidden_size` by
    /// `electra.embeddings_project` when they differ. `None` for the other families.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<i64>,
    /// DistilBertConfig's dropout before its classifier (HF default 0.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_classif_dropout: Option<f64>,
    /// DistilBertConfig's fixed sine/cosine position embeddings (only `false` is supported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sinusoidal_pos_embds: Option<bool>,
    /// Everything else in config.json, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// HF's `problem_type` (config.json's key), which picks the head's loss ([`super::heads::loss`])
/// and how label cells are read and logits are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// One class per row; cross-entropy.
    #[default]
    #[value(name = "single_label_classification", alias = "single-label")]
    SingleLabelClassification,
    /// Any number of classes per row; binary cross-entropy with logits per class.
    #[value(name = "multi_label_classification", alias = "multi-label")]
    MultiLabelClassification,
    /// One number per row; mean squared error, one output.
    #[value(name = "regression")]
    Regression,
}

impl ProblemType {
    pub const ALL: [ProblemType; 3] = [
        ProblemType::SingleLabelClassification,
        ProblemType::MultiLabelClassification,
        ProblemType::Regression,
    ];

    /// The name config.json stores.
    pub fn hf_name(self) -> &'static str {
        match self {
            ProblemType::SingleLabelClassification => "single_label_classification",
            ProblemType::MultiLabelClassification => "multi_label_classification",
            ProblemType::Regression => "regression",
        }
    }

    /// The problem type config.json's `problem_type` names, if it names one.
    pub fn from_hf_name(name: &str) -> Option<ProblemType> {
        ProblemType::ALL.into_iter().find(|p| p.hf_name() == name)
    }
}

impl Default for BertConfig {
    fn default() -> Self {
        // bert-base-uncased's values, which are also HF's BertConfig defaults.
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            position_embedding_type: "absolute".into(),
            classifier_dropout: None,
            id2label: None,
            label2id: None,
            problem_type: None,
            architectures: None,
            model_type: "bert".into(),
            embedding_size: None,
            seq_classif_dropout: None,
            sinusoidal_pos_embds: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// Upper bounds on config.json's sizes. Each is well above any published BERT (bert-large: hidden
/// 1024, 24 layers, 16 heads, intermediate 4096; multilingual vocabularies up to ~250k; long-context
/// variants up to 8192 positions) and low enough that a typo or a corrupt file is refused before it
/// sizes a tensor.
pub const LIMITS: &[(&str, i64)] = &[
    ("vocab_size", 1 << 20),
    ("hidden_size", 1 << 14),
    ("num_hidden_layers", 256),
    ("num_attention_heads", 1 << 10),
    ("intermediate_size", 1 << 16),
    ("max_position_embeddings", 1 << 17),
    ("type_vocab_size", 1 << 10),
];

/// The integer keys of config.json that size tensors.
const SIZE_KEYS: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "pad_token_id",
];

/// The largest model bertfit builds: 10 billion parameters (40 GB in fp32 before optimizer state,
/// 30 times bert-large). Each size can be within [`LIMITS`] while their product is absurd.
pub const MAX_PARAMETERS: f64 = 1e10;

/// The most classes a classifier may have (`--num-labels`, integer labels, `id2label`): far above
/// any real label set, and it keeps a typo such as label `1000000000` from sizing the classifier.
pub const MAX_LABELS: i64 = 100_000;

/// Where a class count came from, for the error message.
#[derive(Debug, Clone, Copy)]
pub enum LabelSource<'a> {
    /// A command-line flag such as `--num-labels`.
    Flag(&'a str),
    /// A key of a config file (`id2label`, `num_labels`).
    Config { path: &'a Path, key: &'a str },
    /// An integer label in a data file: the count it implies is label + 1.
    Row { path: &'a Path, row: usize, column: &'a str },
}

/// Refuses a class count below 1 or above [`MAX_LABELS`], before anything is sized by it.
pub fn check_label_count(n: i64, source: LabelSource) -> Result<()> {
    if (1..=MAX_LABELS).contains(&n) {
        return Ok(());
    }
    let why = if n < 1 {
        format!("{n} classes: a classifier needs at least one")
    } else {
        format!("{n} classes is more than bertfit's limit of {MAX_LABELS}")
    };
    Err(match source {
        LabelSource::Flag(flag) => Error::usage(flag, why),
        LabelSource::Config { path, key } => Error::config(path, format!("key '{key}': {why}")),
        LabelSource::Row { path, row, column } => Error::DataRow {
            path: path.to_path_buf(),
            row,
            column: column.to_string(),
            msg: format!("integer label {} means {why}", n.saturating_sub(1)),
        },
    })
}

/// Activations HF's ACT2FN offers that a BERT checkpoint uses.
pub const SUPPORTED_ACTIVATIONS: &[&str] =
    &["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"];

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and validates config.json's text; `path` names the file in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::config(path, format!("invalid config: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(Error::config(path, "expected a JSON object"));
        };
        // Another architecture's config reads as a BertConfig (serde fills the defaults), and its
        // weights might even load by name: the family is decided first, by name.
        let family = match map.get("model_type") {
            None => Family::Bert,
            Some(Value::String(t)) => Family::from_model_type(t).map_err(|m| Error::config(path, m))?,
            Some(v) => {
                return Err(Error::config(path, format!("key 'model_type' must be a string, found {v}")))
            }
        };
        // serde's own message for a wrong type names a line and column, not the key: check the
        // sizes first so the error says which key is wrong.
        for key in SIZE_KEYS.iter().chain(distilbert::SIZE_KEYS) {
            if let Some(v) = map.get(*key) {
                if !v.is_i64() {
                    return Err(Error::config(path, format!("key '{key}' must be an integer, found {v}")));
                }
            }
        }
        if family == Family::DistilBert {
            distilbert::config_from_hf(&mut map);
        }
        for (key, default) in config_defaults(family) {
            map.entry(key).or_insert(default);
        }
        let cfg: BertConfig = serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::config(path, format!("invalid config: {e}")))?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks what would otherwise fail deep inside a forward pass.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let family = Family::from_model_type(&self.model_type).map_err(|m| Error::config(path, m))?;
        self.check_family_keys(family).map_err(|msg| Error::config(path, msg))?;
        self.check_sizes().map_err(|msg| Error::config(path, msg))?;
        if !SUPPORTED_ACTIVATIONS.contains(&self.hidden_act.as_str()) {
            return Err(Error::config(
                path,
                format!("key 'hidden_act': '{}' is not one of {SUPPORTED_ACTIVATIONS:?}", self.hidden_act),
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(Error::config(
                path,
                format!(
                    "key 'position_embedding_type': only 'absolute' is supported, got '{}'",
                    self.position_embedding_type
                ),
            ));
        }
        for (key, p) in [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            ("attention_probs_dropout_prob", Some(self.attention_probs_dropout_prob)),
            ("classifier_dropout", self.classifier_dropout),
            ("seq_classif_dropout", self.seq_classif_dropout),
        ] {
            if let Some(p) = p {
                if !(0.0..1.0).contains(&p) {
                    return Err(Error::config(path, format!("key '{key}' must be in [0, 1), got {p}")));
                }
            }
        }
        if !(self.pad_token_id >= 0 && self.pad_token_id < self.vocab_size) {
            return Err(Error::config(
                path,
                format!("key 'pad_token_id' {} is outside the vocabulary", self.pad_token_id),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            let eps = self.layer_norm_eps;
            return Err(Error::config(path, format!("key 'layer_norm_eps' must be positive, got {eps}")));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            let r = self.initializer_range;
            return Err(Error::config(path, format!("key 'initializer_range' must be >= 0, got {r}")));
        }
        if let Some(map) = &self.id2label {
            check_label_count(map.len() as i64, LabelSource::Config { path, key: "id2label" })?;
        }
        if let Some(v) = self.extra.get("num_labels") {
            let n = v.as_i64().ok_or_else(|| {
                Error::config(path, format!("key 'num_labels' must be an integer, found {v}"))
            })?;
            check_label_count(n, LabelSource::Config { path, key: "num_labels" })?;
        }
        self.labels().map_err(|msg| Error::config(path, msg))?;
        Ok(())
    }

    /// Each size within [`LIMITS`], `hidden_size` a multiple of `num_attention_heads`, and the
    /// parameter count under [`MAX_PARAMETERS`]: every tensor the model allocates is sized by these.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        for &(key, max) in LIMITS {
            let v = self.size(key);
            // DebertaV2Config's type_vocab_size 0 (DeBERTa-v3): no token-type table at all.
            let none_allowed = key == "type_vocab_size" && self.family() == Family::DebertaV2;
            if (v <= 0 && !(none_allowed && v == 0)) || v > max {
                return Err(format!("key '{key}' must be in 1..={max}, got {v}"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "key 'hidden_size' ({}) is not a multiple of 'num_attention_heads' ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let params = self.parameter_estimate();
        if params > MAX_PARAMETERS {
            return Err(format!(
                "the sizes (vocab_size {}, hidden_size {}, num_hidden_layers {}, intermediate_size {}, \
                 max_position_embeddings {}) make a model of about {:.1e} parameters, over bertfit's \
                 limit of {MAX_PARAMETERS:.0e}",
                self.vocab_size,
                self.hidden_size,
                self.num_hidden_layers,
                self.intermediate_size,
                self.max_position_embeddings,
                params
            ));
        }
        Ok(())
    }

    /// The keys only some families have: present where the family needs them, sizes in bounds,
    /// and what bertfit does not build refused by name.
    fn check_family_keys(&self, family: Family) -> std::result::Result<(), String> {
        if matches!(family, Family::Electra | Family::DebertaV2) {
            let e = self.embedding_size.unwrap_or(self.hidden_size);
            let max = LIMITS[1].1;
            if e <= 0 || e > max {
                return Err(format!("key 'embedding_size' must be in 1..={max}, got {e}"));
            }
        }
        if family == Family::DistilBert && self.sinusoidal_pos_embds == Some(true) {
            return Err("key 'sinusoidal_pos_embds': fixed sinusoidal position embeddings are not \
                        supported; bertfit fine-tunes DistilBERT with learned ones (false)"
                .into());
        }
        if family == Family::ModernBert {
            ModernBertSettings::read(self)?;
            // (A zero head count is check_sizes' to refuse, after this.)
            if self.num_attention_heads > 0 && self.head_dim() % 2 != 0 {
                return Err(format!(
                    "key 'hidden_size': rotary positions need an even head size, and hidden_size {} / \
                     num_attention_heads {} is {}",
                    self.hidden_size,
                    self.num_attention_heads,
                    self.head_dim()
                ));
            }
        }
        if family == Family::DebertaV2 {
            super::deberta::config::DebertaSettings::of(self)?;
        }
        Ok(())
    }

    /// The family config.json's `model_type` names (checked when the config was read).
    pub fn family(&self) -> Family {
        Family::from_model_type(&self.model_type).unwrap_or(Family::Bert)
    }

    /// ELECTRA's embedding width (`embedding_size`), `hidden_size` for the other families.
    pub fn embedding_size(&self) -> i64 {
        match self.family() {
            Family::Electra | Family::DebertaV2 => self.embedding_size.unwrap_or(self.hidden_size),
            _ => self.hidden_size,
        }
    }

    /// The longest sequence the position embeddings take: RoBERTa's position ids start after
    /// `padding_idx` (`create_position_ids_from_input_ids`), so 2 fewer than its table for pad 1.
    pub fn max_sequence_length(&self) -> i64 {
        match self.family() {
            Family::Roberta | Family::XlmRoberta => self.max_position_embeddings - self.pad_token_id - 1,
            _ => self.max_position_embeddings,
        }
    }

    /// Sentence pairs give the second text token type 1 (the vocab.txt tokenizer's BERT template),
    /// which a model with one token type has no embedding row for: refused before any batch, with
    /// the reason. DistilBERT reads no token types at all.
    /// `token_types`: whether the tokenizer gives the second text token type 1 (a `tokenizer.json`
    /// of RoBERTa's kind gives none, and its pairs run with the family's own template).
    pub fn check_pairs(&self, token_types: bool) -> std::result::Result<(), String> {
        // DistilBERT and ModernBERT read no token types; DeBERTa with type_vocab_size 0 has no
        // token-type table and ignores them, as HF does.
        let ignores_types = matches!(self.family(), Family::DistilBert | Family::ModernBert)
            || (self.family() == Family::DebertaV2 && self.type_vocab_size == 0);
        if !token_types || ignores_types || self.type_vocab_size >= 2 {
            return Ok(());
        }
        Err(format!(
            "sentence pairs: the tokenizer gives the second text token type 1, which the model ({} \
             with type_vocab_size {}) has no embedding for; use the model's own tokenizer.json",
            self.model_type, self.type_vocab_size
        ))
    }

    fn size(&self, key: &str) -> i64 {
        match key {
            "vocab_size" => self.vocab_size,
            "hidden_size" => self.hidden_size,
            "num_hidden_layers" => self.num_hidden_layers,
            "num_attention_heads" => self.num_attention_heads,
            "intermediate_size" => self.intermediate_size,
            "max_position_embeddings" => self.max_position_embeddings,
            "type_vocab_size" => self.type_vocab_size,
            _ => 0,
        }
    }

    /// BertForSequenceClassification's parameter count for these sizes (classifier left out), in
    /// f64 so no product of bounded sizes can overflow.
    pub fn parameter_estimate(&self) -> f64 {
        let h = self.hidden_size as f64;
        let i = self.intermediate_size as f64;
        let embeddings =
            (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as f64 * h + 2.0 * h;
        // q, k, v, attention output; FFN in and out; two LayerNorms.
        let layer = 4.0 * (h * h + h) + (h * i + i) + (i * h + h) + 4.0 * h;
        let pooler = h * h + h;
        embeddings + self.num_hidden_layers as f64 * layer + pooler
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The head's dropout: `classifier_dropout`, else `hidden_dropout_prob` (BERT, RoBERTa,
    /// ELECTRA); DistilBERT's is `seq_classif_dropout`.
    pub fn classifier_dropout_prob(&self) -> f64 {
        match self.family() {
            Family::DistilBert => self.seq_classif_dropout.unwrap_or(0.2),
            // ModernBertConfig's classifier_dropout defaults to 0.0, not to another dropout.
            Family::ModernBert => self.classifier_dropout.unwrap_or(0.0),
            _ => self.classifier_dropout.unwrap_or(self.hidden_dropout_prob),
        }
    }

    /// Labels in id order from `id2label`, if the config has them.
    pub fn labels(&self) -> std::result::Result<Option<Vec<String>>, String> {
        let Some(map) = &self.id2label else { return Ok(None) };
        let mut labels = vec![None; map.len()];
        for (k, v) in map {
            let id: usize = k.parse().map_err(|_| format!("key 'id2label': '{k}' is not an integer id"))?;
            if id >= labels.len() {
                return Err(format!("key 'id2label': ids must be 0..{}, found {id}", map.len()));
            }
            if labels[id].replace(v.clone()).is_some() {
                return Err(format!("key 'id2label': id {id} is given twice"));
            }
        }
        let labels: Vec<String> = labels.into_iter().map(|l| l.unwrap_or_default()).collect();
        // Two ids with one name would become two columns of one name in predict's output and one
        // entry of label2id: each class needs its own name.
        let mut first_id: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, label) in labels.iter().enumerate() {
            if let Some(first) = first_id.insert(label.as_str(), id) {
                return Err(format!(
                    "key 'id2label': ids {first} and {id} both name the label '{label}'; each class needs \
                     its own name"
                ));
            }
        }
        Ok(Some(labels))
    }

    /// Sets `id2label` and `label2id` as HF's `PretrainedConfig` writes them.
    pub fn set_labels(&mut self, labels: &[String]) {
        self.id2label = Some(labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect());
        self.label2id = Some(labels.iter().enumerate().map(|(i, l)| (l.clone(), i as i64)).collect());
    }

    /// The number of classes: from `id2label`, else HF's default of 2.
    pub fn num_labels(&self) -> i64 {
        self.id2label.as_ref().map(|m| m.len() as i64).unwrap_or(2)
    }

    /// config.json's text, with the family's own key names (DistilBertConfig's `dim`, `n_layers`...).
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data cannot fail.
        let mut value = serde_json::to_value(self).unwrap_or_default();
        match (self.family(), &mut value) {
            (Family::DistilBert, Value::Object(map)) => distilbert::config_to_hf(map),
            (Family::ModernBert, Value::Object(map)) => modernbert::config_to_hf(map),
            _ => {}
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_hf_defaults() {
        let cfg: BertConfig = serde_json::from_str(r#"{"hidden_size": 96, "foo": 1}"#).unwrap();
        assert_eq!(cfg.hidden_size, 96);
        assert_eq!(cfg.layer_norm_eps, 1e-12);
        assert_eq!(cfg.classifier_dropout_prob(), 0.1);
        assert_eq!(cfg.extra.get("foo"), Some(&Value::from(1)));
        assert!(cfg.to_json_pretty().contains("\"foo\": 1"));
    }

    #[test]
    fn labels_round_trip_in_id_order() {
        let mut cfg = BertConfig::default();
        let labels: Vec<String> = (0..12).map(|i| format!("l{i}")).collect();
        cfg.set_labels(&labels);
        assert_eq!(cfg.labels().unwrap().unwrap(), labels);
        assert_eq!(cfg.num_labels(), 12);
    }

    #[test]
    fn validation_names_the_key() {
        let cfg = BertConfig { hidden_size: 100, num_attention_heads: 12, ..Default::default() };
        let err = cfg.validate(Path::new("x/config.json")).unwrap_err().to_string();
        assert!(err.contains("x/config.json") && err.contains("hidden_size"), "{err}");
    }

    fn refused(json: &str) -> String {
        BertConfig::from_json(json, Path::new("m/config.json")).unwrap_err().to_string()
    }

    #[test]
    fn sizes_are_bounded_before_use() {
        for (json, key) in [
            (r#"{"vocab_size": 0}"#, "vocab_size"),
            (r#"{"num_hidden_layers": -3}"#, "num_hidden_layers"),
            (r#"{"intermediate_size": 1e30}"#, "intermediate_size"),
            (r#"{"hidden_size": "768"}"#, "hidden_size"),
            (r#"{"max_position_embeddings": 9223372036854775807}"#, "max_position_embeddings"),
            (r#"{"type_vocab_size": 100000}"#, "type_vocab_size"),
            (r#"{"layer_norm_eps": 0}"#, "layer_norm_eps"),
            (r#"{"num_labels": 1000000}"#, "num_labels"),
            (r#"{"id2label": {"0": "a", "00": "b"}}"#, "id2label"),
        ] {
            let err = refused(json);
            assert!(err.contains("m/config.json") && err.contains(key), "{json}: {err}");
        }
        // Each size under its limit, the product over the parameter cap.
        let err = refused(r#"{"vocab_size": 1000000, "hidden_size": 16384, "num_attention_heads": 16}"#);
        assert!(err.contains("parameters"), "{err}");
        assert!(BertConfig::from_json("{}", Path::new("c.json")).is_ok());
    }

    #[test]
    fn other_architectures_and_repeated_label_names_are_refused() {
        let err = refused(r#"{"model_type": "gpt2"}"#);
        assert!(
            err.contains("model_type 'gpt2' is not supported; bertfit fine-tunes bert, roberta"),
            "{err}"
        );
        let err = refused(r#"{"model_type": "deberta"}"#);
        assert!(err.contains("model_type 'deberta' is not supported"), "{err}");
        let err = refused(r#"{"id2label": {"0": "spam", "1": "ham", "2": "spam"}}"#);
        assert!(err.contains("ids 0 and 2 both name the label 'spam'"), "{err}");
    }

    #[test]
    fn pairs_need_a_second_token_type_only_where_the_tokenizer_gives_one() {
        let read = |json: &str| BertConfig::from_json(json, Path::new("c.json")).unwrap();
        let roberta = read(r#"{"model_type": "roberta", "type_vocab_size": 1}"#);
        assert!(roberta.check_pairs(false).is_ok(), "RoBERTa's own template: no token types");
        let err = roberta.check_pairs(true).unwrap_err();
        assert!(err.contains("type_vocab_size 1"), "{err}");
        assert!(read(r#"{"model_type": "bert"}"#).check_pairs(true).is_ok());
        assert!(read(r#"{"model_type": "distilbert"}"#).check_pairs(true).is_ok());
    }

    #[test]
    fn families_take_their_config_class_defaults() {
        let read = |json: &str| BertConfig::from_json(json, Path::new("c.json")).unwrap();
        let roberta = read(r#"{"model_type": "roberta"}"#);
        assert_eq!(
            (roberta.pad_token_id, roberta.vocab_size, roberta.max_sequence_length()),
            (1, 50265, 510)
        );
        let electra = read(r#"{"model_type": "electra"}"#);
        assert_eq!((electra.embedding_size(), electra.hidden_size), (128, 256));
        let d = read(
            r#"{"model_type": "distilbert", "dim": 64, "n_heads": 4, "hidden_dim": 99, "activation": "relu"}"#,
        );
        assert_eq!(
            (d.hidden_size, d.num_attention_heads, d.intermediate_size, d.num_hidden_layers),
            (64, 4, 99, 6)
        );
        assert_eq!((d.hidden_act.as_str(), d.classifier_dropout_prob()), ("relu", 0.2));
        let text = d.to_json_pretty();
        assert!(
            text.contains("\"dim\": 64") && text.contains("\"n_layers\": 6") && !text.contains("hidden_size"),
            "{text}"
        );
        assert_eq!(BertConfig::from_json(&text, Path::new("c.json")).unwrap(), d);
        assert!(refused(r#"{"model_type": "distilbert", "sinusoidal_pos_embds": true}"#)
            .contains("sinusoidal_pos_embds"));
    }

    #[test]
    fn label_counts_name_their_source() {
        let flag = check_label_count(0, LabelSource::Flag("--num-labels")).unwrap_err().to_string();
        assert!(flag.starts_with("--num-labels"), "{flag}");
        let row = LabelSource::Row { path: Path::new("d.csv"), row: 7, column: "label" };
        let err = check_label_count(2_000_000_000, row).unwrap_err().to_string();
        assert!(err.contains("d.csv") && err.contains("row 7") && err.contains("1999999999"), "{err}");
        assert!(check_label_count(MAX_LABELS, LabelSource::Flag("--num-labels")).is_ok());
    }
}
