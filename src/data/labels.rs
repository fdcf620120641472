//! The label map: fixed from the training rows, persisted as `id2label` in the saved config.
//!
//! Integer labels are class ids themselves (the seed script's `torch.tensor(label)`); any other labels
//! are names, sorted, and numbered in that order.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::dataset::{Example, SplitData};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    /// Label name of each class id.
    pub names: Vec<String>,
    /// True when the data's labels are the ids themselves.
    pub integer: bool,
}

impl LabelMap {
    /// `num_labels`, if given, fixes the number of classes (integer labels may then skip some ids).
    pub fn from_training(train: &SplitData, column: &str, num_labels: Option<i64>) -> Result<Self> {
        let values: BTreeSet<&str> = train.examples.iter().map(|e| e.label.trim()).collect();
        let integer = values.iter().all(|v| v.parse::<i64>().is_ok());
        if integer {
            let mut max = -1i64;
            for e in &train.examples {
                let v: i64 = e.label.trim().parse().unwrap_or(-1);
                if v < 0 {
                    return Err(row_error(
                        train,
                        e.row,
                        column,
                        format!("label {v} is negative; class ids start at 0"),
                    ));
                }
                max = max.max(v);
            }
            let n = num_labels.unwrap_or(max + 1);
            let map = LabelMap { names: (0..n).map(|i| i.to_string()).collect(), integer };
            map.check_count(train, num_labels)?;
            return Ok(map);
        }
        let map = LabelMap { names: values.iter().map(|s| s.to_string()).collect(), integer };
        if let Some(n) = num_labels {
            if n as usize != map.names.len() {
                return Err(Error::data(
                    &train.path,
                    format!(
                        "--num-labels is {n} but the train split has {} distinct labels in column '{column}': {:?}",
                        map.names.len(),
                        map.names
                    ),
                ));
            }
        }
        map.check_count(train, num_labels)?;
        Ok(map)
    }

    fn check_count(&self, train: &SplitData, _num_labels: Option<i64>) -> Result<()> {
        if self.names.len() < 2 {
            return Err(Error::data(
                &train.path,
                format!("classification needs at least 2 labels, the train split has {:?}", self.names),
            ));
        }
        Ok(())
    }

    pub fn num_labels(&self) -> i64 {
        self.names.len() as i64
    }

    /// Class ids of a split's examples; an unknown label is an error naming its row.
    pub fn encode(&self, split: &SplitData, column: &str) -> Result<Vec<i64>> {
        split.examples.iter().map(|e| self.id(&e.label, &split.path, e.row, column)).collect()
    }

    /// The class id of one label; `path`, `row` and `column` name it in the error.
    pub fn id(&self, label: &str, path: &Path, row: usize, column: &str) -> Result<i64> {
        let v = label.trim();
        let err = |msg: String| Error::DataRow { path: path.into(), row, column: column.into(), msg };
        if self.integer {
            match v.parse::<i64>() {
                Ok(id) if (0..self.num_labels()).contains(&id) => Ok(id),
                Ok(id) => Err(err(format!(
                    "label {id} is outside 0..{} (num_labels {})",
                    self.num_labels() - 1,
                    self.num_labels()
                ))),
                Err(_) => Err(err(format!("label '{v}' is not an integer class id"))),
            }
        } else {
            self.names
                .binary_search_by(|n| n.as_str().cmp(v))
                .map(|i| i as i64)
                .map_err(|_| err(format!("label '{v}' does not occur in the train split")))
        }
    }
}

/// One example per distinct label, at the label's first row: enough to build and check a label
/// map without holding the rows (streaming, check-data).
pub fn distinct_labels(path: &Path, labels: &BTreeMap<String, (u64, usize)>) -> SplitData {
    SplitData {
        path: path.to_path_buf(),
        examples: labels
            .iter()
            .map(|(label, &(_, row))| Example {
                row,
                text: String::new(),
                text_pair: None,
                label: label.clone(),
            })
            .collect(),
    }
}

fn row_error(split: &SplitData, row: usize, column: &str, msg: String) -> Error {
    Error::DataRow { path: split.path.clone(), row, column: column.into(), msg }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Example;

    fn split(labels: &[&str]) -> SplitData {
        SplitData {
            path: "d.csv".into(),
            examples: labels
                .iter()
                .enumerate()
                .map(|(i, l)| Example {
                    row: i + 1,
                    text: String::new(),
                    text_pair: None,
                    label: l.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn string_labels_are_sorted() {
        let m = LabelMap::from_training(&split(&["spam", "ham", "spam"]), "label", None).unwrap();
        assert_eq!(m.names, ["ham", "spam"]);
        assert_eq!(m.encode(&split(&["spam", "ham"]), "label").unwrap(), [1, 0]);
        let err = m.encode(&split(&["ham", "eggs"]), "label").unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("'eggs'"), "{err}");
    }

    #[test]
    fn integer_labels_are_ids_and_checked_against_num_labels() {
        let m = LabelMap::from_training(&split(&["0", "2", "1"]), "label", Some(4)).unwrap();
        assert_eq!(m.num_labels(), 4);
        let err = m.encode(&split(&["3", "4"]), "label").unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("label 4"), "{err}");
        let err = LabelMap::from_training(&split(&["0", "5"]), "label", Some(3))
            .and_then(|m| m.encode(&split(&["0", "5"]), "label"));
        assert!(err.is_err());
    }

    #[test]
    fn one_class_is_refused() {
        assert!(LabelMap::from_training(&split(&["a", "a"]), "label", None).is_err());
    }
}
