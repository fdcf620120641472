//! A fast path for the common case of plain ASCII text: BERT's normalisation and WordPiece
//! written out for ASCII only, where they are simple (no accents to strip, no CJK, one byte per
//! character). Anything else returns `None` and goes through `rust_tokenizers` (`encode.rs`);
//! the parity tests compare both paths with HF on every dataset text.
//!
//! Why: `rust_tokenizers` pays for Unicode normalisation and offset bookkeeping on every text;
//! on ASCII text this path gives the same ids several times faster.
use std::collections::HashMap;

/// HF's `max_input_chars_per_word`: longer words become [UNK].
const MAX_WORD_CHARS: usize = 100;

pub struct AsciiWordPiece {
    vocab: HashMap<String, i64>,
    unk_id: i64,
    lower_case: bool,
}

impl AsciiWordPiece {
    pub fn new(vocab: HashMap<String, i64>, unk_id: i64, lower_case: bool) -> Self {
        AsciiWordPiece { vocab, unk_id, lower_case }
    }

    /// The WordPiece ids of `text` (no [CLS]/[SEP]), or `None` when the text is not plain ASCII or
    /// may hold a special token written out (`[MASK]` is matched in the raw text by HF).
    pub fn encode(&self, text: &str) -> Option<Vec<i64>> {
        if !text.is_ascii() || text.contains('[') {
            return None;
        }
        let mut ids = Vec::with_capacity(text.len() / 4 + 2);
        let mut word: Vec<u8> = Vec::with_capacity(32);
        let mut key = String::with_capacity(40);
        for &b in text.as_bytes() {
            match b {
                // BertNormalizer's clean_text deletes control characters (\t \n \r are whitespace).
                0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0x7F => {}
                b' ' | b'\t' | b'\n' | b'\r' => self.flush(&mut word, &mut key, &mut ids),
                // BertPreTokenizer isolates every punctuation character.
                _ if b.is_ascii_punctuation() => {
                    self.flush(&mut word, &mut key, &mut ids);
                    word.push(b);
                    self.flush(&mut word, &mut key, &mut ids);
                }
                _ => word.push(if self.lower_case { b.to_ascii_lowercase() } else { b }),
            }
        }
        self.flush(&mut word, &mut key, &mut ids);
        Some(ids)
    }

    /// Greedy longest-match WordPiece of one word, as HF's `WordPiece::tokenize`.
    fn flush(&self, word: &mut Vec<u8>, key: &mut String, ids: &mut Vec<i64>) {
        if word.is_empty() {
            return;
        }
        // ASCII bytes are valid UTF-8 one for one.
        let w = std::str::from_utf8(word).unwrap_or_default();
        if w.len() > MAX_WORD_CHARS {
            ids.push(self.unk_id);
            word.clear();
            return;
        }
        let first = ids.len();
        let mut start = 0;
        while start < w.len() {
            let mut end = w.len();
            let mut found = None;
            while start < end {
                key.clear();
                if start > 0 {
                    key.push_str("##");
                }
                key.push_str(&w[start..end]);
                if let Some(&id) = self.vocab.get(key.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    // No piece matches: the whole word is [UNK].
                    ids.truncate(first);
                    ids.push(self.unk_id);
                    break;
                }
            }
        }
        word.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wp() -> AsciiWordPiece {
        let vocab = ["[UNK]", "un", "##aff", "##able", "hello", ",", "!", "a"];
        AsciiWordPiece::new(
            vocab.iter().enumerate().map(|(i, t)| (t.to_string(), i as i64)).collect(),
            0,
            true,
        )
    }

    #[test]
    fn splits_punctuation_and_matches_longest_pieces() {
        assert_eq!(wp().encode("Unaffable, HELLO!").unwrap(), [1, 2, 3, 5, 4, 6]);
        assert_eq!(wp().encode("hel\x01lo zz").unwrap(), [4, 0]);
        assert_eq!(wp().encode(&"a".repeat(101)).unwrap(), [0]);
    }

    #[test]
    fn leaves_non_ascii_and_brackets_to_the_full_tokenizer() {
        assert!(wp().encode("café").is_none());
        assert!(wp().encode("a [MASK] b").is_none());
    }
}
