//! DebertaV2Config's keys beyond BertConfig's (configuration_deberta_v2.py, and the ones
//! modeling_deberta_v2.py reads with `getattr(config, key, default)`), read from the config's
//! `extra` map, where they are kept verbatim and written back unchanged.
use serde_json::{Map, Value};

use crate::model::config::{BertConfig, SUPPORTED_ACTIVATIONS};

/// DebertaV2Config's class defaults where they differ from BertConfig's (`family::config_defaults`
/// fills them in for the keys config.json leaves out). The `getattr` keys (position_buckets,
/// share_att_key, norm_rel_ebd, conv_kernel_size...) are not written: HF does not write them either.
pub fn class_defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("vocab_size", 128100.into()),
        ("hidden_size", 1536.into()),
        ("num_hidden_layers", 24.into()),
        ("num_attention_heads", 24.into()),
        ("intermediate_size", 6144.into()),
        ("type_vocab_size", 0.into()),
        ("layer_norm_eps", 1e-7.into()),
        ("relative_attention", false.into()),
        ("max_relative_positions", (-1).into()),
        ("position_biased_input", true.into()),
        ("pos_att_type", Value::Null),
        ("pooler_dropout", 0.0.into()),
        ("pooler_hidden_act", "gelu".into()),
        ("legacy", true.into()),
    ]
}

/// The DeBERTa-v2 settings the modules are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct DebertaSettings {
    pub relative_attention: bool,
    /// `max_relative_positions`, `max_position_embeddings` when < 1 (as DisentangledSelfAttention).
    pub max_relative_positions: i64,
    /// `position_buckets`; <= 0: no log buckets.
    pub position_buckets: i64,
    pub c2p: bool,
    pub p2c: bool,
    pub share_att_key: bool,
    pub position_biased_input: bool,
    /// `norm_rel_ebd` contains "layer_norm": encoder.LayerNorm over the relative embeddings.
    pub norm_rel_ebd: bool,
    pub pooler_dropout: f64,
    pub pooler_hidden_act: String,
    /// The classifier's dropout: `cls_dropout`, else `hidden_dropout_prob`.
    pub cls_dropout: f64,
}

impl DebertaSettings {
    /// `pos_ebd_size`: the relative span S; the relative embeddings have 2S rows.
    pub fn att_span(&self) -> i64 {
        if self.position_buckets > 0 {
            self.position_buckets
        } else {
            self.max_relative_positions
        }
    }

    /// HF's `scale_factor`: 1 + one per c2p/p2c term (counted even without relative attention).
    pub fn scale_factor(&self) -> i64 {
        1 + self.c2p as i64 + self.p2c as i64
    }

    /// Reads and checks the keys; an error names the key.
    pub fn of(cfg: &BertConfig) -> Result<DebertaSettings, String> {
        let x = &cfg.extra;
        let max_rel = int(x, "max_relative_positions", -1)?;
        let (c2p, p2c) = pos_att_type(x)?;
        let norm = match x.get("norm_rel_ebd") {
            None | Some(Value::Null) => "none".to_string(),
            Some(Value::String(s)) => s.to_lowercase(),
            Some(v) => return Err(format!("key 'norm_rel_ebd' must be a string, found {v}")),
        };
        let norm_parts: Vec<&str> = norm.split('|').map(str::trim).collect();
        if let Some(bad) = norm_parts.iter().find(|p| !["none", "layer_norm"].contains(p)) {
            return Err(format!("key 'norm_rel_ebd': '{bad}' is not one of \"none\", \"layer_norm\""));
        }
        let settings = DebertaSettings {
            relative_attention: boolean(x, "relative_attention", false)?,
            max_relative_positions: if max_rel < 1 { cfg.max_position_embeddings } else { max_rel },
            position_buckets: int(x, "position_buckets", -1)?,
            c2p,
            p2c,
            share_att_key: boolean(x, "share_att_key", false)?,
            position_biased_input: boolean(x, "position_biased_input", true)?,
            norm_rel_ebd: norm_parts.contains(&"layer_norm"),
            pooler_dropout: float(x, "pooler_dropout", 0.0)?,
            pooler_hidden_act: string(x, "pooler_hidden_act", "gelu")?,
            cls_dropout: match x.get("cls_dropout") {
                None | Some(Value::Null) => cfg.hidden_dropout_prob,
                Some(_) => float(x, "cls_dropout", 0.0)?,
            },
        };
        settings.check(cfg)?;
        Ok(settings)
    }

