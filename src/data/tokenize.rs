//! BERT WordPiece tokenization that gives exactly what transformers' `BertTokenizer` gives for
//! `tokenizer(text, text_pair, truncation=True, max_length=N)` (transformers 5.x, where
//! `BertTokenizer` is the `tokenizers`-backed fast tokenizer).
//!
//! The work is done by `rust_tokenizers`' `BertTokenizer`; this wrapper fixes where it differs from
//! HF (measured over every Unicode scalar value, see `tests/tokenize.rs`):
//! - character classes: HF's `tokenizers` classifies characters with old Unicode tables
//!   (`unicode_categories`) and decompositions, `rust_tokenizers` with newer ones, so about 620
//!   newer punctuation marks, nonspacing marks, format characters and decomposable letters, and
//!   256 ideographs `rust_tokenizers` counts as CJK, are split, stripped, decomposed or deleted by
//!   `rust_tokenizers` where HF keeps them inside the word as they are. They are rewritten to
//!   stand-ins that `rust_tokenizers` keeps, with vocabulary aliases (see [`Fix`]);
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
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rust_tokenizers::tokenizer::{
    BertTokenizer as RtBertTokenizer, MultiThreadedTokenizer, Tokenizer, TruncationStrategy,
};
use rust_tokenizers::vocab::BertVocab;
use rust_tokenizers::TokenizedInput;
use serde_json::Value;

use rayon::prelude::*;

use super::wordpiece_ascii::AsciiWordPiece;
use crate::model::BertConfig;
use crate::output::{hooks, write_atomic};
use crate::{Error, Result};

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

/// An HF BERT tokenizer read from a model folder.
pub struct BertTokenizer {
    inner: RtBertTokenizer,
    /// Where `vocab.txt` and friends were read from (`save_files` copies them).
    dir: PathBuf,
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

/// The tokenizer settings of `tokenizer_config.json`, with HF's defaults.
struct Settings {
    do_lower_case: bool,
    /// `None` (JSON null or absent) follows `do_lower_case`, as in HF.
    strip_accents: Option<bool>,
    model_max_length: Option<usize>,
    unk_token: String,
    sep_token: String,
    pad_token: String,
    cls_token: String,
    mask_token: String,
    /// `additional_special_tokens` / `extra_special_tokens`: matched in the raw text like `[MASK]`.
    additional_special_tokens: Vec<String>,
    /// `added_tokens_decoder`: (id, content), checked against the vocabulary.
    added_tokens: Vec<(i64, String)>,
}

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

impl BertTokenizer {
    /// Reads `vocab.txt` and `tokenizer_config.json` (optional) from an HF model folder:
    /// `do_lower_case` (default true), `strip_accents` (null follows `do_lower_case`, as HF),
    /// `tokenize_chinese_chars` (only true is supported), `model_max_length`, the special tokens.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let settings = read_settings(&dir.join(CONFIG_FILE))?;
        let vocab_path = dir.join(VOCAB_FILE);
        let text = std::fs::read_to_string(&vocab_path)
            .map_err(|e| tokenizer_error(&vocab_path, format!("cannot read the vocabulary: {e}")))?;

