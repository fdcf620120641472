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
    // A Parquet file named .csv would fail with a puzzling parse error (or worse, parse): name it.
    if super::parquet::sniff(path)? == super::parquet::Sniffed::Parquet {
        return Err(super::parquet::misnamed(path, super::parquet::Sniffed::Parquet));
    }
    let format = Format::default().with_header(true).with_delimiter(delimiter_for(path));
    let (schema, _) = format.infer_schema(file, Some(0)).map_err(|e| csv_error(path, e, &[]))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
        return Err(Error::data(path, "empty file: expected a header line naming the columns"));
    }
    Ok(names)
}

/// Streams the file as record batches of nullable Utf8 columns, named by the header.
pub fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    let names = header(path)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Error::data(path, format!("the header names column '{dup}' twice")));
    }
    let fields: Vec<Field> = names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_header(true)
        .with_delimiter(delimiter_for(path))
        .with_batch_size(CSV_BATCH_ROWS)
        .build(file)
        .map_err(|e| csv_error(path, e, &names))?;
    let path = path.to_path_buf();
    Ok(reader.map(move |b| b.map_err(|e| csv_error(&path, e, &names))))
}

/// arrow-csv numbers records from 1 with the header as line 1; bertfit says "row" for data rows
/// (header excluded) and names columns, as in every other message.
fn csv_error(path: &Path, e: ArrowError, names: &[String]) -> Error {
    let msg = match e {
        ArrowError::CsvError(m) | ArrowError::ParseError(m) => m,
        other => other.to_string(),
    };
    let data_row = |line: &str| line.trim().parse::<usize>().ok().map(|l| l.saturating_sub(1));
    if let Some(rest) = msg.strip_prefix("incorrect number of fields for line ") {
        if let Some((line, tail)) = rest.split_once(',') {
            if let Some(row) = data_row(line) {
                return Error::data(path, format!("row {row}: wrong number of fields,{tail}"));
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("Encountered invalid UTF-8 data for line ") {
        if let Some((line, field)) = rest.split_once(" and field ") {
            if let (Some(row), Ok(field)) = (data_row(line), field.trim().parse::<usize>()) {
                let column = names.get(field.wrapping_sub(1)).cloned().unwrap_or_else(|| format!("#{field}"));
                return Error::DataRow { path: path.into(), row, column, msg: "not valid UTF-8 text".into() };
            }
        }
    }
    Error::data(path, msg)
}
