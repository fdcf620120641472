//! Rows of a data file, whatever its format: the text (with any joined text columns), optional
//! second text, label and split columns, checked once for presence and type, with every bad cell
//! named by row and column.
//!
//! CSV/TSV columns are all text (an empty field is an empty text). Parquet columns may be any
//! string type (plain, large, view, dictionary-encoded as pandas categoricals are) and, for labels,
//! any integer type; a null is an error there, since it is not an empty text. JSON (`json.rs`):
//! text cells must be strings, labels may be any value (read as Python's `str()` writes it), and a
//! null or missing value is an error as in Parquet.
use std::path::Path;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::DataType;

use super::{csv, json, parquet};
use crate::error::{Error, Result};

/// Rows per record batch read from a file.
pub const BATCH_ROWS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma- or tab-separated (by extension: `.tsv`/`.tab` are tab-separated).
    Csv,
    Parquet,
    /// JSON lines (`.jsonl`, or `.json` with one object per line) or a JSON array of objects.
    Json,
}

pub fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") | Some("tsv") | Some("tab") => Ok(Format::Csv),
        Some("parquet") | Some("pq") => Ok(Format::Parquet),
        Some("json") | Some("jsonl") => Ok(Format::Json),
        _ => Err(Error::data(path, "unknown data format: use a .csv, .tsv, .parquet, .json or .jsonl file")),
    }
}

/// Which columns to read; `None` ones are not read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    pub text: Option<&'a str>,
    /// Text columns appended to `text`, each after `delimiter` (run_classification.py's
    /// `--text_column_names`); read only with `text`.
    pub text_joined: &'a [String],
    pub delimiter: &'a str,
    pub text_pair: Option<&'a str>,
    pub label: Option<&'a str>,
    pub split: Option<&'a str>,
}

impl Wanted<'_> {
    fn joined(&self) -> &[String] {
        if self.text.is_some() {
            self.text_joined
        } else {
            &[]
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.text.into_iter().map(str::to_string).collect();
        names.extend(self.joined().iter().cloned());
        names.extend([self.text_pair, self.label, self.split].into_iter().flatten().map(str::to_string));
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// How a JSON reader reads each of `names()`: labels and splits as any value, the rest as text.
    fn json_cells(&self) -> Vec<(String, super::json::Cell)> {
        use super::json::Cell;
        let value = |n: &str| Some(n) == self.label || Some(n) == self.split;
        self.names()
            .into_iter()
            .map(|n| (n.clone(), if value(&n) { Cell::Value } else { Cell::Text }))
            .collect()
    }
}

/// One row. Fields of columns that were not wanted are empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// 1-based data row (the header, if any, is not counted).
    pub row: usize,
    pub text: String,
    pub text_pair: Option<String>,
    pub label: String,
    pub split: String,
}

/// The column names and types a file has.
pub fn columns(path: &Path) -> Result<Vec<(String, DataType)>> {
    match format_of(path)? {
        Format::Csv => Ok(csv::header(path)?.into_iter().map(|n| (n, DataType::Utf8)).collect()),
        Format::Parquet => Ok(parquet::schema(path)?
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()),
        // Cells are checked one by one as they are read (a JSON column has no declared type).
        Format::Json => Ok(json::keys(path)?.into_iter().map(|n| (n, DataType::Utf8)).collect()),
    }
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Dictionary(_, v) if v.is_integer())
}

/// Checks that every wanted column exists with a usable type.
fn check_columns(path: &Path, wanted: &Wanted, have: &[(String, DataType)]) -> Result<()> {
    let label = wanted.label;
    for name in wanted.names() {
        let Some((_, t)) = have.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = have.iter().map(|(n, _)| n.as_str()).collect();
            // A file of one split is the common case behind a missing split column.
            let hint = if Some(name.as_str()) == wanted.split {
                "; --split-column names another column, or pass a file of one split as \
                 --validation-file (train also takes --train-file and --test-file)"
            } else {
                ""
            };
            return Err(Error::data(path, format!("no column '{name}' (the file has {names:?}){hint}")));
        };
        let ok = is_string(t) || (Some(name.as_str()) == label && is_integer(t));
        if !ok {
            let expected = if Some(name.as_str()) == label { "text or integer" } else { "text" };
            return Err(Error::data(path, format!("column '{name}' has type {t}, expected {expected}")));
        }
    }
    Ok(())
}

/// The column as UTF-8 strings (integers become their decimal form).
fn as_strings(path: &Path, batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let col: &ArrayRef =
        batch.column_by_name(name).ok_or_else(|| Error::data(path, format!("no column '{name}'")))?;
    let cast = arrow_cast::cast(col, &DataType::Utf8)
        .map_err(|e| Error::data(path, format!("column '{name}': {e}")))?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::data(path, format!("column '{name}' is not text")))
}

/// Streams the file and calls `f` on each row, in file order; returns the number of rows.
pub fn for_each_row(path: &Path, wanted: &Wanted, mut f: impl FnMut(Row) -> Result<()>) -> Result<usize> {
    let format = format_of(path)?;
    check_columns(path, wanted, &columns(path)?)?;
    let names = wanted.names();
    let batches: Box<dyn Iterator<Item = Result<RecordBatch>>> = match format {
        Format::Csv => Box::new(csv::batches(path)?),
        Format::Parquet => Box::new(parquet::batches(path, &names, BATCH_ROWS)?),
        Format::Json => Box::new(json::batches(path, &wanted.json_cells(), BATCH_ROWS)?),
    };
    // In CSV an empty field is an empty text; in Parquet a null is a missing value.
    let null_text_is_empty = format == Format::Csv;
    let mut row = 0usize;
    for batch in batches {
        let batch = batch?;
        let get = |name: Option<&str>| {
            name.map(|n| as_strings(path, &batch, n).map(|a| (n.to_string(), a))).transpose()
        };
        let (text, pair, label, split) =
            (get(wanted.text)?, get(wanted.text_pair)?, get(wanted.label)?, get(wanted.split)?);
        let joined: Vec<_> = wanted.joined().iter().map(|n| get(Some(n))).collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            row += 1;
            let cell = |col: &Option<(String, StringArray)>, empty_ok: bool| -> Result<Option<String>> {
                let Some((name, a)) = col else { return Ok(None) };
                if a.is_null(i) {
                    if empty_ok {
                        return Ok(Some(String::new()));
                    }
                    let msg = if null_text_is_empty { "empty value" } else { "null value" };
                    return Err(Error::DataRow {
                        path: path.into(),
                        row,
                        column: name.clone(),
                        msg: msg.into(),
                    });
                }
                Ok(Some(a.value(i).to_string()))
            };
            // run_classification.py's preprocess_function: text += delimiter + column, in order.
            let mut text = cell(&text, null_text_is_empty)?.unwrap_or_default();
            for col in &joined {
                text.push_str(wanted.delimiter);
                text.push_str(&cell(col, null_text_is_empty)?.unwrap_or_default());
            }
            f(Row {
                row,
                text,
                text_pair: cell(&pair, null_text_is_empty)?,
                // An empty CSV label cell reaches the label reader, which knows whether the
                // problem type allows it (a multi-label row may have no label).
                label: cell(&label, null_text_is_empty)?.unwrap_or_default(),
                split: cell(&split, false)?.unwrap_or_default(),
            })?;
        }
    }
    Ok(row)
}
