//! Any `tokenizer.json` (byte-level BPE, SentencePiece unigram, WordPiece, with their normalizers,
//! pre-tokenizers and post-processors) through Hugging Face's own `tokenizers` crate, the Rust code
//! under Python `tokenizers`, so ids are the ones transformers' fast tokenizers give.
//!
//! Truncation is HF's `truncation=True, max_length=N` (`longest_first`, right side): the crate's
//! own `truncate_encodings` on the texts' tokens with `N` less the post-processor's added tokens,
//! then the post-processor (`<s> A </s></s> B </s>`, `[CLS] A [SEP] B [SEP]`, ...), the steps of
//! `TokenizerImpl::post_process` with the length given per call instead of stored in the tokenizer.
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tokenizers::{
    truncate_encodings, PostProcessor, TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::special::Family;
use super::tokenizer_json::TOKENIZER_FILE;
use super::{tokenizer_error, Encoding};
use crate::Result;

/// A tokenizer read from a folder's `tokenizer.json` by the `tokenizers` crate.
pub struct JsonTokenizer {
    inner: tokenizers::Tokenizer,
    dir: PathBuf,
    pub(super) cls_token_id: Option<i64>,
    pub(super) sep_token_id: Option<i64>,
    pub(super) pad_token_id: i64,
    /// Largest id (added tokens included) + 1.
    pub(super) vocab_size: usize,
    pub(super) model_max_length: Option<usize>,
}

impl JsonTokenizer {
    /// Reads `dir/tokenizer.json`; the special tokens and `model_max_length` come from `family`
    /// (`tokenizer_config.json` and friends). A file the crate cannot read, or a pad token it does
    /// not know, is a tokenizer error naming the file.
    pub(super) fn from_dir(dir: &Path, family: &Family) -> Result<Self> {
        let path = dir.join(TOKENIZER_FILE);
        let mut inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| tokenizer_error(&path, format!("the tokenizers crate cannot read it: {e}")))?;
        // transformers overrides what the file stores with the call's settings; so does `encode`.
        inner.with_truncation(None).map_err(|e| tokenizer_error(&path, e.to_string()))?;
        inner.with_padding(None);
        let id_of = |token: &Option<String>, key: &str| -> Result<Option<i64>> {
            let Some(token) = token else { return Ok(None) };
            match inner.token_to_id(token) {
                Some(id) => Ok(Some(id as i64)),
                None => Err(tokenizer_error(&path, format!("{key} {token:?} is not in the vocabulary"))),
            }
        };
        let cls_token_id = id_of(&family.cls_token, "cls_token")?;
        let sep_token_id = id_of(&family.sep_token, "sep_token")?;
        let pad_token_id = id_of(&family.pad_token, "pad_token")?.ok_or_else(|| {
            tokenizer_error(
                dir.join(super::CONFIG_FILE),
                "no pad_token (batches are padded with it; set 'pad_token' in tokenizer_config.json)",
            )
        })?;
        let vocab_size = inner.get_vocab(true).values().max().map_or(0, |&id| id as usize + 1);
        if vocab_size == 0 {
            return Err(tokenizer_error(&path, "the vocabulary is empty"));
        }
        let tokenizer = JsonTokenizer {
            inner,
            dir: dir.to_path_buf(),
            cls_token_id,
            sep_token_id,
            pad_token_id,
            vocab_size,
            model_max_length: family.model_max_length,
        };
        // The model's own failures (an unknown-token name missing from the vocabulary, ...) show
        // on the first text; found here they are a load error, not a failure mid-run.
        tokenizer.try_encode("Hello, world! 123", Some("x"), 16)?;
        Ok(tokenizer)
    }

    /// `tokenizer(text, text_pair, truncation=True, max_length=max_length)`.
    ///
    /// # Panics
    /// Only if the `tokenizers` crate fails on a text after it encoded `from_dir`'s probe (the
    /// crate's models fail on their configuration, not on text).
    pub fn encode(&self, text: &str, text_pair: Option<&str>, max_length: usize) -> Encoding {
        self.try_encode(text, text_pair, max_length).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Many texts (or pairs) on rayon's threads; the same output as [`Self::encode`].
    pub fn encode_batch(
        &self,
        texts: &[&str],
        text_pairs: Option<&[&str]>,
        max_length: usize,
    ) -> Vec<Encoding> {
        match text_pairs {
            None => texts.par_iter().map(|t| self.encode(t, None, max_length)).collect(),
            Some(pairs) => {
                assert_eq!(
                    pairs.len(),
                    texts.len(),
                    "encode_batch: {} texts but {} pairs",
                    texts.len(),
                    pairs.len()
                );
                texts.par_iter().zip(pairs).map(|(t, p)| self.encode(t, Some(p), max_length)).collect()
            }
        }
    }

    fn try_encode(&self, text: &str, text_pair: Option<&str>, max_length: usize) -> Result<Encoding> {
        let fail = |e: tokenizers::Error| tokenizer_error(self.dir.join(TOKENIZER_FILE), e.to_string());
        // Each text alone, no special tokens (as `encode_single_sequence`); B has type id 1.
        let first = self.inner.encode_fast(text, false).map_err(fail)?;
        let second = match text_pair {
            Some(pair) => {
                let mut second = self.inner.encode_fast(pair, false).map_err(fail)?;
                second.set_type_ids(vec![1; second.len()]);
                Some(second)
            }
            None => None,
        };
        let added = self.added_tokens(second.is_some());
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_length.saturating_sub(added),
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (first, second) = truncate_encodings(first, second, &params).map_err(fail)?;
        let encoding = self.inner.post_process(first, second, true).map_err(fail)?;
        let input_ids = encoding.get_ids().iter().map(|&id| id as i64).collect();
        let token_type_ids = encoding.get_type_ids().iter().map(|&id| id as i64).collect();
        Ok(Encoding { input_ids, token_type_ids })
    }

    /// The special tokens the post-processor adds to one text or a pair (none without one).
    pub fn added_tokens(&self, is_pair: bool) -> usize {
        self.inner.get_post_processor().map_or(0, |p| p.added_tokens(is_pair))
    }

    /// The folder the tokenizer was read from.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}
