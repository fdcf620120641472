//! Labelled examples by split, from one file with a split column (the seed script's `data.csv`:
//! `text,label,split`) or from separate train / validation / test files (HF's `--train_file`,
//! `--validation_file`, `--test_file`), in any format `table.rs` reads.
use std::path::{Path, PathBuf};

use super::hf;
use super::labels::LabelList;
use super::table::{for_each_row, Row, Wanted};
use crate::error::{Error, Result};

/// Which columns hold what. Defaults are the seed script's names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Columns {
    pub text: String,
    /// Second text of a sentence pair (token type 1), if the task has one.
    pub text_pair: Option<String>,
    pub label: String,
    pub split: String,
    /// Further text columns appended to `text`, each after `text_delimiter` (run_classification.py's
    /// `--text_column_names a,b,c` with `--text_column_delimiter`).
    pub text_joined: Vec<String>,
    pub text_delimiter: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            text: "text".into(),
            text_pair: None,
            label: "label".into(),
            split: "split".into(),
            text_joined: Vec::new(),
            text_delimiter: " ".into(),
        }
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

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
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
    /// False for a test file without the label column: its rows are only predicted.
    pub labelled: bool,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub columns: Columns,
    pub train: SplitData,
    pub validation: SplitData,
    pub test: SplitData,
}

fn wanted<'a>(columns: &'a Columns, split: bool, label: bool) -> Wanted<'a> {
    Wanted {
        text: Some(&columns.text),
        text_joined: &columns.text_joined,
        delimiter: &columns.text_delimiter,
        text_pair: columns.text_pair.as_deref(),
        label: label.then_some(columns.label.as_str()),
        split: split.then_some(columns.split.as_str()),
    }
}

/// Which columns a pass over the data reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Only the labels (and the split column): a first pass that fixes the label map.
    Labels,
    /// Texts and labels.
    Examples,
}

/// The file holding `split`'s rows, and whether its rows must be filtered by the split column.
pub fn file_of(source: &DataSource, split: Split) -> Option<(&Path, bool)> {
    match (source, split) {
        (DataSource::SplitColumn(p), _) => Some((p.as_path(), true)),
        (DataSource::Files { train, .. }, Split::Train) => Some((train.as_path(), false)),
        (DataSource::Files { validation, .. }, Split::Validation) => {
            validation.as_deref().map(|p| (p, false))
        }
        (DataSource::Files { test, .. }, Split::Test) => test.as_deref().map(|p| (p, false)),
    }
}

/// Whether `path` has the label column. Only a separate test file may lack it (rows to predict).
fn has_label_column(path: &Path, columns: &Columns) -> Result<bool> {
    Ok(super::table::columns(path)?.iter().any(|(n, _)| *n == columns.label))
}

/// Calls `f(split, path, row)` on every row of the splits in `splits`, in file order: one pass over a
/// file with a split column (rows of other splits are skipped unread), or one pass per split file.
/// Labels are read where the file has them (`row.label` is empty in an unlabelled test file: see
/// [`SplitData::labelled`]). This is the one traversal every reader (in memory, streamed,
/// check-data) goes through.
pub fn for_each_split_row(
    source: &DataSource,
    columns: &Columns,
    splits: &[Split],
    read: Read,
    f: impl FnMut(Split, &Path, Row) -> Result<()>,
) -> Result<()> {
    for_each_split_row_as(source, columns, splits, read, LabelList::Seed, f)
}

