//! Labelled examples by split, from one file with a split column (the seed script's `data.csv`:
//! `text,label,split`) or from separate train / validation / test files (HF's `--train_file`,
//! `--validation_file`, `--test_file`), in any format `table.rs` reads.
use std::path::{Path, PathBuf};

use super::table::{for_each_row, Wanted};
use crate::error::{Error, Result};

/// Which columns hold what. Defaults are the seed script's names.
#[derive(Debug, Clone, serde::Serialize)]
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

/// Where the data is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// One file; its split column says train, validation or test.
    SplitColumn(PathBuf),
    /// One file per split; only train is required.
    Files { train: PathBuf, validation: Option<PathBuf>, test: Option<PathBuf> },
}

impl DataSource {
    /// The files to read, for messages and cache keys.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            DataSource::SplitColumn(p) => vec![p.as_path()],
            DataSource::Files { train, validation, test } => {
                [Some(train), validation.as_ref(), test.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(PathBuf::as_path)
                    .collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// 1-based data row in its file (the header is not counted), for error messages.
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

    /// `parse` for a cell of the split column; anything else is an error naming the cell.
    pub fn from_cell(value: &str, path: &Path, row: usize, column: &str) -> Result<Split> {
        Split::parse(value).ok_or_else(|| Error::DataRow {
            path: path.into(),
            row,
            column: column.into(),
            msg: format!("'{value}' is not train, val (validation, dev) or test"),
        })
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

fn wanted<'a>(columns: &'a Columns, split: bool) -> Wanted<'a> {
    Wanted {
        text: Some(&columns.text),
        text_pair: columns.text_pair.as_deref(),
        label: Some(&columns.label),
        split: split.then_some(columns.split.as_str()),
    }
}

fn example(r: super::table::Row, columns: &Columns, path: &Path) -> Result<Example> {
    if r.label.trim().is_empty() {
        return Err(Error::DataRow {
            path: path.into(),
            row: r.row,
            column: columns.label.clone(),
            msg: "empty label".into(),
        });
    }
    Ok(Example { row: r.row, text: r.text, text_pair: r.text_pair, label: r.label })
}

/// Reads every split of `source` into memory.
pub fn read_dataset(source: &DataSource, columns: &Columns) -> Result<Dataset> {
    let ds = match source {
        DataSource::SplitColumn(path) => read_with_split_column(path, columns)?,
        DataSource::Files { train, validation, test } => {
            let read = |p: &Option<PathBuf>, name: &str| -> Result<SplitData> {
                match p {
                    Some(p) => {
                        let split = read_file(p, columns)?;
                        if split.examples.is_empty() {
                            return Err(Error::data(p, format!("the {name} file has no data rows")));
                        }
                        Ok(split)
                    }
                    None => Ok(SplitData { path: PathBuf::new(), examples: Vec::new() }),
                }
            };
            Dataset {
                columns: columns.clone(),
                train: read_file(train, columns)?,
                validation: read(validation, "validation")?,
                test: read(test, "test")?,
            }
        }
    };
    if ds.train.examples.is_empty() {
        let msg = match source {
            DataSource::SplitColumn(_) => {
                format!("the train split is empty (no row has {}=train)", columns.split)
            }
            DataSource::Files { .. } => "the train file has no data rows".to_string(),
        };
        return Err(Error::data(&ds.train.path, msg));
    }
    Ok(ds)
}

/// All rows of one file as one split.
pub fn read_file(path: &Path, columns: &Columns) -> Result<SplitData> {
    let mut examples = Vec::new();
    for_each_row(path, &wanted(columns, false), |r| {
        examples.push(example(r, columns, path)?);
        Ok(())
    })?;
    Ok(SplitData { path: path.to_path_buf(), examples })
}

/// Reads one file whose split column assigns each row to train, validation or test.
pub fn read_with_split_column(path: &Path, columns: &Columns) -> Result<Dataset> {
    let empty = |p: &Path| SplitData { path: p.to_path_buf(), examples: Vec::new() };
    let mut ds =
        Dataset { columns: columns.clone(), train: empty(path), validation: empty(path), test: empty(path) };
    let rows = for_each_row(path, &wanted(columns, true), |r| {
        let target = match Split::from_cell(&r.split, path, r.row, &columns.split)? {
            Split::Train => &mut ds.train,
            Split::Validation => &mut ds.validation,
            Split::Test => &mut ds.test,
        };
        target.examples.push(example(r, columns, path)?);
        Ok(())
    })?;
    if rows == 0 {
        return Err(Error::data(path, "no data rows"));
    }
    if ds.train.examples.is_empty() {
        return Err(Error::data(
            path,
            format!("the train split is empty (no row has {}=train)", columns.split),
        ));
    }
    Ok(ds)
}
