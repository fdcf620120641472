//! ModernBertConfig's own keys (configuration_modernbert.py), which `BertConfig` keeps in its
//! `extra` map: read here into one typed value, with the config class's defaults and its two
//! spellings of the layer pattern and the rotary bases (transformers 5's `layer_types` and
//! `rope_parameters`, and the `global_attn_every_n_layers`, `global_rope_theta` and
//! `local_rope_theta` of the configs published with ModernBERT).
use serde_json::{Map, Value};

use crate::model::config::{BertConfig, SUPPORTED_ACTIVATIONS};

/// ModernBertConfig's defaults for the keys bertfit reads, filled in where config.json leaves
/// them out (`family::config_defaults`). The BertConfig fields first, then ModernBERT's own.
pub fn config_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("vocab_size", 50368.into()),
        ("intermediate_size", 1152.into()),
        ("num_hidden_layers", 22.into()),
        ("max_position_embeddings", 8192.into()),
        ("pad_token_id", 50283.into()),
        ("classifier_dropout", 0.0.into()),
        ("hidden_activation", "gelu".into()),
        ("initializer_cutoff_factor", 2.0.into()),
        ("norm_eps", 1e-5.into()),
        ("norm_bias", false.into()),
        ("attention_bias", false.into()),
        ("attention_dropout", 0.0.into()),
        ("local_attention", 128.into()),
        ("embedding_dropout", 0.0.into()),
        ("mlp_bias", false.into()),
        ("mlp_dropout", 0.0.into()),
        ("classifier_pooling", "cls".into()),
        ("classifier_bias", false.into()),
        ("classifier_activation", "gelu".into()),
    ]
}

/// BertConfig fields ModernBertConfig does not have: left out of the config.json bertfit writes
/// (ModernBERT's own keys say the same things: `hidden_activation`, `norm_eps`, its dropouts).
const NOT_IN_MODERNBERT: &[&str] = &[
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "position_embedding_type",
    "layer_norm_eps",
];

/// The config.json ModernBertConfig would write: without BertConfig's own fields.
pub fn config_to_hf(map: &mut Map<String, Value>) {
    for key in NOT_IN_MODERNBERT {
        map.remove(*key);
    }
}

/// How the classifier pools the last hidden states (`classifier_pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token (`last_hidden_state[:, 0]`).
    Cls,
    /// The mean over the attention mask.
    Mean,
}

/// ModernBertConfig's values as the modules use them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModernBertSettings {
    pub hidden_activation: String,
    pub classifier_activation: String,
    pub norm_eps: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub classifier_bias: bool,
    pub embedding_dropout: f64,
    pub attention_dropout: f64,
    pub mlp_dropout: f64,
    /// `local_attention // 2`: HF's `config.sliding_window`; a local layer's token attends to the
    /// keys at most this far away (`sliding_window_bidirectional_overlay`: |q - k| <= window).
    pub sliding_window: i64,
    /// Per layer: true for a global ("full_attention") layer, false for a local one.
    pub global_layers: Vec<bool>,
    pub global_rope_theta: f64,
    pub local_rope_theta: f64,
    pub pooling: Pooling,
    /// `initializer_cutoff_factor` (`None` in config.json means 3, as `_init_weights` reads it).
    pub initializer_cutoff_factor: f64,
}

impl ModernBertSettings {
    /// The settings of a config already validated ([`ModernBertSettings::read`] succeeded when it
    /// was read); the class defaults should it not have been.
    pub fn of(cfg: &BertConfig) -> ModernBertSettings {
        ModernBertSettings::read(cfg).unwrap_or_else(|_| {
            let mut map = Map::new();
            map.extend(config_defaults().into_iter().map(|(k, v)| (k.to_string(), v)));
            let defaults = BertConfig { extra: map, ..cfg.clone() };
            ModernBertSettings::read(&defaults).expect("the class defaults are valid")
        })
    }

