//! Where `rust_tokenizers` differs from HF, and the rewrite of the input text that makes it agree
//! (measured over every Unicode scalar value, see `tests/tokenize.rs`): see [`Fix`] and [`FIXES`].
use std::borrow::Cow;

use super::WordPieceTokenizer;

impl WordPieceTokenizer {
    /// Rewrites the few characters that `rust_tokenizers` handles unlike HF (see [`Fix`]).
    /// Borrows the text unchanged (no allocation) when it has none of them, which is almost always.
    pub(super) fn prenormalise<'a>(&self, text: &'a str) -> Cow<'a, str> {
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
}

/// What `prenormalise` does to one character so that `rust_tokenizers` treats it as HF does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fix {
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
pub(super) fn stand_in(c: char) -> char {
    char::from_u32(0x40000 + c as u32).expect("fix characters are below U+30000")
}

pub(super) fn fix(c: char) -> Option<Fix> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
