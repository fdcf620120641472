//! Reading `vocab.txt` into a tokenizer (with `tokenizer_config.json`'s settings, `config.rs`),
//! and checking a vocabulary against the model's embedding.
use std::collections::HashMap;
use std::path::Path;

use rust_tokenizers::tokenizer::BertTokenizer as RtBertTokenizer;
use rust_tokenizers::vocab::BertVocab;

use super::config::{read_settings, Settings};
use super::hf_fixes::{fix, stand_in, Fix};
use super::wordpiece_ascii::AsciiWordPiece;
use super::{tokenizer_error, WordPieceTokenizer, CONFIG_FILE, VOCAB_FILE};
use crate::Result;

/// The lines of vocab.txt as Python's universal newlines split them (`open(..., "r")`, which
/// transformers' `load_vocab` uses): at "\r\n", "\n" or a lone "\r"; a last line without an end
/// counts, an empty text has no lines.
pub fn vocab_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(i) if rest[i..].starts_with("\r\n") => (&rest[..i], &rest[i + 2..]),
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        Some(line)
    })
}

impl WordPieceTokenizer {
    /// Reads `vocab.txt` and `tokenizer_config.json` (optional) from an HF model folder:
    /// `do_lower_case` (default true), `strip_accents` (null follows `do_lower_case`, as HF),
    /// `tokenize_chinese_chars` (only true is supported), `model_max_length`, the special tokens.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let settings = read_settings(&dir.join(CONFIG_FILE))?;
        let vocab_path = dir.join(VOCAB_FILE);
        let mut values = read_vocab(&vocab_path)?;
        let vocab_size = values.values().max().map_or(0, |&id| id as usize + 1);
        if vocab_size == 0 {
            return Err(tokenizer_error(&vocab_path, "the vocabulary is empty"));
        }
        let id_of = |token: &str, key: &str| -> Result<i64> {
            values.get(token).copied().ok_or_else(|| {
                tokenizer_error(&vocab_path, format!("{key} {token:?} is not in the vocabulary"))
            })
        };
        let cls_token_id = id_of(&settings.cls_token, "cls_token")?;
        let sep_token_id = id_of(&settings.sep_token, "sep_token")?;
        let pad_token_id = id_of(&settings.pad_token, "pad_token")?;
        let special_values = special_ids(&settings, &id_of)?;
        // HF gives an added token that is not in vocab.txt a new id; that is not supported here.
        for (id, content) in &settings.added_tokens {
            if values.get(content) != Some(id) {
                return Err(tokenizer_error(
                    dir.join(CONFIG_FILE),
                    format!(
                        "added_tokens_decoder: token {content:?} with id {id} is not that line of \
                         vocab.txt (tokens added beyond the vocabulary are not supported)"
                    ),
                ));
            }
        }
        let aliases = stand_in_aliases(&values);
        let indices = values.iter().map(|(token, &id)| (id, token.clone())).collect();
        let ascii = settings.additional_special_tokens.is_empty().then(|| {
            AsciiWordPiece::new(values.clone(), special_values[&settings.unk_token], settings.do_lower_case)
        });
        values.extend(aliases);

        let vocab = bert_vocab(values, indices, special_values, &settings);
        let strip_accents = settings.strip_accents.unwrap_or(settings.do_lower_case);
        Ok(WordPieceTokenizer {
            inner: RtBertTokenizer::from_existing_vocab(vocab, settings.do_lower_case, strip_accents),
            dir: dir.to_path_buf(),
            do_lower_case: settings.do_lower_case,
            strip_accents,
            model_max_length: settings.model_max_length,
            cls_token_id,
            sep_token_id,
            pad_token_id,
            vocab_size,
            ascii,
        })
    }
}

