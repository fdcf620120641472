//! `tokenizer_config.json`: the settings HF's `BertTokenizer` reads from it, with HF's defaults
//! where it is silent or missing.
use std::path::Path;

use serde_json::Value;

use super::tokenizer_error;
use crate::Result;

/// The tokenizer settings of `tokenizer_config.json`, with HF's defaults.
pub(super) struct Settings {
    pub(super) do_lower_case: bool,
    /// `None` (JSON null or absent) follows `do_lower_case`, as in HF.
    pub(super) strip_accents: Option<bool>,
    pub(super) model_max_length: Option<usize>,
    pub(super) unk_token: String,
    pub(super) sep_token: String,
    pub(super) pad_token: String,
    pub(super) cls_token: String,
    pub(super) mask_token: String,
    /// `additional_special_tokens` / `extra_special_tokens`: matched in the raw text like `[MASK]`.
    pub(super) additional_special_tokens: Vec<String>,
    /// `added_tokens_decoder`: (id, content), checked against the vocabulary.
    pub(super) added_tokens: Vec<(i64, String)>,
}

/// Reads `tokenizer_config.json`; a missing file means HF's defaults.
pub(super) fn read_settings(path: &Path) -> Result<Settings> {
    let mut settings = Settings {
        do_lower_case: true,
        strip_accents: None,
        model_max_length: None,
        unk_token: "[UNK]".into(),
        sep_token: "[SEP]".into(),
        pad_token: "[PAD]".into(),
        cls_token: "[CLS]".into(),
        mask_token: "[MASK]".into(),
        additional_special_tokens: Vec::new(),
        added_tokens: Vec::new(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(settings),
        Err(e) => return Err(tokenizer_error(path, format!("cannot read: {e}"))),
    };
    let json: Value =
        serde_json::from_str(&text).map_err(|e| tokenizer_error(path, format!("not valid JSON: {e}")))?;
    let Value::Object(map) = json else {
        return Err(tokenizer_error(path, "expected a JSON object"));
    };
    let keys = Keys { map: &map, path };
    read_options(&keys, &mut settings)?;
    read_tokens(&keys, &mut settings)?;
    Ok(settings)
}

/// The config's keys, null ones read as absent, and the error naming one.
struct Keys<'a> {
    map: &'a serde_json::Map<String, Value>,
    path: &'a Path,
}

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, expected: &str, found: &Value) -> crate::Error {
        tokenizer_error(self.path, format!("'{key}' must be {expected}, found {found}"))
    }
}

/// Casing, accents, CJK splitting and the length limit.
fn read_options(keys: &Keys, settings: &mut Settings) -> Result<()> {
    let get = |key: &str| keys.get(key);
    let bad = |key: &str, expected: &str, found: &Value| keys.bad(key, expected, found);
    let path = keys.path;
    if let Some(v) = get("do_lower_case") {
        settings.do_lower_case = v.as_bool().ok_or_else(|| bad("do_lower_case", "true or false", v))?;
    }
    if let Some(v) = get("strip_accents") {
        settings.strip_accents =
            Some(v.as_bool().ok_or_else(|| bad("strip_accents", "true, false or null", v))?);
    }
    if let Some(v) = get("tokenize_chinese_chars") {
        let on = v.as_bool().ok_or_else(|| bad("tokenize_chinese_chars", "true or false", v))?;
        if !on {
            // rust_tokenizers always splits CJK ideographs into single-character words.
            return Err(tokenizer_error(
                path,
                "'tokenize_chinese_chars': false is not supported (rust_tokenizers always splits CJK \
                 characters into words of their own)",
            ));
        }
    }
    if let Some(v) = get("model_max_length") {
        settings.model_max_length =
            max_length_value(v).ok_or_else(|| bad("model_max_length", "a positive integer", v))?;
    }
    Ok(())
}

/// `model_max_length` as HF writes it: a count, or int(1e30) for "no limit" (anything past 2^32
/// means the same here, `Some(None)`); `None` when it is neither.
pub(super) fn max_length_value(v: &Value) -> Option<Option<usize>> {
    match (v.as_u64(), v.as_f64()) {
        (Some(n), _) if n <= u32::MAX as u64 => Some(Some(n as usize)),
        (_, Some(x)) if x >= u32::MAX as f64 => Some(None),
        _ => None,
    }
}

/// The special tokens, additional ones, and `added_tokens_decoder`.
fn read_tokens(keys: &Keys, settings: &mut Settings) -> Result<()> {
    let get = |key: &str| keys.get(key);
    let bad = |key: &str, expected: &str, found: &Value| keys.bad(key, expected, found);
    for (key, slot) in [
        ("unk_token", &mut settings.unk_token),
        ("sep_token", &mut settings.sep_token),
        ("pad_token", &mut settings.pad_token),
        ("cls_token", &mut settings.cls_token),
        ("mask_token", &mut settings.mask_token),
    ] {
        if let Some(v) = get(key) {
            *slot = token_content(v).ok_or_else(|| bad(key, "a string or {\"content\": ...}", v))?;
        }
    }
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        match get(key) {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let token = token_content(item).ok_or_else(|| bad(key, "a list of strings", item))?;
                    settings.additional_special_tokens.push(token);
                }
            }
            // transformers 5 may write extra_special_tokens as a (possibly empty) name -> token map.
            Some(Value::Object(named)) => {
                for item in named.values() {
                    let token = token_content(item).ok_or_else(|| bad(key, "a map of strings", item))?;
                    settings.additional_special_tokens.push(token);
                }
            }
            Some(v) => return Err(bad(key, "a list of strings", v)),
        }
    }
    if let Some(v) = get("added_tokens_decoder") {
        let entries = v.as_object().ok_or_else(|| bad("added_tokens_decoder", "an object", v))?;
        for (id, token) in entries {
            let id: i64 = id.parse().map_err(|_| bad("added_tokens_decoder", "keyed by token ids", v))?;
            let content = token_content(token)
                .ok_or_else(|| bad("added_tokens_decoder", "{\"content\": ...} entries", token))?;
            settings.added_tokens.push((id, content));
        }
    }
    Ok(())
}

/// A token written either as a string or as a serialised `AddedToken` (`{"content": ...}`).
pub(super) fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}
