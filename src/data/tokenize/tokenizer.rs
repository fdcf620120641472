//! The one tokenizer the rest of bertfit uses, and the rule that picks its backend:
//! - a folder whose `tokenizer.json` is plain BERT WordPiece (`WordPiece` model, `BertNormalizer`,
//!   `BertPreTokenizer`, the same vocabulary as its `vocab.txt`), or that has `vocab.txt` and no
//!   `tokenizer.json`, uses the proven `vocab.txt` path ([`WordPieceTokenizer`]: rust_tokenizers
//!   with HF's fixes and the ASCII fast path, tests/tokenize.rs);
//! - any other folder with `tokenizer.json` (byte-level BPE, unigram, WordPiece without `vocab.txt`)
//!   uses Hugging Face's `tokenizers` crate ([`JsonTokenizer`]).
//!
//! Token type ids are given as transformers gives them: only when the tokenizer's
//! `model_input_names` hold `token_type_ids` (BERT, ELECTRA, DeBERTa); RoBERTa, XLM-R, DistilBERT
//! and ModernBERT return none, and bertfit gives all zeros (`special.rs` says which is which).
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::hf_json::JsonTokenizer;
use super::special::read_family;
use super::tokenizer_json::TOKENIZER_FILE;
use super::vocab::read_vocab;
use super::{tokenizer_error, Encoding, WordPieceTokenizer, VOCAB_FILE};
use crate::model::BertConfig;
use crate::Result;

/// A tokenizer read from an HF model folder (see the module doc for which backend).
pub struct Tokenizer {
    backend: Backend,
    /// Whether `token_type_ids` are kept (else zeroed, as for a family that has none).
    token_types: bool,
}

enum Backend {
    WordPiece(Box<WordPieceTokenizer>),
    Json(Box<JsonTokenizer>),
}

impl Tokenizer {
    /// Reads the tokenizer of an HF model folder: `tokenizer.json` through the `tokenizers` crate,
    /// or `vocab.txt` (see the module doc), with `tokenizer_config.json` / `special_tokens_map.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let family = read_family(dir)?;
        let backend = if uses_vocab_txt(dir) {
            Backend::WordPiece(Box::new(WordPieceTokenizer::from_dir(dir)?))
        } else {
            Backend::Json(Box::new(JsonTokenizer::from_dir(dir, &family)?))
        };
        // Nothing said: a vocab.txt folder is BERT's (token types), a tokenizer.json one is
        // transformers' `TokenizersBackend` (none).
        let token_types = family.token_types.unwrap_or(matches!(backend, Backend::WordPiece(_)));
        Ok(Tokenizer { backend, token_types })
    }

    /// `tokenizer(text, text_pair, truncation=True, max_length=max_length)` (HF's `longest_first`).
    ///
    /// # Panics
    /// If `max_length` cannot hold the special tokens: see [`Self::check_max_length`].
    pub fn encode(&self, text: &str, text_pair: Option<&str>, max_length: usize) -> Encoding {
        let encoding = match &self.backend {
            Backend::WordPiece(t) => t.encode(text, text_pair, max_length),
            Backend::Json(t) => {
                let pair = text_pair.is_some();
                super::encode::assert_max_length(max_length, self.added_tokens(pair), pair);
                t.encode(text, text_pair, max_length)
            }
        };
        self.types(encoding)
    }

    /// Many texts (or pairs) at once on rayon's threads; the same output as [`Self::encode`].
    pub fn encode_batch(
        &self,
        texts: &[&str],
        text_pairs: Option<&[&str]>,
        max_length: usize,
    ) -> Vec<Encoding> {
        let encodings = match &self.backend {
            Backend::WordPiece(t) => t.encode_batch(texts, text_pairs, max_length),
            Backend::Json(t) => {
                let pairs = text_pairs.is_some();
                super::encode::assert_max_length(max_length, self.added_tokens(pairs), pairs);
                t.encode_batch(texts, text_pairs, max_length)
            }
        };
        encodings.into_iter().map(|e| self.types(e)).collect()
    }

    /// How many special tokens the tokenizer adds to one text (`is_pair` false) or a pair: BERT's
    /// `[CLS] A [SEP] B [SEP]` 3, RoBERTa's `<s> A </s></s> B </s>` 4 (the post-processor's
    /// `added_tokens`, as `tokenizers` counts them when it truncates).
    pub fn added_tokens(&self, is_pair: bool) -> usize {
        match &self.backend {
            Backend::WordPiece(_) => WordPieceTokenizer::added_tokens(is_pair),
            Backend::Json(t) => t.added_tokens(is_pair),
        }
    }

    /// Refuses a `--max-length` that cannot hold the special tokens this tokenizer adds to a text
    /// (or, with `pairs`, to a sentence pair): see [`super::validate_max_length`].
    pub fn check_max_length(&self, max_length: usize, pairs: bool) -> Result<()> {
        super::validate_max_length(max_length, self.added_tokens(pairs), pairs)
    }

    fn types(&self, mut encoding: Encoding) -> Encoding {
        if !self.token_types {
            encoding.token_type_ids.fill(0);
        }
        encoding
    }

    /// The id batches are padded with.
    pub fn pad_token_id(&self) -> i64 {
        match &self.backend {
            Backend::WordPiece(t) => t.pad_token_id(),
            Backend::Json(t) => t.pad_token_id,
        }
    }
    /// The classifier token's id (`[CLS]`, `<s>`), if the tokenizer has one.
    pub fn cls_token_id(&self) -> Option<i64> {
        match &self.backend {
            Backend::WordPiece(t) => Some(t.cls_token_id()),
            Backend::Json(t) => t.cls_token_id,
        }
    }
    /// The separator's id (`[SEP]`, `</s>`), if the tokenizer has one.
    pub fn sep_token_id(&self) -> Option<i64> {
        match &self.backend {
            Backend::WordPiece(t) => Some(t.sep_token_id()),
            Backend::Json(t) => t.sep_token_id,
        }
    }
    /// Largest token id + 1 (the embedding rows the ids index).
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::WordPiece(t) => t.vocab_size(),
            Backend::Json(t) => t.vocab_size,
        }
    }
    /// `model_max_length` of `tokenizer_config.json`; `None` when absent or HF's "no limit" (1e30).
    pub fn model_max_length(&self) -> Option<usize> {
        match &self.backend {
            Backend::WordPiece(t) => t.model_max_length(),
            Backend::Json(t) => t.model_max_length,
        }
    }
    /// Whether encodings carry token type ids (else they are all zero).
    pub fn has_token_types(&self) -> bool {
        self.token_types
    }
    /// Whether the `tokenizers` crate reads this folder's `tokenizer.json` (else `vocab.txt`).
    pub fn uses_tokenizer_json(&self) -> bool {
        matches!(self.backend, Backend::Json(_))
    }
    /// The file that holds the vocabulary (`vocab.txt` or `tokenizer.json`): errors about the
    /// vocabulary name it.
    pub fn vocab_file(&self) -> PathBuf {
        match &self.backend {
            Backend::WordPiece(t) => t.vocab_path(),
            Backend::Json(t) => t.dir().join(TOKENIZER_FILE),
        }
    }
    /// The tokenizer files of the model folder that exist: what tokenization depends on (the
    /// token cache hashes them). `tokenizer.json` is one: it decides the backend.
    pub fn files(&self) -> Vec<PathBuf> {
        let (dir, mut files) = match &self.backend {
            Backend::WordPiece(t) => (t.dir.clone(), t.files()),
            Backend::Json(t) => (t.dir().to_path_buf(), t.files()),
        };
        let json = dir.join(TOKENIZER_FILE);
        if json.exists() && !files.contains(&json) {
            files.push(json);
        }
        files
    }
    /// Copies the tokenizer files into a saved model folder `out` so that transformers'
    /// `AutoTokenizer` loads the same tokenizer from it.
    pub fn save_files(&self, out: &Path) -> Result<()> {
        match &self.backend {
            Backend::WordPiece(t) => t.save_files(out),
            Backend::Json(t) => t.save_files(out),
        }
    }
}

