//! Parquet files streamed as arrow record batches, one row group at a time.
//!
//! Memory is bounded by one batch and the pages of one row group, never by the file: the footer is
//! read once, then each row group gets its own reader over the projected columns only (other columns
//! are not read from disk). Reading one row group at a time is also what lets every error name
//! where it happened: `row group 2 (rows 2001-3000 of 5574)`. Row groups are numbered from 0, as
//! pyarrow's `ParquetFile.metadata.row_group(i)` does; rows from 1, as the CSV reader does.
//!
//! Codecs: uncompressed, snappy (pyarrow's and pandas' default), zstd and gzip. Brotli, lz4 and lzo
//! are left out to keep the build small; such a file fails with an error naming the codec and how to
//! rewrite the file.
//!
//! Columns come back with the arrow types they were written with (pyarrow stores the arrow schema in
//! the footer and the reader follows it); checking them is the caller's job. What a user's file has:
//! - pyarrow `pa.string()`, pandas `object` strings (the default before pandas 3): `Utf8`.
//! - pyarrow `pa.large_string()`, pandas' pyarrow-backed strings (`string[pyarrow]`, pandas 3's
//!   `str`): `LargeUtf8`.
//! - pyarrow `pa.string_view()`: `Utf8View`.
//! - integer labels: `Int64` from pandas and pyarrow (`Int32`, `Int16`, ... if the writer chose so).
//! - pandas `category`: `Dictionary(Int8, Utf8)` up to 127 categories (`Int16` above), pyarrow
//!   `dictionary_encode()`: `Dictionary(Int32, Utf8)`; integer categories: `Dictionary(_, Int64)`.
//! - a file without arrow metadata (Spark, DuckDB, parquet-mr): `Utf8` for strings, `Int32`/`Int64`.
//! - nulls: pandas `None`/`NaN` are nulls in any of these.
use std::any::Any;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Compression;

use crate::error::{Error, Result};

/// Column names and arrow types from the Parquet footer (no data read).
pub fn schema(path: &Path) -> Result<SchemaRef> {
    let (_, meta) = open(path)?;
    Ok(meta.schema().clone())
}

/// Streams the named columns (a projection: other columns are not decoded) in batches of at most
/// `batch_rows` rows (0 counts as 1), in file order; the batches' columns are in the order of
/// `columns`. Each item is a batch or an error naming file and row group; after an error the
/// iterator ends.
pub fn batches(
    path: &Path,
    columns: &[String],
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let (file, meta) = open(path)?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let schema = meta.schema().clone();
    // Top-level fields of the arrow schema are the Parquet root columns, in the same order.
    let mut roots = Vec::with_capacity(columns.len());
    for name in columns {
        match schema.fields().iter().position(|f| f.name() == name) {
            Some(i) => roots.push(i),
            None => {
                let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
                return Err(Error::data(path, format!("no column '{name}' (the file has {names:?})")));
            }
        }
    }
    // The reader returns the projected columns in file order; `order` puts them in the caller's.
    let mut file_order = roots.clone();
    file_order.sort_unstable();
    file_order.dedup();
    let order = roots.iter().map(|r| file_order.binary_search(r).unwrap_or(0)).collect();
    let mask = ProjectionMask::roots(meta.parquet_schema(), file_order);

    let mut groups = Vec::with_capacity(meta.metadata().num_row_groups());
    let mut first_row = 1usize;
    for (i, rg) in meta.metadata().row_groups().iter().enumerate() {
        let num_rows = usize::try_from(rg.num_rows()).map_err(|_| {
            Error::data(path, format!("corrupt footer: row group {i} has {} rows", rg.num_rows()))
        })?;
        groups.push(Group { first_row, num_rows });
        first_row = first_row.saturating_add(num_rows);
    }
    Ok(Batches {
        path: path.to_path_buf(),
        file,
        file_len,
        meta,
        mask,
        order,
        batch_rows: batch_rows.max(1),
        total_rows: first_row - 1,
        groups,
        next_group: 0,
        current: None,
        done: false,
    })
}

/// Opens the file and parses the footer (schema, row groups, column chunk offsets).
fn open(path: &Path) -> Result<(File, ArrowReaderMetadata)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let loaded =
        catch_unwind(AssertUnwindSafe(|| ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())));
    let why = match loaded {
        Ok(Ok(meta)) => return Ok((file, meta)),
        Ok(Err(e)) => parquet_message(&e.to_string()),
        Err(panic) => format!("corrupt footer: {}", panic_message(&*panic)),
    };
    // A CSV named .parquet: say so rather than what the footer parser makes of text.
    if let text @ Sniffed::Text { .. } = sniff(path)? {
        return Err(misnamed(path, text));
    }
    Err(Error::data(path, format!("not a Parquet file or truncated ({why})")))
}