    /// Reads and checks the keys; the error names the key.
    pub fn read(cfg: &BertConfig) -> Result<ModernBertSettings, String> {
        let x = Keys(&cfg.extra);
        let local_attention = x.int("local_attention", 128)?;
        if local_attention < 0 {
            return Err(format!("key 'local_attention' must be >= 0, got {local_attention}"));
        }
        let (global_rope_theta, local_rope_theta) = x.rope_thetas()?;
        let settings = ModernBertSettings {
            hidden_activation: x.activation("hidden_activation")?,
            classifier_activation: x.activation("classifier_activation")?,
            norm_eps: x.positive("norm_eps", 1e-5)?,
            norm_bias: x.bool("norm_bias", false)?,
            attention_bias: x.bool("attention_bias", false)?,
            mlp_bias: x.bool("mlp_bias", false)?,
            classifier_bias: x.bool("classifier_bias", false)?,
            embedding_dropout: x.probability("embedding_dropout")?,
            attention_dropout: x.probability("attention_dropout")?,
            mlp_dropout: x.probability("mlp_dropout")?,
            sliding_window: local_attention / 2,
            global_layers: x.layer_types(cfg.num_hidden_layers)?,
            global_rope_theta,
            local_rope_theta,
            pooling: match x.string("classifier_pooling", "cls")?.as_str() {
                "cls" => Pooling::Cls,
                "mean" => Pooling::Mean,
                other => {
                    return Err(format!("key 'classifier_pooling' must be 'cls' or 'mean', got '{other}'"))
                }
            },
            initializer_cutoff_factor: match cfg.extra.get("initializer_cutoff_factor") {
                None | Some(Value::Null) => 3.0,
                Some(_) => x.positive("initializer_cutoff_factor", 2.0)?,
            },
        };
        Ok(settings)
    }
}

/// config.json's keys, each read with its type checked and the key named in the error.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn int(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| format!("key '{key}' must be an integer, found {v}")),
        }
    }

    fn float(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| format!("key '{key}' must be a number, found {v}")),
        }
    }

    fn positive(&self, key: &str, default: f64) -> Result<f64, String> {
        let v = self.float(key, default)?;
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(format!("key '{key}' must be positive, got {v}"))
        }
    }

    fn probability(&self, key: &str) -> Result<f64, String> {
        let p = self.float(key, 0.0)?;
        if (0.0..1.0).contains(&p) {
            Ok(p)
        } else {
            Err(format!("key '{key}' must be in [0, 1), got {p}"))
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| format!("key '{key}' must be true or false, found {v}")),
        }
    }

    fn string(&self, key: &str, default: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("key '{key}' must be a string, found {v}")),
        }
    }

    fn activation(&self, key: &str) -> Result<String, String> {
        let name = self.string(key, "gelu")?;
        if SUPPORTED_ACTIVATIONS.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(format!("key '{key}': '{name}' is not one of {SUPPORTED_ACTIVATIONS:?}"))
        }
    }

    /// `layer_types` if given, else every `global_attn_every_n_layers`-th layer global (layer 0
    /// first), as ModernBertConfig's `__post_init__`.
    fn layer_types(&self, num_hidden_layers: i64) -> Result<Vec<bool>, String> {
        let Some(types) = self.get("layer_types") else {
            let every = self.int("global_attn_every_n_layers", 3)?;
            if every < 1 {
                return Err(format!("key 'global_attn_every_n_layers' must be >= 1, got {every}"));
            }
            return Ok((0..num_hidden_layers).map(|i| i % every == 0).collect());
        };
        let list =
            types.as_array().ok_or_else(|| format!("key 'layer_types' must be a list, found {types}"))?;
        if list.len() as i64 != num_hidden_layers {
            return Err(format!(
                "key 'layer_types' has {} entries for num_hidden_layers {num_hidden_layers}",
                list.len()
            ));
        }
        list.iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(true),
                Some("sliding_attention") => Ok(false),
                _ => {
                    Err(format!("key 'layer_types': {t} is neither 'full_attention' nor 'sliding_attention'"))
                }
            })
            .collect()
    }

    /// The rotary bases of the global and the local layers: `rope_parameters` (only the
    /// "default" rope_type) if given, else `global_rope_theta` / `local_rope_theta`.
    fn rope_thetas(&self) -> Result<(f64, f64), String> {
        if let Some(v) = self.get("rope_scaling") {
            return Err(format!("key 'rope_scaling': scaled rotary embeddings are not supported, found {v}"));
        }
        let global = self.positive("global_rope_theta", 160_000.0)?;
        let local = self.positive("local_rope_theta", 10_000.0)?;
        let Some(params) = self.get("rope_parameters") else { return Ok((global, local)) };
        let theta = |layer_type: &str, default: f64| -> Result<f64, String> {
            let key = format!("rope_parameters.{layer_type}");
            let Some(p) = params.get(layer_type).filter(|p| !p.is_null()) else { return Ok(default) };
            let rope_type = p.get("rope_type").and_then(Value::as_str).unwrap_or("default");
            if rope_type != "default" {
                return Err(format!("key '{key}.rope_type': only 'default' is supported, got '{rope_type}'"));
            }
            match p.get("rope_theta") {
                None => Ok(default),
                Some(t) => t
                    .as_f64()
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .ok_or_else(|| format!("key '{key}.rope_theta' must be a positive number, found {t}")),
            }
        };
        Ok((theta("full_attention", global)?, theta("sliding_attention", local)?))
    }
}