    /// What bertfit does not build, and sizes out of bounds, refused by key.
    fn check(&self, cfg: &BertConfig) -> Result<(), String> {
        let x = &cfg.extra;
        if int(x, "conv_kernel_size", 0)? > 0 {
            return Err("key 'conv_kernel_size': DeBERTa-v2's ConvLayer (microsoft/deberta-v2-xlarge and \
                        -xxlarge) is not supported; bertfit fine-tunes DeBERTa-v2/v3 without it"
                .into());
        }
        if let Some(v) = x.get("attention_head_size").filter(|v| !v.is_null()) {
            // Read before the sizes are checked: no division by a zero head count.
            let head_dim = cfg.hidden_size.checked_div(cfg.num_attention_heads).unwrap_or(0);
            if v.as_i64() != Some(head_dim) {
                return Err(format!(
                    "key 'attention_head_size': only hidden_size / num_attention_heads ({}) is supported, \
                     got {v}",
                    head_dim
                ));
            }
        }
        if let Some(v) = x.get("pooler_hidden_size").filter(|v| !v.is_null()) {
            if v.as_i64() != Some(cfg.hidden_size) {
                // ContextPooler's dense is pooler_hidden_size square over hidden states of
                // hidden_size, and the classifier reads hidden_size: any other value fails in HF.
                return Err(format!(
                    "key 'pooler_hidden_size' must equal hidden_size ({}), got {v}",
                    cfg.hidden_size
                ));
            }
        }
        let act = self.pooler_hidden_act.as_str();
        if act != "tanh" && !SUPPORTED_ACTIVATIONS.contains(&act) {
            return Err(format!(
                "key 'pooler_hidden_act': '{act}' is not \"tanh\" or one of {SUPPORTED_ACTIVATIONS:?}"
            ));
        }
        for (key, p) in [("pooler_dropout", self.pooler_dropout), ("cls_dropout", self.cls_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("key '{key}' must be in [0, 1), got {p}"));
            }
        }
        self.check_relative()
    }

    /// The relative span and the bucket parameters: they size a table, and divide in the buckets.
    fn check_relative(&self) -> Result<(), String> {
        if !self.relative_attention {
            return Ok(());
        }
        let (key, span) = if self.position_buckets > 0 {
            ("position_buckets", self.position_buckets)
        } else {
            ("max_relative_positions", self.max_relative_positions)
        };
        if span > 1 << 16 {
            return Err(format!("key '{key}' must be at most {}, got {span}", 1 << 16));
        }
        if self.position_buckets > 0 && self.position_buckets < 4 {
            // make_log_bucket_position divides by log((max_position - 1) / (buckets / 2)) and
            // by buckets / 2: fewer than 4 buckets leave no log part to divide into.
            return Err(format!("key 'position_buckets' must be 4 or more, got {}", self.position_buckets));
        }
        if self.position_buckets > 0 && self.max_relative_positions <= self.position_buckets / 2 + 1 {
            return Err(format!(
                "key 'max_relative_positions' ({}) must exceed position_buckets / 2 + 1 ({})",
                self.max_relative_positions,
                self.position_buckets / 2 + 1
            ));
        }
        Ok(())
    }
}

/// `pos_att_type`: a list, or the legacy "p2c|c2p" string; -> (c2p, p2c).
fn pos_att_type(x: &Map<String, Value>) -> Result<(bool, bool), String> {
    let items: Vec<String> = match x.get("pos_att_type") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.to_lowercase().split('|').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("key 'pos_att_type': {v} is not a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(format!("key 'pos_att_type' must be a list of strings, found {v}")),
    };
    if let Some(bad) = items.iter().find(|p| !["c2p", "p2c"].contains(&p.as_str())) {
        return Err(format!("key 'pos_att_type': '{bad}' is not one of \"c2p\", \"p2c\""));
    }
    Ok((items.iter().any(|p| p == "c2p"), items.iter().any(|p| p == "p2c")))
}

fn int(x: &Map<String, Value>, key: &str, default: i64) -> Result<i64, String> {
    match x.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| format!("key '{key}' must be an integer, found {v}")),
    }
}

fn boolean(x: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match x.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| format!("key '{key}' must be true or false, found {v}")),
    }
}

fn float(x: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match x.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| format!("key '{key}' must be a number, found {v}")),
    }
}

fn string(x: &Map<String, Value>, key: &str, default: &str) -> Result<String, String> {
    match x.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!("key '{key}' must be a string, found {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn read(json: &str) -> Result<BertConfig, String> {
        BertConfig::from_json(json, Path::new("d/config.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn v3_keys_are_read_with_hf_defaults() {
        let cfg = read(
            r#"{"model_type": "deberta-v2", "hidden_size": 32, "num_attention_heads": 4,
                "relative_attention": true, "position_buckets": 256, "pos_att_type": "p2c|c2p",
                "norm_rel_ebd": "layer_norm", "share_att_key": true, "position_biased_input": false}"#,
        )
        .unwrap();
        let s = DebertaSettings::of(&cfg).unwrap();
        assert_eq!((s.c2p, s.p2c, s.att_span(), s.scale_factor()), (true, true, 256, 3));
        assert_eq!((s.max_relative_positions, cfg.type_vocab_size, cfg.layer_norm_eps), (512, 0, 1e-7));
        assert!(s.norm_rel_ebd && s.share_att_key && !s.position_biased_input);
        assert_eq!((s.cls_dropout, s.pooler_dropout, s.pooler_hidden_act.as_str()), (0.1, 0.0, "gelu"));
    }

    #[test]
    fn what_is_not_built_is_refused_by_key() {
        let base = r#""model_type": "deberta-v2", "hidden_size": 32, "num_attention_heads": 4"#;
        for (extra, key) in [
            (r#""conv_kernel_size": 3"#, "conv_kernel_size"),
            (r#""pos_att_type": ["p2p"]"#, "pos_att_type"),
            (r#""pooler_hidden_size": 64"#, "pooler_hidden_size"),
            (r#""pooler_hidden_act": "mish""#, "pooler_hidden_act"),
            (r#""cls_dropout": 1.5"#, "cls_dropout"),
            (r#""norm_rel_ebd": "rms""#, "norm_rel_ebd"),
            (r#""relative_attention": "yes""#, "relative_attention"),
            (r#""relative_attention": true, "position_buckets": 2"#, "position_buckets"),
        ] {
            let err = read(&format!("{{{base}, {extra}}}")).unwrap_err();
            assert!(err.contains("d/config.json") && err.contains(&format!("key '{key}'")), "{extra}: {err}");
        }
    }
}
