//! `BertConfig`, read from an HF `config.json` with HF's field names and defaults
//! (transformers/models/bert/configuration_bert.py).
//!
//! Fields bertfit does not use are kept in `extra` and written back unchanged, so a saved model's
//! config.json still says everything the original said.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Everything else in config.json, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
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
            extra: serde_json::Map::new(),
        }
    }
}

/// Activations HF's ACT2FN offers that a BERT checkpoint uses.
pub const SUPPORTED_ACTIVATIONS: &[&str] =
    &["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"];

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: BertConfig =
            serde_json::from_str(&text).map_err(|e| Error::config(path, format!("invalid config: {e}")))?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks what would otherwise fail deep inside a forward pass.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (key, v) in positive {
            if v <= 0 {
                return Err(Error::config(path, format!("key '{key}' must be positive, got {v}")));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::config(
                path,
                format!(
                    "key 'hidden_size' ({}) is not a multiple of 'num_attention_heads' ({})",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
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
        self.labels().map_err(|msg| Error::config(path, msg))?;
        Ok(())
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    pub fn classifier_dropout_prob(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
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
            labels[id] = Some(v.clone());
        }
        Ok(Some(labels.into_iter().map(|l| l.unwrap_or_default()).collect()))
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

    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
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
}
