//! An on-disk cache of tokenized splits (`--token-cache DIR`), reused by the next run on the same
//! data. Keyed by the data files' contents, the columns read, the tokenizer files and max length,
//! so any change to what tokenization would give makes a new entry (stale ones can be deleted).
//!
//! Entry format (little-endian): `BFTOK002`, the split count, then per split its example count,
//! token count, offsets (count + 1 × u64), token ids (u32) and token types (u8); last, the SHA-256
//! of everything before it.
//!
//! An entry is validated before use: checksum, every count bounded by the bytes present before
//! it sizes anything, one encoding per row of each split, each `[CLS] ... [SEP]` within
//! `max_length`, ids inside the tokenizer's vocabulary, token types 0 or 1. An entry that fails
//! any check (truncated, corrupted, written by other code) is never used: it is reported on stderr
//! with the reason and rebuilt from the data, as a cache should be. Only an entry that cannot be
//! read at all (permissions) is an error.
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::dataset::{Columns, DataSource};
use super::prepared::Prepared;
use super::tokenize::{Encoding, Tokenizer};
use crate::error::{Error, Result};
use crate::output::write_atomic;

const MAGIC: &[u8; 8] = b"BFTOK002";
const CHECKSUM_LEN: usize = 32;

fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// The cache entry for this data, tokenizer and max length.
pub fn entry_path(
    dir: &Path,
    source: &DataSource,
    columns: &Columns,
    tokenizer: &Tokenizer,
    max_length: usize,
) -> Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(b"bertfit token cache v3\0");
    h.update(format!("{source:?}\0{columns:?}\0{max_length}\0").as_bytes());
    for path in source.paths() {
        hash_file(&mut h, path)?;
    }
    for file in tokenizer.files() {
        if file.exists() {
            hash_file(&mut h, &file)?;
        }
    }
    let key: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{key}.bftok")))
}

/// Fills `sets` from the cache entry, or tokenizes them and writes the entry.
pub fn fill(
    dir: &Path,
    source: &DataSource,
    columns: &Columns,
    tokenizer: &Tokenizer,
    max_length: usize,
    sets: &[&Prepared],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = entry_path(dir, source, columns, tokenizer, max_length)?;
    if path.exists() {
        let expect = Expect {
            rows: sets.iter().map(|p| p.len()).collect(),
            vocab_size: tokenizer.vocab_size(),
            max_length,
        };
        match read(&path, &expect)? {
            Ok(splits) => {
                for (s, p) in splits.into_iter().zip(sets) {
                    p.set_encodings(s);
                }
                eprintln!("token cache: reused {}", path.display());
                return Ok(());
            }
            Err(why) => eprintln!("token cache: {}: {why}; rebuilding it", path.display()),
        }
    }
    for p in sets {
        p.encode_all(tokenizer);
    }
    write(&path, sets, tokenizer)?;
    eprintln!("token cache: wrote {}", path.display());
    Ok(())
}

fn write(path: &Path, sets: &[&Prepared], tokenizer: &Tokenizer) -> Result<()> {
    let encodings: Vec<Vec<&Encoding>> =
        sets.iter().map(|set| (0..set.len()).map(|i| set.encoding(i, tokenizer)).collect()).collect();
    write_entry(path, &encodings)
}

/// The entry for these splits' encodings, checksummed, written atomically.
pub fn write_entry(path: &Path, splits: &[Vec<&Encoding>]) -> Result<()> {
    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(splits.len() as u64).to_le_bytes());
    for encodings in splits {
        let tokens: usize = encodings.iter().map(|e| e.input_ids.len()).sum();
        out.extend_from_slice(&(encodings.len() as u64).to_le_bytes());
        out.extend_from_slice(&(tokens as u64).to_le_bytes());
        let mut offset = 0u64;
        out.extend_from_slice(&offset.to_le_bytes());
        for e in encodings {
            offset += e.input_ids.len() as u64;
            out.extend_from_slice(&offset.to_le_bytes());
        }
        for e in encodings {
            for &id in &e.input_ids {
                out.extend_from_slice(&(id as u32).to_le_bytes());
            }
        }
        for e in encodings {
            out.extend(e.token_type_ids.iter().map(|&t| t as u8));
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    write_atomic(path, &out)
}

/// What a valid entry for this run holds.
pub struct Expect {
    /// Rows of each split, in order.
    pub rows: Vec<usize>,
    /// Token ids must be below this.
    pub vocab_size: usize,
    pub max_length: usize,
}

/// A reader over the entry's bytes; running out is a reason to rebuild.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Why = String;

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Why> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("truncated: {n} more bytes needed at byte {}", self.at));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u64(&mut self) -> std::result::Result<u64, Why> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// Reads and validates an entry. The outer error is a file that cannot be read; the inner one the
/// reason the entry is not fit to use (then rebuilt).
pub fn read(path: &Path, expect: &Expect) -> Result<std::result::Result<Vec<Vec<Encoding>>, Why>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io(path, e))?;
    Ok(parse(&bytes, expect))
}

