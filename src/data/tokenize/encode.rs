//! Encoding texts and pairs: the ASCII fast path or `rust_tokenizers` (after `hf_fixes.rs`), then
//! `[CLS] A [SEP] (B [SEP])` truncated as HF truncates.
use std::borrow::Cow;

use rayon::prelude::*;
use rust_tokenizers::tokenizer::{MultiThreadedTokenizer, Tokenizer, TruncationStrategy};
use rust_tokenizers::TokenizedInput;

use super::{Encoding, WordPieceTokenizer};
use crate::{Error, Result};

impl WordPieceTokenizer {
    /// The special tokens around one text (`[CLS] A [SEP]`) or a pair (`[CLS] A [SEP] B [SEP]`).
    pub fn added_tokens(is_pair: bool) -> usize {
        if is_pair {
            3
        } else {
            2
        }
    }

    /// `tokenizer(text, text_pair, truncation=True, max_length=max_length)`. `Some("")` as the pair
    /// is a pair with an empty second text (`[CLS] A [SEP] [SEP]`), as in HF's batched call (HF's
    /// single call treats an empty `text_pair` as absent).
    ///
    /// # Panics
    /// If `max_length` is below 2 (3 for a pair): see [`validate_max_length`].
    pub fn encode(&self, text: &str, text_pair: Option<&str>, max_length: usize) -> Encoding {
        assert_max_length(max_length, Self::added_tokens(text_pair.is_some()), text_pair.is_some());
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
        assert_max_length(max_length, Self::added_tokens(text_pairs.is_some()), text_pairs.is_some());
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

/// Checks a `max_length` before encoding: it must hold the `added` special tokens the tokenizer
/// puts around one text or a pair ([`super::Tokenizer::added_tokens`]: 2 for BERT's
/// `[CLS] A [SEP]`, 3 for its pairs, 4 for RoBERTa's `<s> A </s></s> B </s>`), and one position.
pub fn validate_max_length(max_length: usize, added: usize, pairs: bool) -> Result<()> {
    let least = added.max(1);
    if max_length < least {
        let what = if pairs { "sentence pair" } else { "text" };
        return Err(Error::usage(
            "--max-length",
            format!(
                "{max_length} is too small: the tokenizer adds {added} special tokens to each {what}, \
                 so it must be at least {least}"
            ),
        ));
    }
    Ok(())
}

pub(super) fn assert_max_length(max_length: usize, added: usize, pairs: bool) {
    if let Err(e) = validate_max_length(max_length, added, pairs) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_length_holds_the_added_tokens() {
        // RoBERTa's pair template adds 4: a limit of 3 cannot hold it (a fixed 3 for pairs did).
        let err = validate_max_length(3, 4, true).unwrap_err().to_string();
        assert!(err.starts_with("--max-length: 3 is too small") && err.contains("adds 4"), "{err}");
        validate_max_length(4, 4, true).unwrap();
        validate_max_length(2, 2, false).unwrap();
        assert!(validate_max_length(1, 2, false).is_err());
        // A tokenizer without a post-processor adds none: one position is enough.
        validate_max_length(1, 0, false).unwrap();
        assert!(validate_max_length(0, 0, false).is_err());
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