/// Every Parquet file starts and ends with these bytes.
const MAGIC: &[u8; 4] = b"PAR1";

/// What a data file's bytes say it is, whatever its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Parquet,
    /// UTF-8 text without NUL bytes in its first 4 KiB: CSV or TSV (`tab` says which separator
    /// its first line uses).
    Text {
        tab: bool,
    },
    Other,
}

/// Reads the first 4 KiB and the last 4 bytes. Parquet: the magic at the start, and at the end
/// too unless the start is clearly not text. Text: UTF-8 without NUL bytes that does not start
/// like Parquet (a truncated Parquet file, even one cut inside its magic, is not text). An empty
/// file is neither.
pub fn sniff(path: &Path) -> Result<Sniffed> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(4096);
    file.by_ref().take(4096).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    let mut tail = [0u8; 4];
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len >= 8 {
        file.seek(SeekFrom::End(-4))
            .and_then(|_| file.read_exact(&mut tail))
            .map_err(|e| Error::io(path, e))?;
    }
    // A multi-byte character cut at the 4 KiB mark is still text.
    let text =
        !head.contains(&0) && std::str::from_utf8(&head).map_or_else(|e| e.error_len().is_none(), |_| true);
    let magic_start = head.starts_with(MAGIC) || (!head.is_empty() && MAGIC.starts_with(&head));
    if head.starts_with(MAGIC) && (&tail == MAGIC || !text) {
        return Ok(Sniffed::Parquet);
    }
    if text && !head.is_empty() && !magic_start {
        let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let tab = first_line.contains(&b'\t') && !first_line.contains(&b',');
        return Ok(Sniffed::Text { tab });
    }
    Ok(Sniffed::Other)
}

/// The error for a file whose bytes (`is`) disagree with its name: never read as the other format,
/// since a guess could read the wrong columns without a word.
pub fn misnamed(path: &Path, is: Sniffed) -> Error {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let (what, rename) = match is {
        Sniffed::Parquet => ("a Parquet file", ".parquet"),
        Sniffed::Text { tab: true } => ("a text (tab-separated) file", ".tsv"),
        Sniffed::Text { tab: false } | Sniffed::Other => ("a text (CSV) file", ".csv"),
    };
    Error::data(path, format!("this is {what} but its name ends in .{ext}; rename it to {rename}"))
}

/// Where a row group's rows are in the file: 1-based first row and count, from the footer.
struct Group {
    first_row: usize,
    num_rows: usize,
}

/// The reader of the row group being read and how many rows it has given so far.
struct Current {
    group: usize,
    reader: ParquetRecordBatchReader,
    rows: usize,
}

struct Batches {
    path: PathBuf,
    file: File,
    file_len: u64,
    meta: ArrowReaderMetadata,
    mask: ProjectionMask,
    /// Output column `i` is projected column `order[i]`.
    order: Vec<usize>,
    batch_rows: usize,
    total_rows: usize,
    groups: Vec<Group>,
    next_group: usize,
    current: Option<Current>,
    /// Set after an error: a reader that failed (or panicked) is not asked again.
    done: bool,
}

impl Batches {
    /// `{path}: row group 2 (rows 2001-3000 of 5574)[, from row 2513]: {msg}`
    fn error(&self, group: usize, rows_read: usize, msg: impl std::fmt::Display) -> Error {
        let g = &self.groups[group];
        let last = g.first_row + g.num_rows.saturating_sub(1);
        let mut at = format!("row group {group} (rows {}-{last} of {})", g.first_row, self.total_rows);
        if rows_read > 0 {
            at.push_str(&format!(", from row {}", g.first_row + rows_read));
        }
        Error::data(&self.path, format!("{at}: {msg}"))
    }