/// The entry's encodings, or why they must not be used.
pub fn parse(bytes: &[u8], expect: &Expect) -> std::result::Result<Vec<Vec<Encoding>>, Why> {
    if bytes.len() < MAGIC.len() + CHECKSUM_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a bertfit token cache entry of this version".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch (the file is corrupted or was cut short)".into());
    }
    let mut c = Cursor { bytes: body, at: MAGIC.len() };
    let n_sets = c.u64()?;
    if n_sets != expect.rows.len() as u64 {
        return Err(format!("{n_sets} splits, the data has {}", expect.rows.len()));
    }
    let mut sets = Vec::with_capacity(expect.rows.len());
    for (split, &rows) in expect.rows.iter().enumerate() {
        let n = c.u64()?;
        let tokens = c.u64()?;
        if n != rows as u64 {
            return Err(format!("split {split} has {n} rows, the data has {rows}"));
        }
        // Bounded by the bytes present before anything is sized by them.
        let need = (n as u128 + 1) * 8 + tokens as u128 * 5;
        if need > c.left() as u128 {
            return Err(format!("truncated: split {split} needs {need} bytes, {} are left", c.left()));
        }
        let (n, tokens) = (n as usize, tokens as usize);
        let offsets: Vec<usize> =
            (0..=n).map(|_| c.u64().map(|o| o as usize)).collect::<std::result::Result<_, _>>()?;
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) || offsets[n] != tokens {
            return Err(format!("split {split}: offsets are not increasing from 0 to {tokens}"));
        }
        let ids = c.take(tokens * 4)?;
        let types = c.take(tokens)?;
        let mut split_encodings = Vec::with_capacity(n);
        for (row, w) in offsets.windows(2).enumerate() {
            let len = w[1] - w[0];
            if len < 2 || len > expect.max_length {
                return Err(format!(
                    "split {split}, row {}: {len} tokens, outside 2..={}",
                    row + 1,
                    expect.max_length
                ));
            }
            let input_ids: Vec<i64> = ids[4 * w[0]..4 * w[1]]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect();
            if let Some(id) = input_ids.iter().find(|&&id| id as usize >= expect.vocab_size) {
                return Err(format!(
                    "split {split}, row {}: token id {id} is outside the vocabulary ({} entries)",
                    row + 1,
                    expect.vocab_size
                ));
            }
            let token_type_ids: Vec<i64> = types[w[0]..w[1]].iter().map(|&t| t as i64).collect();
            if token_type_ids.iter().any(|&t| t > 1) {
                return Err(format!("split {split}, row {}: token type other than 0 or 1", row + 1));
            }
            split_encodings.push(Encoding { input_ids, token_type_ids });
        }
        sets.push(split_encodings);
    }
    if c.left() != 0 {
        return Err(format!("{} bytes after the last split", c.left()));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[i64]) -> Encoding {
        Encoding { input_ids: ids.to_vec(), token_type_ids: vec![0; ids.len()] }
    }

    fn entry(splits: &[Vec<Encoding>]) -> Vec<u8> {
        let dir = crate::test_support::fresh_dir("tc");
        let path = dir.join("e.bftok");
        let refs: Vec<Vec<&Encoding>> = splits.iter().map(|s| s.iter().collect()).collect();
        write_entry(&path, &refs).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    }

    #[test]
    fn round_trip_and_every_check() {
        let splits = vec![vec![enc(&[101, 7, 102]), enc(&[101, 102])], vec![enc(&[101, 9, 9, 102])]];
        let bytes = entry(&splits);
        let expect = Expect { rows: vec![2, 1], vocab_size: 200, max_length: 8 };
        assert_eq!(parse(&bytes, &expect).unwrap(), splits);
        // Every truncation and every single-byte flip is refused.
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut], &expect).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            assert!(parse(&b, &expect).is_err(), "flip at {at}");
        }
        // Checksum-valid entries that do not fit this run.
        let why = |e: Expect| parse(&bytes, &e).unwrap_err();
        assert!(why(Expect { rows: vec![2, 2], vocab_size: 200, max_length: 8 }).contains("rows"));
        assert!(why(Expect { rows: vec![2, 1], vocab_size: 100, max_length: 8 }).contains("token id 101"));
        assert!(why(Expect { rows: vec![2, 1], vocab_size: 200, max_length: 3 }).contains("4 tokens"));
        // Counts that would size huge allocations are refused by the bytes present.
        let huge = entry(&[vec![enc(&[1, 2])]]);
        let mut b = huge[..huge.len() - CHECKSUM_LEN].to_vec();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        let e = Expect { rows: vec![usize::MAX], vocab_size: 10, max_length: 8 };
        assert!(parse(&b, &e).unwrap_err().contains("truncated"));
    }
}
