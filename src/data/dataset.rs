//! Labelled examples from a data file with a split column (the seed script's `data.csv`:
//! `text,label,split`), read through `csv.rs`.
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, StringArray};

use super::csv;
use crate::error::{Error, Result};

/// Which columns hold what. Defaults are the seed script's names.
#[derive(Debug, Clone)]
pub struct Columns {
    pub text: String,
    /// Second text of a sentence pair (token type 1), if the task has one.
    pub text_pair: Option<String>,
    pub label: String,
    pub split: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns { text: "text".into(), text_pair: None, label: "label".into(), split: "split".into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based data row in the file (the header is not counted), for error messages.
    pub row: usize,
    pub text: String,
    pub text_pair: Option<String>,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    /// The split column's values: `train`; `val`, `validation` or `dev`; `test`.
    pub fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Split::Train),
            "val" | "validation" | "dev" => Some(Split::Validation),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// The examples of one split, with the file they came from.
#[derive(Debug, Clone)]
pub struct SplitData {
    pub path: PathBuf,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub columns: Columns,
    pub train: SplitData,
    pub validation: SplitData,
    pub test: SplitData,
}

fn column<'a>(batch: &'a RecordBatch, path: &Path, name: &str) -> Result<&'a StringArray> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::data(path, format!("no column '{name}'")))?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::data(path, format!("column '{name}' is not text")))
}

fn cell(array: &StringArray, i: usize, row: usize, path: &Path, name: &str) -> Result<String> {
    if array.is_null(i) {
        return Err(Error::DataRow { path: path.into(), row, column: name.into(), msg: "empty value".into() });
    }
    Ok(array.value(i).to_string())
}

/// Reads one file whose `split` column assigns each row to train, validation or test.
pub fn read_with_split_column(path: &Path, columns: &Columns) -> Result<Dataset> {
    let header = csv::header(path)?;
    let mut wanted = vec![&columns.text, &columns.label, &columns.split];
    wanted.extend(columns.text_pair.as_ref());
    for name in wanted {
        if !header.contains(name) {
            return Err(Error::data(path, format!("no column '{name}' (the header has {header:?})")));
        }
    }
    let empty = |p: &Path| SplitData { path: p.to_path_buf(), examples: Vec::new() };
    let mut ds = Dataset { columns: columns.clone(), train: empty(path), validation: empty(path), test: empty(path) };
    let mut row = 0usize;
    for batch in csv::batches(path)? {
        let batch = batch?;
        let text = column(&batch, path, &columns.text)?;
        let label = column(&batch, path, &columns.label)?;
        let split = column(&batch, path, &columns.split)?;
        let pair = columns.text_pair.as_ref().map(|c| column(&batch, path, c)).transpose()?;
        for i in 0..batch.num_rows() {
            row += 1;
            let split_value = cell(split, i, row, path, &columns.split)?;
            let target = match Split::parse(&split_value) {
                Some(Split::Train) => &mut ds.train,
                Some(Split::Validation) => &mut ds.validation,
                Some(Split::Test) => &mut ds.test,
                None => {
                    return Err(Error::DataRow {
                        path: path.into(),
                        row,
                        column: columns.split.clone(),
                        msg: format!("'{split_value}' is not train, val (validation, dev) or test"),
                    })
                }
            };
            // An empty text is a valid input ([CLS] [SEP]); a missing label is not.
            let text_value = if text.is_null(i) { String::new() } else { text.value(i).to_string() };
            let pair_value = pair.map(|p| if p.is_null(i) { String::new() } else { p.value(i).to_string() });
            let label_value = cell(label, i, row, path, &columns.label)?;
            if label_value.trim().is_empty() {
                return Err(Error::DataRow { path: path.into(), row, column: columns.label.clone(), msg: "empty label".into() });
            }
            target.examples.push(Example { row, text: text_value, text_pair: pair_value, label: label_value });
        }
    }
    if row == 0 {
        return Err(Error::data(path, "no data rows"));
    }
    if ds.train.examples.is_empty() {
        return Err(Error::data(path, format!("the train split is empty (no row has {}=train)", columns.split)));
    }
    Ok(ds)
}
