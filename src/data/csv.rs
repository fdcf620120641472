//! CSV / TSV files read through arrow-csv as record batches of string columns.
//!
//! Every column is read as text: labels may be integers or names, and we decide that from the
//! training rows (`labels.rs`), not from a type guess on the first rows.
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_csv::reader::Format;
use arrow_csv::ReaderBuilder;
use arrow_schema::{ArrowError, DataType, Field, Schema};

use crate::error::{Error, Result};

/// Rows per record batch: large enough to amortise parsing, small enough to bound memory.
pub const CSV_BATCH_ROWS: usize = 8192;

fn delimiter_for(path: &Path) -> u8 {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("tsv") | Some("tab") => b'\t',
        _ => b',',
    }
}

/// Column names from the header line.
pub fn header(path: &Path) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let format = Format::default().with_header(true).with_delimiter(delimiter_for(path));
    let (schema, _) = format.infer_schema(file, Some(0)).map_err(|e| csv_error(path, e))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
        return Err(Error::data(path, "empty file: expected a header line naming the columns"));
    }
    Ok(names)
}

/// Streams the file as record batches of nullable Utf8 columns, named by the header.
pub fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let names = header(path)?;
    let fields: Vec<Field> = names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_header(true)
        .with_delimiter(delimiter_for(path))
        .with_batch_size(CSV_BATCH_ROWS)
        .build(file)
        .map_err(|e| csv_error(path, e))?;
    let path = path.to_path_buf();
    Ok(reader.map(move |b| b.map_err(|e| csv_error(&path, e))))
}

/// arrow-csv counts the header as line 1 of its records; say "row" for data rows, as the rest of
/// bertfit does.
fn csv_error(path: &Path, e: ArrowError) -> Error {
    let msg = match e {
        ArrowError::CsvError(m) | ArrowError::ParseError(m) => m,
        other => other.to_string(),
    };
    let msg = match msg.strip_prefix("incorrect number of fields for line ") {
        Some(rest) => match rest.split_once(',') {
            Some((line, tail)) => match line.trim().parse::<usize>() {
                Ok(line) => format!("row {}: wrong number of fields,{tail}", line.saturating_sub(1)),
                Err(_) => msg,
            },
            None => msg,
        },
        None => msg,
    };
    Error::data(path, msg)
}