        // As `tokenizers`' WordPiece::read_file: one token per line, trailing whitespace trimmed,
        // id = line number, a repeated token keeps its last line. Lines end as transformers'
        // `load_vocab` reads them (Python's universal newlines): "\n", "\r\n" or a lone "\r".
        if let Some(first) = text.strip_prefix('\u{feff}') {
            let token = first.split(['\r', '\n']).next().unwrap_or_default();
            return Err(tokenizer_error(
                &vocab_path,
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

        // Vocabulary entries that contain a character `prenormalise` rewrites to a stand-in are
        // also entered under the rewritten spelling, with the same id.
        let aliases: Vec<(String, i64)> = values
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
            .collect();
        let indices = values.iter().map(|(token, &id)| (id, token.clone())).collect();
        let ascii = settings.additional_special_tokens.is_empty().then(|| {
            AsciiWordPiece::new(values.clone(), special_values[&settings.unk_token], settings.do_lower_case)
        });
        values.extend(aliases);

        let special_indices = special_values.iter().map(|(token, &id)| (id, token.clone())).collect();
        let mut vocab = BertVocab {
            values,
            indices,
            special_token_map: Default::default(),
            special_values,
            special_indices,
        };
        vocab.special_token_map.unk_token = settings.unk_token.clone();
        vocab.special_token_map.sep_token = Some(settings.sep_token.clone());
        vocab.special_token_map.pad_token = Some(settings.pad_token.clone());
        vocab.special_token_map.cls_token = Some(settings.cls_token.clone());
        vocab.special_token_map.mask_token = Some(settings.mask_token.clone());
        if !settings.additional_special_tokens.is_empty() {
            vocab.special_token_map.additional_special_tokens =
                Some(settings.additional_special_tokens.iter().cloned().collect());
        }

        let strip_accents = settings.strip_accents.unwrap_or(settings.do_lower_case);
        Ok(BertTokenizer {
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

    /// `tokenizer(text, text_pair, truncation=True, max_length=max_length)`. `Some("")` as the pair
    /// is a pair with an empty second text (`[CLS] A [SEP] [SEP]`), as in HF's batched call (HF's
    /// single call treats an empty `text_pair` as absent).
    ///
    /// # Panics
    /// If `max_length` is below 2 (3 for a pair): see [`validate_max_length`].
    pub fn encode(&self, text: &str, text_pair: Option<&str>, max_length: usize) -> Encoding {
        assert_max_length(max_length, text_pair.is_some());
        if text_pair.is_none() {
            if let Some(ids) = self.ascii.as_ref().and_then(|a| a.encode(text)) {
                return self.single(ids, max_length);
            }
        }
        // No truncation here: `finish` truncates as HF does.
        let text = self.prenormalise(text);
        let text_pair = text_pair.map(|t| self.prenormalise(t));
        let tokenized = Tokenizer::encode(
            &self.inner,
            &text,
            text_pair.as_deref(),
            usize::MAX,
            &TruncationStrategy::DoNotTruncate,
            0,
        );
        self.finish(tokenized, text_pair.is_some(), max_length)
    }

    /// Many texts (or pairs) at once on rayon's threads; the same output as [`Self::encode`].
    ///
    /// # Panics
    /// If `text_pairs` is not as long as `texts`, or `max_length` is below 2 (3 for pairs).
    pub fn encode_batch(
        &self,
        texts: &[&str],
        text_pairs: Option<&[&str]>,
        max_length: usize,
    ) -> Vec<Encoding> {
        assert_max_length(max_length, text_pairs.is_some());
        if text_pairs.is_none() && self.ascii.is_some() {
            return self.encode_batch_ascii_first(texts, max_length);
        }
        let first: Vec<Cow<str>> = texts.iter().map(|t| self.prenormalise(t)).collect();
        let tokenized = match text_pairs {
            None => MultiThreadedTokenizer::encode_list(
                &self.inner,
                &first,
                usize::MAX,
                &TruncationStrategy::DoNotTruncate,
                0,
            ),
            Some(pairs) => {
                assert_eq!(
                    pairs.len(),
                    texts.len(),
                    "encode_batch: {} texts but {} text pairs",
                    texts.len(),
                    pairs.len()
                );
                let pairs: Vec<(Cow<str>, Cow<str>)> =
                    first.into_iter().zip(pairs.iter().map(|t| self.prenormalise(t))).collect();
                MultiThreadedTokenizer::encode_pair_list(
                    &self.inner,
                    &pairs,
                    usize::MAX,
                    &TruncationStrategy::DoNotTruncate,
                    0,
                )
            }
        };
        let is_pair = text_pairs.is_some();
        tokenized.into_iter().map(|t| self.finish(t, is_pair, max_length)).collect()
    }

    /// Single texts: the ASCII fast path on all cores, the full path for the others.
    fn encode_batch_ascii_first(&self, texts: &[&str], max_length: usize) -> Vec<Encoding> {
        let fast: Vec<Option<Vec<i64>>> =
            texts.par_iter().map(|t| self.ascii.as_ref().and_then(|a| a.encode(t))).collect();
        let rest: Vec<&str> = texts.iter().zip(&fast).filter(|(_, f)| f.is_none()).map(|(t, _)| *t).collect();
        let mut slow = if rest.is_empty() {
            Vec::new()
        } else {
            let first: Vec<Cow<str>> = rest.iter().map(|t| self.prenormalise(t)).collect();
            MultiThreadedTokenizer::encode_list(
                &self.inner,
                &first,
                usize::MAX,
                &TruncationStrategy::DoNotTruncate,
                0,
            )
        }
        .into_iter();
        fast.into_iter()
            .map(|f| match f {
                Some(ids) => self.single(ids, max_length),
                None => slow
                    .next()
                    .map(|t| self.finish(t, false, max_length))
                    .unwrap_or_else(|| self.single(Vec::new(), max_length)),
            })
            .collect()
    }

    /// `[CLS] ids [SEP]`, the ids truncated to `max_length - 2`.
    fn single(&self, mut ids: Vec<i64>, max_length: usize) -> Encoding {
        ids.truncate(max_length - 2);
        let mut input_ids = Vec::with_capacity(ids.len() + 2);
        input_ids.push(self.cls_token_id);
        input_ids.extend(ids);
        input_ids.push(self.sep_token_id);
        let token_type_ids = vec![0; input_ids.len()];
        Encoding { input_ids, token_type_ids }
    }

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

    /// The tokenizer files of the model folder (those that exist): what tokenization depends on.
    pub fn files(&self) -> Vec<PathBuf> {
        [VOCAB_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE]
            .iter()
            .map(|f| self.dir.join(f))
            .filter(|p| p.exists())
            .collect()
    }

    /// Copies the tokenizer files (`vocab.txt`, `tokenizer_config.json`, `special_tokens_map.json`
    /// when present) into `out`, so the saved model folder loads in transformers. A folder that had
    /// no `tokenizer_config.json` gets one with the settings used here.
    pub fn save_files(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        for name in [VOCAB_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE] {
            let (src, dst) = (self.dir.join(name), out.join(name));
            if !src.exists() {
                continue;
            }
            if same_file(&src, &dst) {
                continue; // saving into the folder it was read from: the file is already there
            }
            // Read whole and written atomically (the files are small): a full disk leaves no
            // half-copied vocabulary.
            let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
            write_atomic(&dst, &bytes)?;
            hooks::save_point(name);
        }
        let config = out.join(CONFIG_FILE);
        if !self.dir.join(CONFIG_FILE).exists() {
            let mut json = serde_json::json!({
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": self.do_lower_case,
                "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": true,
            });
            if let Some(n) = self.model_max_length {
                json["model_max_length"] = n.into();
            }
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            write_atomic(&config, (text + "\n").as_bytes())?;
            hooks::save_point(CONFIG_FILE);
        }
        Ok(())
    }

    /// The `vocab.txt` this tokenizer was read from.
    pub fn vocab_path(&self) -> PathBuf {
        self.dir.join(VOCAB_FILE)
    }

    /// Rewrites the few characters that `rust_tokenizers` handles unlike HF (see [`Fix`]).
    /// Borrows the text unchanged (no allocation) when it has none of them, which is almost always.
    fn prenormalise<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(first) = first_fix(text, self.strip_accents) else {
            return Cow::Borrowed(text);
        };
        let mut out = String::with_capacity(text.len() + 16);
        out.push_str(&text[..first]);
        for c in text[first..].chars() {
            match fix(c) {
                None => out.push(c),
                Some(Fix::Space) => out.push(' '),
                Some(Fix::Alias) => out.push(stand_in(c)),
                Some(Fix::PunctAlias) => {
                    out.push(' ');
                    out.push(stand_in(c));
                    out.push(' ');
                }
                Some(Fix::Decompose(base)) if self.strip_accents => out.push(base),
                Some(Fix::Decompose(_)) => out.push(c),
            }
        }
        Cow::Owned(out)
    }

    /// `[CLS] A [SEP] (B [SEP])` from `rust_tokenizers`' untruncated output, truncated as HF does.
    fn finish(&self, tokenized: TokenizedInput, is_pair: bool, max_length: usize) -> Encoding {
        let ids = tokenized.token_ids;
        if !is_pair {
            // ids = [CLS] A [SEP]
            let len_a = (ids.len() - 2).min(max_length - 2);
            let mut input_ids = Vec::with_capacity(len_a + 2);
            input_ids.extend_from_slice(&ids[..len_a + 1]);
            input_ids.push(self.sep_token_id);
            let token_type_ids = vec![0; input_ids.len()];
            return Encoding { input_ids, token_type_ids };
        }
        // ids = [CLS] A [SEP] B [SEP]; segment 0 covers [CLS] A [SEP].
        let first_len = tokenized.segment_ids.iter().take_while(|&&s| s == 0).count();
        let (len_a, len_b) = (first_len - 2, ids.len() - first_len - 1);
        let (keep_a, keep_b) = truncate_pair(len_a, len_b, max_length - 3);
        let mut input_ids = Vec::with_capacity(keep_a + keep_b + 3);
        input_ids.extend_from_slice(&ids[..keep_a + 1]);
        input_ids.push(self.sep_token_id);
        input_ids.extend_from_slice(&ids[first_len..first_len + keep_b]);
        input_ids.push(self.sep_token_id);
        let mut token_type_ids = vec![0; keep_a + 2];
        token_type_ids.resize(input_ids.len(), 1);
        Encoding { input_ids, token_type_ids }
    }
}

/// Refuses a tokenizer whose ids do not all have a row in the model's embedding: a `vocab.txt`
/// with more lines than `config_file`'s `vocab_size` would give ids the embedding lookup cannot
/// take (libtorch aborts on an out-of-range index). Call it wherever a tokenizer and a config
/// meet (train, predict). Fewer lines than `vocab_size` are fine (HF pads vocabularies).
pub fn check_vocab(tokenizer: &BertTokenizer, config: &BertConfig, config_file: &Path) -> Result<()> {
    let ids = tokenizer.vocab_size() as u64;
    if config.vocab_size < 0 || ids > config.vocab_size as u64 {
        return Err(tokenizer_error(
            tokenizer.vocab_path(),
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

/// Checks a `max_length` before encoding: `[CLS] [SEP]` need 2 positions, a pair 3.
pub fn validate_max_length(max_length: usize, pairs: bool) -> Result<()> {
    let least = if pairs { 3 } else { 2 };
    if max_length < least {
        let what =
            if pairs { "[CLS] A [SEP] B [SEP] needs at least 3" } else { "[CLS] [SEP] needs at least 2" };
        return Err(Error::usage("max_length", format!("{max_length} is too small: {what}")));
    }
    Ok(())
}

fn assert_max_length(max_length: usize, pairs: bool) {
    if let Err(e) = validate_max_length(max_length, pairs) {
        panic!("{e}");
    }
}

/// How many tokens of A and B HF's `longest_first` keeps in `budget` positions (tokenizers'
/// `truncate_encodings`): the shorter text is kept whole if the longer one can take the rest,
/// otherwise both get half, the longer one (B on a tie) the odd token. Removing one token at a time
/// from the longer text, as `rust_tokenizers` does, gives A the odd token instead.
pub fn truncate_pair(len_a: usize, len_b: usize, budget: usize) -> (usize, usize) {
    if len_a + len_b <= budget {
        return (len_a, len_b);
    }
    // As tokenizers, with n1 the shorter text's length.
    let swap = len_a > len_b;
    let mut n1 = len_a.min(len_b);
    let mut n2 = if n1 > budget { n1 } else { n1.max(budget - n1) };
    if n1 + n2 > budget {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    if swap {
        (n2, n1)
    } else {
        (n1, n2)
    }
}

/// What `prenormalise` does to one character so that `rust_tokenizers` treats it as HF does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    /// Whitespace for HF (`char::is_whitespace`), not in `rust_tokenizers`' list: becomes ' '.
    Space,
    /// An ordinary word character for HF (its old tables do not know it), but punctuation, a
    /// CJK ideograph, a format character, an accent or a decomposable letter to `rust_tokenizers`,
    /// which would split, delete, strip or decompose it. Becomes its stand-in, which `rust_tokenizers` keeps inside the word, and
    /// vocabulary entries containing it are also entered with the stand-in (same id). The one
    /// inexactness left: a stand-in code point written in the text itself (planes 4-6 are
    /// unassigned, so real text has none) reads as the character it stands in for.
    Alias,
    /// Punctuation for HF (Po in its old tables), a nonspacing mark to `rust_tokenizers`: becomes
    /// " stand-in " (a word of its own, as HF splits it off).
    PunctAlias,
    /// With accent stripping, HF decomposes (NFD) before it splits on punctuation, and these four
    /// decompose to ASCII punctuation plus a stripped mark; `rust_tokenizers` splits first and
    /// would keep the punctuation inside the word. Becomes the punctuation.
    Decompose(char),
}

/// A code point in planes 4-6, unassigned in every Unicode version so far, that `rust_tokenizers`
/// treats as a plain letter (no case, no decomposition, not punctuation, CJK or control).
fn stand_in(c: char) -> char {
    char::from_u32(0x40000 + c as u32).expect("fix characters are below U+30000")
}

fn fix(c: char) -> Option<Fix> {
    if (c as u32) < FIXES[0].0 {
        return None;
    }
    let i = FIXES.partition_point(|&(start, _, _)| start <= c as u32);
    let (start, end, f) = FIXES[i.checked_sub(1)?];
    (start..=end).contains(&(c as u32)).then_some(f)
}

/// Byte offset of the first character `prenormalise` changes. ASCII never needs a fix, and
/// `is_ascii` checks a word at a time.
fn first_fix(text: &str, strip_accents: bool) -> Option<usize> {
    if text.is_ascii() {
        return None;
    }
    text.char_indices()
        .find(|&(_, c)| match fix(c) {
            None => false,
            Some(Fix::Decompose(_)) => strip_accents,
            Some(_) => true,
        })
        .map(|(i, _)| i)
}

/// Inclusive code point ranges, sorted, found by comparing every Unicode scalar value (alone and
/// inside a word, with a vocabulary that holds every character) between `rust_tokenizers` 8.1.1
/// and `tokenizers` 0.23.3, in all four lower-case / strip-accents settings (`tests/tokenize.rs`,
/// `every_code_point`, checks them with the real vocabulary). Alias: Unicode 10+ nonspacing marks
/// (Mn) and punctuation (Po); format characters U+110CD and U+13430..U+13438; U+2B820..U+2B91F,
/// which `rust_tokenizers` counts as CJK (HF's CJK Extension E range starts at U+2B920); and 21
/// characters (U+105C9 .. U+16D6A) whose canonical decomposition is newer than HF's tables, which
/// `rust_tokenizers` decomposes when it strips accents.
#[rustfmt::skip]
const FIXES: &[(u32, u32, Fix)] = {
    use Fix::{Alias as A, Decompose as D, PunctAlias as P, Space as S};
    &[
        (0x07FD, 0x07FD, A), (0x08D3, 0x08E2, A), (0x09FD, 0x09FD, A), (0x09FE, 0x09FE, A),
        (0x0A76, 0x0A76, A), (0x0AFA, 0x0AFF, A), (0x0C04, 0x0C04, A), (0x0C84, 0x0C84, A),
        (0x0D00, 0x0D00, A), (0x0D3B, 0x0D3C, A), (0x0EBA, 0x0EBA, A), (0x1885, 0x1886, A),
        (0x1DF6, 0x1DF9, A), (0x1DFB, 0x1DFB, A), (0x1FEF, 0x1FEF, D('`')), (0x2028, 0x2029, S),
        (0x2260, 0x2260, D('=')), (0x226E, 0x226E, D('<')), (0x226F, 0x226F, D('>')),
        (0x2E43, 0x2E4E, A), (0xA8C5, 0xA8C5, A), (0xA8FF, 0xA8FF, A), (0xA9BD, 0xA9BD, A),
        (0x105C9, 0x105C9, A), (0x105E4, 0x105E4, A), (0x10D24, 0x10D27, A), (0x10F46, 0x10F50, A),
        (0x10F55, 0x10F59, A), (0x110CD, 0x110CD, A), (0x111C9, 0x111C9, P), (0x1123E, 0x1123E, A),
        (0x1133B, 0x1133B, A), (0x11383, 0x11383, A), (0x11385, 0x11385, A), (0x1138E, 0x1138E, A),
        (0x11391, 0x11391, A), (0x113C5, 0x113C5, A), (0x113C7, 0x113C8, A), (0x11438, 0x1143F, A),
        (0x11442, 0x11444, A), (0x11446, 0x11446, A), (0x1144B, 0x1144F, A), (0x1145B, 0x1145B, A),
        (0x1145D, 0x1145D, A), (0x1145E, 0x1145E, A), (0x11660, 0x1166C, A), (0x1182F, 0x11837, A),
        (0x11839, 0x1183A, A), (0x1183B, 0x1183B, A), (0x11938, 0x11938, A), (0x119D4, 0x119D7, A),
        (0x119DA, 0x119DB, A), (0x119E0, 0x119E0, A), (0x11A01, 0x11A0A, A), (0x11A33, 0x11A38, A),
        (0x11A3B, 0x11A3E, A), (0x11A3F, 0x11A46, A), (0x11A47, 0x11A47, A), (0x11A51, 0x11A56, A),
        (0x11A59, 0x11A5B, A), (0x11A8A, 0x11A96, A), (0x11A98, 0x11A99, A), (0x11A9A, 0x11A9C, A),
        (0x11A9E, 0x11AA2, A), (0x11C30, 0x11C36, A), (0x11C38, 0x11C3D, A), (0x11C3F, 0x11C3F, A),
        (0x11C41, 0x11C45, A), (0x11C70, 0x11C71, A), (0x11C92, 0x11CA7, A), (0x11CAA, 0x11CB0, A),
        (0x11CB2, 0x11CB3, A), (0x11CB5, 0x11CB6, A), (0x11D31, 0x11D36, A), (0x11D3A, 0x11D3A, A),
        (0x11D3C, 0x11D3D, A), (0x11D3F, 0x11D45, A), (0x11D47, 0x11D47, A), (0x11D90, 0x11D91, A),
        (0x11D95, 0x11D95, A), (0x11D97, 0x11D97, A), (0x11EF3, 0x11EF4, A), (0x11EF7, 0x11EF8, A),
        (0x13430, 0x13438, A), (0x16121, 0x16128, A), (0x16D68, 0x16D6A, A), (0x16E97, 0x16E9A, A),
        (0x16F4F, 0x16F4F, A), (0x1E000, 0x1E006, A), (0x1E008, 0x1E018, A), (0x1E01B, 0x1E021, A),
        (0x1E023, 0x1E024, A), (0x1E026, 0x1E02A, A), (0x1E130, 0x1E136, A), (0x1E2EC, 0x1E2EF, A),
        (0x1E944, 0x1E94A, A), (0x1E95E, 0x1E95F, A), (0x2B820, 0x2B91F, A),
    ]
};

fn tokenizer_error(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    Error::Tokenizer { path: path.into(), msg: msg.into() }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reads `tokenizer_config.json`; a missing file means HF's defaults.
fn read_settings(path: &Path) -> Result<Settings> {
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
    let bad = |key: &str, expected: &str, found: &Value| {
        tokenizer_error(path, format!("'{key}' must be {expected}, found {found}"))
    };
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());

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
        // HF writes int(1e30) for "no limit"; anything past 2^32 means the same here.
        settings.model_max_length = match (v.as_u64(), v.as_f64()) {
            (Some(n), _) if n <= u32::MAX as u64 => Some(n as usize),
            (_, Some(x)) if x >= u32::MAX as f64 => None,
            _ => return Err(bad("model_max_length", "a positive integer", v)),
        };
    }
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
    Ok(settings)
}

/// A token written either as a string or as a serialised `AddedToken` (`{"content": ...}`).
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
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

    #[test]
    fn fixes_are_sorted_and_disjoint() {
        for w in FIXES.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{:X?} {:X?}", w[0], w[1]);
        }
        assert!(FIXES.iter().all(|&(_, end, _)| end + 0x40000 < 0x70000));
    }

    #[test]
    fn fix_lookup() {
        assert_eq!(fix('a'), None);
        assert_eq!(fix('é'), None);
        assert_eq!(fix('\u{2028}'), Some(Fix::Space));
        assert_eq!(fix('\u{2029}'), Some(Fix::Space));
        assert_eq!(fix('\u{202A}'), None);
        assert_eq!(fix('≠'), Some(Fix::Decompose('=')));
        assert_eq!(fix('\u{2B820}'), Some(Fix::Alias));
        assert_eq!(fix('\u{2B91F}'), Some(Fix::Alias));
        assert_eq!(fix('\u{2B920}'), None);
        assert_eq!(fix('\u{111C9}'), Some(Fix::PunctAlias));
    }

    #[test]
    fn truncate_pair_as_hf() {
        // tests/tokenize.rs checks every pair of lengths 0..=20 against HF at budgets 13 and 14;
        // a few cases by hand:
        assert_eq!(truncate_pair(3, 4, 10), (3, 4)); // fits
        assert_eq!(truncate_pair(2, 30, 10), (2, 8)); // only the longer one
        assert_eq!(truncate_pair(20, 30, 13), (6, 7)); // both: the longer gets the odd token
        assert_eq!(truncate_pair(30, 20, 13), (7, 6));
        assert_eq!(truncate_pair(20, 20, 13), (6, 7)); // tie: B
        assert_eq!(truncate_pair(7, 30, 13), (6, 7));
        assert_eq!(truncate_pair(30, 0, 5), (5, 0));
    }
}