    fn open_group(&self, group: usize) -> Result<ParquetRecordBatchReader> {
        // The parquet crate asserts (panics) on negative chunk offsets and finds chunks past the end
        // only when it gets there: check the projected chunks' byte ranges first, for a plain error.
        let rg = self.meta.metadata().row_group(group);
        for (leaf, chunk) in rg.columns().iter().enumerate() {
            if !self.mask.leaf_included(leaf) {
                continue;
            }
            let column = chunk.column_path().string();
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let end = start.checked_add(len).and_then(|e| u64::try_from(e).ok());
            if start < 0 || len < 0 || end.is_none_or(|e| e > self.file_len) {
                let msg = format!(
                    "corrupt footer: column '{column}' is at bytes {start}..{start}+{len}, outside the file ({} bytes)",
                    self.file_len
                );
                return Err(self.error(group, 0, msg));
            }
            let codec = match chunk.compression() {
                Compression::BROTLI(_) => Some("brotli"),
                Compression::LZ4 | Compression::LZ4_RAW => Some("lz4"),
                Compression::LZO => Some("lzo"),
                Compression::UNCOMPRESSED
                | Compression::SNAPPY
                | Compression::GZIP(_)
                | Compression::ZSTD(_) => None,
            };
            if let Some(codec) = codec {
                let msg = format!(
                    "column '{column}' is compressed with {codec}, which bertfit does not read; rewrite the file \
                     with snappy, zstd, gzip or no compression (pyarrow: pq.write_table(table, path, compression='snappy'))"
                );
                return Err(self.error(group, 0, msg));
            }
        }
        let file = self.file.try_clone().map_err(|e| Error::io(&self.path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
            .with_projection(self.mask.clone())
            .with_row_groups(vec![group])
            .with_batch_size(self.batch_rows);
        match catch_unwind(AssertUnwindSafe(|| builder.build())) {
            Ok(Ok(reader)) => Ok(reader),
            Ok(Err(e)) => {
                Err(self.error(group, 0, format!("cannot read: {}", parquet_message(&e.to_string()))))
            }
            Err(panic) => Err(self.error(group, 0, format!("cannot read: {}", panic_message(&*panic)))),
        }
    }

    fn advance(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if self.current.is_none() {
                // Skip empty row groups: nothing to read, nothing to check.
                while self.next_group < self.groups.len() && self.groups[self.next_group].num_rows == 0 {
                    self.next_group += 1;
                }
                if self.next_group == self.groups.len() {
                    return None;
                }
                let group = self.next_group;
                self.next_group += 1;
                match self.open_group(group) {
                    Ok(reader) => self.current = Some(Current { group, reader, rows: 0 }),
                    Err(e) => return Some(Err(e)),
                }
            }
            let cur = self.current.as_mut()?;
            // The parquet crate may panic on corrupt input: 60.1 asserts on footer values (the chunk
            // ranges checked in `open_group`), and nothing promises its page decoders never index
            // out of bounds (tests/parquet.rs's byte flips found no other panic, which proves little).
            // A data file is user input, so a panic becomes an error naming the row group. The reader
            // is dropped right after and never used again: no state the panic left can be observed.
            // (The default panic hook still prints the panic to stderr before we get here.)
            let next = catch_unwind(AssertUnwindSafe(|| cur.reader.next()));
            let (group, rows) = (cur.group, cur.rows);
            match next {
                Ok(Some(Ok(batch))) => {
                    let rows = rows + batch.num_rows();
                    if rows > self.groups[group].num_rows {
                        return Some(Err(self.error(
                            group,
                            0,
                            format!(
                                "corrupt file: decoded {rows} rows, the footer says {}",
                                self.groups[group].num_rows
                            ),
                        )));
                    }
                    if let Some(cur) = self.current.as_mut() {
                        cur.rows = rows;
                    }
                    return Some(batch.project(&self.order).map_err(|e| self.error(group, rows, e)));
                }
                Ok(Some(Err(e))) => {
                    return Some(Err(self.error(group, rows, format!("cannot read: {}", arrow_message(e)))))
                }
                Ok(None) => {
                    if rows != self.groups[group].num_rows {
                        return Some(Err(self.error(
                            group,
                            rows,
                            format!(
                                "corrupt file: decoded {rows} rows, the footer says {}",
                                self.groups[group].num_rows
                            ),
                        )));
                    }
                    self.current = None;
                }
                Err(panic) => {
                    return Some(Err(self.error(
                        group,
                        rows,
                        format!("cannot read: {}", panic_message(&*panic)),
                    )))
                }
            }
        }
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance();
        if matches!(item, Some(Err(_))) {
            self.done = true;
            self.current = None;
        }
        item
    }
}

/// The parquet crate's message without arrow's "Parquet argument error: " wrapper.
fn arrow_message(e: ArrowError) -> String {
    match e {
        ArrowError::ParquetError(m) => parquet_message(&m),
        other => other.to_string(),
    }
}

/// "Parquet error: X" says nothing the context does not; other prefixes ("EOF: ") do.
fn parquet_message(m: &str) -> String {
    m.strip_prefix("Parquet error: ").unwrap_or(m).to_string()
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "the Parquet decoder panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_parquet_from_text_and_leaves_the_rest() {
        let dir = crate::test_support::fresh_dir("sniff");
        let cases: [(&[u8], Sniffed); 8] = [
            (b"PAR1\x15\x04\x00\x00PAR1", Sniffed::Parquet),
            (b"PAR1\x15\x04\x00\x00\xff", Sniffed::Parquet),
            (b"PAR1abc", Sniffed::Other),
            (b"PA", Sniffed::Other),
            (b"", Sniffed::Other),
            (b"text,label\na,1\n", Sniffed::Text { tab: false }),
            (b"text\tlabel\na\t1\n", Sniffed::Text { tab: true }),
            (b"\x89PNG\r\n\x1a\n\x00", Sniffed::Other),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(sniff(&p).unwrap(), want, "{bytes:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
