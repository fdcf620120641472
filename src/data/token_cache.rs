//! An on-disk cache of tokenized splits (`--token-cache DIR`), reused by the next run on the same
//! data. Keyed by the data files' contents, the columns read, the tokenizer files and max length,
//! so any change to what tokenization would give makes a new entry (stale ones can be deleted).
//!
//! Entry format (little-endian): `BFTOK001`, the split count, then per split its example count,
//! token count, offsets (count + 1 × u64), token ids (u32) and token types (u8).
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::dataset::{Columns, DataSource};
use super::loader::Prepared;
use super::tokenize::{BertTokenizer, Encoding};
use crate::error::{Error, Result};
use crate::weights::write_atomic;

const MAGIC: &[u8; 8] = b"BFTOK001";

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
    tokenizer: &BertTokenizer,
    max_length: usize,
) -> Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(b"bertfit token cache v1\0");
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
    tokenizer: &BertTokenizer,
    max_length: usize,
    sets: &[&Prepared],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = entry_path(dir, source, columns, tokenizer, max_length)?;
    if path.exists() {
        let splits = read(&path)?;
        if splits.len() == sets.len() && splits.iter().zip(sets).all(|(s, p)| s.len() == p.len()) {
            for (s, p) in splits.into_iter().zip(sets) {
                p.set_encodings(s);
            }
            eprintln!("token cache: reused {}", path.display());
            return Ok(());
        }
        eprintln!("token cache: {} does not match the data; rebuilding it", path.display());
    }
    for p in sets {
        p.encode_all(tokenizer);
    }
    write(&path, sets, tokenizer)?;
    eprintln!("token cache: wrote {}", path.display());
    Ok(())
}

fn write(path: &Path, sets: &[&Prepared], tokenizer: &BertTokenizer) -> Result<()> {
    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sets.len() as u64).to_le_bytes());
    for set in sets {
        let encodings: Vec<&Encoding> = (0..set.len()).map(|i| set.encoding(i, tokenizer)).collect();
        let tokens: usize = encodings.iter().map(|e| e.input_ids.len()).sum();
        out.extend_from_slice(&(encodings.len() as u64).to_le_bytes());
        out.extend_from_slice(&(tokens as u64).to_le_bytes());
        let mut offset = 0u64;
        out.extend_from_slice(&offset.to_le_bytes());
        for e in &encodings {
            offset += e.input_ids.len() as u64;
            out.extend_from_slice(&offset.to_le_bytes());
        }
        for e in &encodings {
            for &id in &e.input_ids {
                out.extend_from_slice(&(id as u32).to_le_bytes());
            }
        }
        for e in &encodings {
            out.extend(e.token_type_ids.iter().map(|&t| t as u8));
        }
    }
    write_atomic(path, &out)
}

/// A reader over the entry's bytes that names the file when they run out.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::data(self.path, "token cache entry is truncated; delete it to rebuild"));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
}

fn read(path: &Path) -> Result<Vec<Vec<Encoding>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io(path, e))?;
    let mut c = Cursor { path, bytes: &bytes, at: 0 };
    if c.take(8)? != MAGIC {
        return Err(Error::data(path, "not a bertfit token cache entry"));
    }
    let n_sets = c.u64()?;
    let mut sets = Vec::new();
    for _ in 0..n_sets {
        let n = c.u64()? as usize;
        let tokens = c.u64()? as usize;
        let offsets: Vec<usize> = (0..=n).map(|_| c.u64().map(|o| o as usize)).collect::<Result<_>>()?;
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() != Some(&tokens) {
            return Err(Error::data(path, "token cache entry is corrupt; delete it to rebuild"));
        }
        let ids = c.take(tokens.saturating_mul(4))?;
        let types = c.take(tokens)?;
        let id = |k: usize| {
            u32::from_le_bytes([ids[4 * k], ids[4 * k + 1], ids[4 * k + 2], ids[4 * k + 3]]) as i64
        };
        sets.push(
            offsets
                .windows(2)
                .map(|w| Encoding {
                    input_ids: (w[0]..w[1]).map(id).collect(),
                    token_type_ids: types[w[0]..w[1]].iter().map(|&t| t as i64).collect(),
                })
                .collect(),
        );
    }
    if c.at != bytes.len() {
        return Err(Error::data(path, "token cache entry has trailing bytes; delete it to rebuild"));
    }
    Ok(sets)
}
