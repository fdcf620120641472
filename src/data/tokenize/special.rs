//! What transformers reads beside `tokenizer.json` (for any family): the special tokens
//! (`tokenizer_config.json`, then `special_tokens_map.json`, then the tokenizer class's defaults),
//! `model_max_length`, and whether the tokenizer returns `token_type_ids`.
use std::path::Path;

use serde_json::{Map, Value};

use super::config::{max_length_value, token_content};
use super::{tokenizer_error, CONFIG_FILE, SPECIAL_TOKENS_FILE};
use crate::Result;

/// transformers 5 tokenizer classes whose `model_input_names` hold `token_type_ids` (checked with
/// `tokenizer_class_from_name` at the pinned version; a `...Fast` name is the same class). The
/// others (RoBERTa, XLM-R, DistilBERT, `TokenizersBackend` = `PreTrainedTokenizerFast`, ...) give none.
const TOKEN_TYPE_CLASSES: &[&str] = &[
    "BertTokenizer",
    "ElectraTokenizer",
    "MobileBertTokenizer",
    "SqueezeBertTokenizer",
    "ConvBertTokenizer",
    "DebertaTokenizer",
    "DebertaV2Tokenizer",
    "LayoutLMTokenizer",
];

/// `config.json` model types whose AutoTokenizer class is one of the above (a folder without
/// `tokenizer_class`: transformers picks the class from the model type).
const TOKEN_TYPE_MODELS: &[&str] =
    &["bert", "electra", "mobilebert", "squeezebert", "convbert", "deberta", "deberta-v2", "layoutlm"];

/// Classes whose special tokens default to RoBERTa's (`<s>`, `</s>`, `<pad>`); the BERT-like
/// classes above default to `[CLS]`, `[SEP]`, `[PAD]`; others have no defaults.
const ROBERTA_LIKE: &[&str] = &[
    "RobertaTokenizer",
    "XLMRobertaTokenizer",
    "CamembertTokenizer",
    "LongformerTokenizer",
    "MPNetTokenizer",
];

/// The settings of a tokenizer folder that are not in `tokenizer.json`.
pub(super) struct Family {
    pub(super) cls_token: Option<String>,
    pub(super) sep_token: Option<String>,
    pub(super) pad_token: Option<String>,
    pub(super) model_max_length: Option<usize>,
    /// Whether transformers returns `token_type_ids` (else bertfit gives all zeros); `None` when
    /// nothing says (no `model_input_names`, `tokenizer_class` or `config.json` model type).
    pub(super) token_types: Option<bool>,
}

/// Reads `tokenizer_config.json` and `special_tokens_map.json` (each optional) of `dir`.
pub(super) fn read_family(dir: &Path) -> Result<Family> {
    let config_path = dir.join(CONFIG_FILE);
    let config = read_object(&config_path)?;
    let special = read_object(&dir.join(SPECIAL_TOKENS_FILE))?;
    let class = config
        .get("tokenizer_class")
        .and_then(Value::as_str)
        .map(|c| c.strip_suffix("Fast").unwrap_or(c).to_owned());
    let token_types = match config.get("model_input_names").filter(|v| !v.is_null()) {
        Some(Value::Array(names)) => Some(names.iter().any(|n| n == "token_type_ids")),
        Some(v) => {
            return Err(tokenizer_error(
                &config_path,
                format!("'model_input_names' must be a list, found {v}"),
            ))
        }
        None => match &class {
            Some(class) => Some(TOKEN_TYPE_CLASSES.contains(&class.as_str())),
            None => model_type(dir).map(|t| TOKEN_TYPE_MODELS.contains(&t.as_str())),
        },
    };
    let bert_like =
        class.as_deref().is_some_and(|c| TOKEN_TYPE_CLASSES.contains(&c) || c == "DistilBertTokenizer");
    let roberta_like = class.as_deref().is_some_and(|c| ROBERTA_LIKE.contains(&c));
    let default = |bert: &str, roberta: &str| {
        (bert_like.then_some(bert).or(roberta_like.then_some(roberta))).map(str::to_owned)
    };
    let token = |key: &str, bert: &str, roberta: &str| -> Result<Option<String>> {
        match config.get(key).or_else(|| special.get(key)).filter(|v| !v.is_null()) {
            Some(v) => token_content(v).map(Some).ok_or_else(|| {
                tokenizer_error(
                    &config_path,
                    format!("'{key}' must be a string or {{\"content\": ...}}, found {v}"),
                )
            }),
            None => Ok(default(bert, roberta)),
        }
    };
    let model_max_length = match config.get("model_max_length").filter(|v| !v.is_null()) {
        Some(v) => max_length_value(v).ok_or_else(|| {
            tokenizer_error(&config_path, format!("'model_max_length' must be a positive integer, found {v}"))
        })?,
        None => None,
    };
    Ok(Family {
        cls_token: token("cls_token", "[CLS]", "<s>")?,
        sep_token: token("sep_token", "[SEP]", "</s>")?,
        pad_token: token("pad_token", "[PAD]", "<pad>")?,
        model_max_length,
        token_types,
    })
}

/// A JSON object file; a missing file is an empty object.
fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(tokenizer_error(path, format!("cannot read: {e}"))),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(tokenizer_error(path, "expected a JSON object")),
        Err(e) => Err(tokenizer_error(path, format!("not valid JSON: {e}"))),
    }
}

/// `model_type` of the folder's `config.json`, if it has one (a tokenizer-only folder may not).
fn model_type(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    json.get("model_type")?.as_str().map(str::to_owned)
}