/// [`for_each_split_row`] with the label cells as `list` reads them: as written (the seed
/// script), or (run_classification.py) as Python's `str()` of the value `datasets` loads, every
/// split cast to the train file's label type (`hf.rs`); a cell that does not cast is an error
/// naming it, as datasets fails the load there.
pub fn for_each_split_row_as(
    source: &DataSource,
    columns: &Columns,
    splits: &[Split],
    read: Read,
    list: LabelList,
    mut f: impl FnMut(Split, &Path, Row) -> Result<()>,
) -> Result<()> {
    let label_type = match (list, file_of(source, Split::Train)) {
        (LabelList::Hf, Some((train, _))) => Some(hf::label_type(train, &columns.label)?),
        _ => None,
    };
    let mut f = |split: Split, path: &Path, mut r: Row| {
        if let Some(t) = label_type.filter(|_| !r.label.is_empty()) {
            r.label = hf::python_label(&r.label, t).ok_or_else(|| Error::DataRow {
                path: path.into(),
                row: r.row,
                column: columns.label.clone(),
                msg: format!(
                    "'{}' is not {t:?} like the train file's labels (datasets fails to load it)",
                    r.label
                ),
            })?;
        }
        f(split, path, r)
    };
    let texts = read == Read::Examples;
    match source {
        DataSource::SplitColumn(path) => {
            let mut w = wanted(columns, true, true);
            if !texts {
                (w.text, w.text_pair) = (None, None);
            }
            let rows = for_each_row(path, &w, |r| {
                let split = Split::from_cell(&r.split, path, r.row, &columns.split)?;
                if splits.contains(&split) {
                    f(split, path, r)?;
                }
                Ok(())
            })?;
            if rows == 0 {
                return Err(Error::data(path, "no data rows"));
            }
        }
        DataSource::Files { .. } => {
            for &split in splits {
                let Some((path, _)) = file_of(source, split) else { continue };
                let label = split != Split::Test || has_label_column(path, columns)?;
                let mut w = wanted(columns, false, label);
                if !texts {
                    (w.text, w.text_pair) = (None, None);
                }
                let rows = for_each_row(path, &w, |r| f(split, path, r))?;
                if rows == 0 {
                    return Err(Error::data(path, format!("the {} file has no data rows", split.name())));
                }
            }
        }
    }
    Ok(())
}

/// Whether the rows of `split` carry labels (a separate test file may not).
pub fn split_is_labelled(source: &DataSource, columns: &Columns, split: Split) -> Result<bool> {
    match (source, file_of(source, split)) {
        (DataSource::Files { .. }, Some((path, _))) if split == Split::Test => {
            has_label_column(path, columns)
        }
        _ => Ok(true),
    }
}

/// The error for a training split without rows.
pub fn empty_train_split(source: &DataSource, columns: &Columns) -> Error {
    match source {
        DataSource::SplitColumn(path) => {
            Error::data(path, format!("the train split is empty (no row has {}=train)", columns.split))
        }
        DataSource::Files { train, .. } => Error::data(train, "the train file has no data rows"),
    }
}

/// Reads every split of `source` into memory.
pub fn read_dataset(source: &DataSource, columns: &Columns) -> Result<Dataset> {
    read_dataset_as(source, columns, LabelList::Seed)
}

/// [`read_dataset`] with the label cells as `list` reads them (see [`for_each_split_row_as`]).
pub fn read_dataset_as(source: &DataSource, columns: &Columns, list: LabelList) -> Result<Dataset> {
    let path_of = |split| file_of(source, split).map(|(p, _)| p.to_path_buf()).unwrap_or_default();
    let empty = |split| SplitData { path: path_of(split), examples: Vec::new(), labelled: true };
    let mut ds = Dataset {
        columns: columns.clone(),
        train: empty(Split::Train),
        validation: empty(Split::Validation),
        test: SplitData { labelled: split_is_labelled(source, columns, Split::Test)?, ..empty(Split::Test) },
    };
    let all = [Split::Train, Split::Validation, Split::Test];
    for_each_split_row_as(source, columns, &all, Read::Examples, list, |split, _, r| {
        let target = match split {
            Split::Train => &mut ds.train,
            Split::Validation => &mut ds.validation,
            Split::Test => &mut ds.test,
        };
        target.examples.push(Example { row: r.row, text: r.text, text_pair: r.text_pair, label: r.label });
        Ok(())
    })?;
    if ds.train.examples.is_empty() {
        return Err(empty_train_split(source, columns));
    }
    Ok(ds)
}

/// Reads one file whose split column assigns each row to train, validation or test.
pub fn read_with_split_column(path: &Path, columns: &Columns) -> Result<Dataset> {
    read_dataset(&DataSource::SplitColumn(path.to_path_buf()), columns)
}