/// Whether `dir` takes the `vocab.txt` path: it has `vocab.txt` and either no `tokenizer.json` or
/// one that is plain BERT WordPiece over the same vocabulary. A `tokenizer.json` that cannot be
/// read goes to the `tokenizers` crate, whose error names it. (Neither file: the `vocab.txt` path,
/// whose error names the missing `vocab.txt`.)
fn uses_vocab_txt(dir: &Path) -> bool {
    let json_path = dir.join(TOKENIZER_FILE);
    let vocab_path = dir.join(VOCAB_FILE);
    if !json_path.exists() {
        return true;
    }
    if !vocab_path.exists() {
        return false;
    }
    let Some(json) =
        std::fs::read_to_string(&json_path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        return false;
    };
    let kind = |key: &str| json.get(key).and_then(|v| v.get("type")).and_then(Value::as_str);
    if kind("model") != Some("WordPiece")
        || kind("normalizer") != Some("BertNormalizer")
        || kind("pre_tokenizer") != Some("BertPreTokenizer")
    {
        return false;
    }
    let Ok(vocab_txt) = read_vocab(&vocab_path) else { return false };
    let same = |vocab: &serde_json::Map<String, Value>| {
        vocab.len() == vocab_txt.len()
            && vocab.iter().all(|(token, id)| id.as_i64().is_some_and(|id| vocab_txt.get(token) == Some(&id)))
    };
    json["model"].get("vocab").and_then(Value::as_object).is_some_and(same)
}

/// Refuses a tokenizer whose ids do not all have a row in the model's embedding: a vocabulary
/// larger than `config_file`'s `vocab_size` would give ids the embedding lookup cannot take
/// (libtorch aborts on an out-of-range index). Call it wherever a tokenizer and a config meet
/// (train, predict). A smaller vocabulary is fine (HF pads vocabularies).
pub fn check_vocab(tokenizer: &Tokenizer, config: &BertConfig, config_file: &Path) -> Result<()> {
    let ids = tokenizer.vocab_size() as u64;
    if config.vocab_size < 0 || ids > config.vocab_size as u64 {
        return Err(tokenizer_error(
            tokenizer.vocab_file(),
            format!(
                "the vocabulary has {ids} entries but {} says 'vocab_size' is {}: token ids from \
                 {} up would have no embedding row; the two files belong to different models",
                config_file.display(),
                config.vocab_size,
                config.vocab_size.max(0)
            ),
        ));
    }
    Ok(())
}