/// vocab.txt as `tokenizers`' WordPiece::read_file reads it: one token per line, trailing
/// whitespace trimmed, id = line number, a repeated token keeps its last line. Lines end as
/// transformers' `load_vocab` reads them (Python's universal newlines): "\n", "\r\n" or a lone "\r".
pub(super) fn read_vocab(vocab_path: &Path) -> Result<HashMap<String, i64>> {
    let text = std::fs::read_to_string(vocab_path)
        .map_err(|e| tokenizer_error(vocab_path, format!("cannot read the vocabulary: {e}")))?;
    if let Some(first) = text.strip_prefix('\u{feff}') {
        let token = first.split(['\r', '\n']).next().unwrap_or_default();
        return Err(tokenizer_error(
            vocab_path,
            format!(
                "starts with a byte-order mark (U+FEFF), which transformers reads as part of the \
                 first token ({:?} instead of {token:?}); save the file as UTF-8 without a BOM",
                format!("\u{feff}{token}")
            ),
        ));
    }
    let mut values: HashMap<String, i64> = HashMap::new();
    for (id, line) in vocab_lines(&text).enumerate() {
        values.insert(line.trim_end().to_owned(), id as i64);
    }
    Ok(values)
}

/// The special tokens' ids (each must be in the vocabulary).
fn special_ids(
    settings: &Settings,
    id_of: &dyn Fn(&str, &str) -> Result<i64>,
) -> Result<HashMap<String, i64>> {
    let mut special_values: HashMap<String, i64> = HashMap::new();
    for (key, token) in [
        ("unk_token", &settings.unk_token),
        ("sep_token", &settings.sep_token),
        ("pad_token", &settings.pad_token),
        ("cls_token", &settings.cls_token),
        ("mask_token", &settings.mask_token),
    ] {
        special_values.insert(token.clone(), id_of(token, key)?);
    }
    for token in &settings.additional_special_tokens {
        special_values.insert(token.clone(), id_of(token, "additional_special_tokens")?);
    }
    Ok(special_values)
}

/// Vocabulary entries that contain a character `prenormalise` rewrites to a stand-in, under the
/// rewritten spelling, with the same id.
fn stand_in_aliases(values: &HashMap<String, i64>) -> Vec<(String, i64)> {
    values
        .iter()
        .filter(|(token, _)| token.chars().any(|c| matches!(fix(c), Some(Fix::Alias | Fix::PunctAlias))))
        .map(|(token, &id)| {
            let alias = token
                .chars()
                .map(|c| match fix(c) {
                    Some(Fix::Alias | Fix::PunctAlias) => stand_in(c),
                    _ => c,
                })
                .collect();
            (alias, id)
        })
        .collect()
}

/// rust_tokenizers' vocabulary with HF's special-token map.
fn bert_vocab(
    values: HashMap<String, i64>,
    indices: HashMap<i64, String>,
    special_values: HashMap<String, i64>,
    settings: &Settings,
) -> BertVocab {
    let special_indices = special_values.iter().map(|(token, &id)| (id, token.clone())).collect();
    let mut vocab =
        BertVocab { values, indices, special_token_map: Default::default(), special_values, special_indices };
    vocab.special_token_map.unk_token = settings.unk_token.clone();
    vocab.special_token_map.sep_token = Some(settings.sep_token.clone());
    vocab.special_token_map.pad_token = Some(settings.pad_token.clone());
    vocab.special_token_map.cls_token = Some(settings.cls_token.clone());
    vocab.special_token_map.mask_token = Some(settings.mask_token.clone());
    if !settings.additional_special_tokens.is_empty() {
        vocab.special_token_map.additional_special_tokens =
            Some(settings.additional_special_tokens.iter().cloned().collect());
    }
    vocab
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_lines_end_as_pythons_universal_newlines() {
        fn lines(t: &str) -> Vec<&str> {
            vocab_lines(t).collect()
        }
        assert_eq!(lines("a\nb\n"), ["a", "b"]);
        assert_eq!(lines("a\r\nb\r\n"), ["a", "b"]);
        assert_eq!(lines("a\rb\r"), ["a", "b"]);
        assert_eq!(lines("a\r\rb"), ["a", "", "b"]);
        assert_eq!(lines("a\n\nb"), ["a", "", "b"]);
        assert!(lines("").is_empty());
    }
}
