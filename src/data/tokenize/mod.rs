//! Tokenization that gives exactly what transformers' tokenizer gives for
//! `tokenizer(text, text_pair, truncation=True, max_length=N)` (transformers 5.x, where every
//! tokenizer is the `tokenizers`-backed fast one). [`Tokenizer`] (`tokenizer.rs`) is the one type
//! the rest of bertfit uses; it reads a folder's `tokenizer.json` through Hugging Face's own
//! `tokenizers` crate (`hf_json.rs`: RoBERTa, XLM-R, DeBERTa-v3, ModernBERT, ...) unless the folder
//! is plain BERT WordPiece with a `vocab.txt`, which takes the proven path below.
//!
//! BERT WordPiece from `vocab.txt`: the work is done by `rust_tokenizers`' `BertTokenizer`; this wrapper fixes where it differs from
//! HF (measured over every Unicode scalar value, see `tests/tokenize.rs`):
//! - character classes: HF's `tokenizers` classifies characters with old Unicode tables
//!   (`unicode_categories`) and decompositions, `rust_tokenizers` with newer ones, so about 620
//!   newer punctuation marks, nonspacing marks, format characters and decomposable letters, and
//!   256 ideographs `rust_tokenizers` counts as CJK, are split, stripped, decomposed or deleted by
//!   `rust_tokenizers` where HF keeps them inside the word as they are. They are rewritten to
//!   stand-ins that `rust_tokenizers` keeps, with vocabulary aliases (`hf_fixes.rs`);
//! - U+2028/U+2029 are whitespace for HF only;
//! - `rust_tokenizers` splits on punctuation before it strips accents, HF after, which matters for
//!   the four characters whose decomposition is ASCII punctuation (`≠` is `=` + U+0338);
//! - pair truncation: HF's `longest_first` splits the budget in one step (`truncate_pair`),
//!   `rust_tokenizers` removes one token at a time and ends one token off when both texts are long.
//!
//! What already agrees and is left alone: control characters and zero-width characters (U+200B,
//! U+200D, U+FEFF: deleted by both), U+00A0 / U+3000 and the rest of Unicode whitespace, unassigned
//! code points ([UNK]), emoji and ZWJ sequences, CJK, Greek final sigma (both lower-case `Σ` to `σ`,
//! where the legacy Python tokenizer gives `ς`), words over 100 characters ([UNK]), special tokens
//! written in the text (`[MASK]` stays one token, `[mask]` does not), empty or whitespace-only text
//! (`[CLS] [SEP]`).
//!
//! Rooms: `tokenizer.rs` the backend rule; `hf_json.rs` the `tokenizers` crate path; `special.rs`
//! the special tokens and token types any family reads from `tokenizer_config.json`; `vocab.rs`
//! reads `vocab.txt` (and `config.rs` `tokenizer_config.json`) into a [`WordPieceTokenizer`]; `encode.rs` encodes and truncates; `hf_fixes.rs` holds the rewrites above;
//! `wordpiece_ascii.rs` the fast path for plain ASCII text; `files.rs` the tokenizer's files in a
//! model folder; `tokenizer_json.rs` the `tokenizer.json` written beside them for transformers.
mod config;
mod encode;
mod files;
mod hf_fixes;
mod hf_json;
mod special;
mod tokenizer;
mod tokenizer_json;
mod vocab;
mod wordpiece_ascii;

use std::path::PathBuf;

use rust_tokenizers::tokenizer::BertTokenizer as RtBertTokenizer;

use crate::Error;
use wordpiece_ascii::AsciiWordPiece;

pub use encode::{truncate_pair, validate_max_length};
pub use hf_json::JsonTokenizer;
pub use tokenizer::{check_vocab, Tokenizer};
pub use tokenizer_json::TOKENIZER_FILE;
pub use vocab::vocab_lines;

/// One encoded text (or pair): `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`. The attention mask is
/// all ones over `input_ids`; padding is the collator's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub input_ids: Vec<i64>,
    /// 0 over `[CLS] A [SEP]`, 1 over `B [SEP]`.
    pub token_type_ids: Vec<i64>,
}

/// The files an HF model folder keeps its tokenizer in (what `save_files` copies).
pub const VOCAB_FILE: &str = "vocab.txt";
pub const CONFIG_FILE: &str = "tokenizer_config.json";
pub const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";

/// An HF BERT WordPiece tokenizer read from a model folder's `vocab.txt` (the proven path that
/// [`Tokenizer`] takes for BERT folders).
pub struct WordPieceTokenizer {
    inner: RtBertTokenizer,
    /// Where `vocab.txt` and friends were read from (`save_files` copies them).
    pub(super) dir: PathBuf,
    do_lower_case: bool,
    strip_accents: bool,
    model_max_length: Option<usize>,
    cls_token_id: i64,
    sep_token_id: i64,
    pad_token_id: i64,
    /// Largest id in `vocab.txt` + 1 (the number of embedding rows the ids need).
    vocab_size: usize,
    /// The fast path for plain ASCII single texts; `None` when extra special tokens could occur
    /// in the text (they are matched before normalisation, which only the full path does).
    ascii: Option<AsciiWordPiece>,
}

impl WordPieceTokenizer {
    pub fn pad_token_id(&self) -> i64 {
        self.pad_token_id
    }
    pub fn cls_token_id(&self) -> i64 {
        self.cls_token_id
    }
    pub fn sep_token_id(&self) -> i64 {
        self.sep_token_id
    }
    /// Largest token id + 1 (the embedding rows the ids index).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    /// `model_max_length` of `tokenizer_config.json`; `None` when absent or HF's "no limit" (1e30).
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }
    pub fn do_lower_case(&self) -> bool {
        self.do_lower_case
    }
    pub fn strip_accents(&self) -> bool {
        self.strip_accents
    }
}

fn tokenizer_error(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    Error::Tokenizer { path: path.into(), msg: msg.into() }
}
