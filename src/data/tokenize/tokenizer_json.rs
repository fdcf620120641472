//! `tokenizer.json`: the `tokenizers` serialisation of the tokenizer that transformers'
//! `BertTokenizerFast` builds from `vocab.txt` and `tokenizer_config.json`, so that
//! `AutoTokenizer.from_pretrained` loads the fast tokenizer from the saved folder instead of
//! converting the vocabulary again.
//!
//! Written from the very files `save_files` copies (read again with the readers `from_dir` uses),
//! in the field order `tokenizers` writes. bertfit itself never reads it: tokenization here is
//! decided by `vocab.txt` and `tokenizer_config.json` alone.
use std::path::Path;

use serde_json::{json, Map, Value};

use super::config::read_settings;
use super::vocab::read_vocab;
use super::{tokenizer_error, CONFIG_FILE, VOCAB_FILE};
use crate::Result;

/// The file name transformers looks for (`TOKENIZER_FILE`).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// `tokenizers`' `WordPiece` limit: a longer word becomes the unknown token.
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// The `tokenizer.json` of the tokenizer in `dir` (its `vocab.txt` and `tokenizer_config.json`),
/// as `tokenizers` serialises it (two-space indent, no final newline).
pub(super) fn tokenizer_json(dir: &Path) -> Result<String> {
    let settings = read_settings(&dir.join(CONFIG_FILE))?;
    let vocab_path = dir.join(VOCAB_FILE);
    let values = read_vocab(&vocab_path)?;
    let id_of = |token: &str| -> Result<i64> {
        values.get(token).copied().ok_or_else(|| {
            tokenizer_error(&vocab_path, format!("special token {token:?} is not in the vocabulary"))
        })
    };

    // The special tokens transformers adds (`added_tokens`), once each, by id as `tokenizers`
    // lists them; none is normalised, all are special.
    let mut added: Vec<(i64, &str)> = Vec::new();
    let named = [&settings.unk_token, &settings.sep_token, &settings.pad_token, &settings.cls_token];
    for token in named.into_iter().chain([&settings.mask_token]).chain(&settings.additional_special_tokens) {
        if !added.iter().any(|(_, t)| *t == token.as_str()) {
            added.push((id_of(token)?, token));
        }
    }
    added.sort_by_key(|&(id, _)| id);
    let added_tokens: Vec<Value> = added
        .iter()
        .map(|&(id, content)| {
            json!({
                "id": id,
                "content": content,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        })
        .collect();

    let (cls, sep) = (settings.cls_token.as_str(), settings.sep_token.as_str());
    let special = |id: &str, type_id: u32| json!({"SpecialToken": {"id": id, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    // `tokenizers` writes the template's special tokens sorted by name.
    let mut special_tokens: Vec<(&str, i64)> = vec![(cls, id_of(cls)?), (sep, id_of(sep)?)];
    special_tokens.sort();
    special_tokens.dedup();
    let special_tokens: Map<String, Value> = special_tokens
        .into_iter()
        .map(|(token, id)| (token.to_owned(), json!({"id": token, "ids": [id], "tokens": [token]})))
        .collect();

    // The vocabulary by id; an id whose line was repeated later is a hole `tokenizers` skips.
    let mut by_id: Vec<(&String, i64)> = values.iter().map(|(token, &id)| (token, id)).collect();
    by_id.sort_by_key(|&(_, id)| id);
    let vocab: Map<String, Value> = by_id.into_iter().map(|(token, id)| (token.clone(), id.into())).collect();

    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": true,
            // `from_dir` refuses tokenize_chinese_chars false.
            "handle_chinese_chars": true,
            // As written in tokenizer_config.json: null follows `lowercase` in `tokenizers` too.
            "strip_accents": settings.strip_accents,
            "lowercase": settings.do_lower_case,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(cls, 0), sequence("A", 0), special(sep, 0)],
            "pair": [special(cls, 0), sequence("A", 0), special(sep, 0), sequence("B", 1), special(sep, 1)],
            "special_tokens": special_tokens,
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {
            "type": "WordPiece",
            "unk_token": settings.unk_token,
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": MAX_INPUT_CHARS_PER_WORD,
            "vocab": vocab,
        },
    });
    Ok(serde_json::to_string_pretty(&json).unwrap_or_default())
}
