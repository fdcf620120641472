//! The label map: fixed from the training rows, persisted as `id2label` in the saved config.
//!
//! Integer labels are class ids themselves (the seed script's `torch.tensor(label)`); any other labels
//! are names, sorted, and numbered in that order.
//!
//! Every reader (in memory, streamed, `check-data`) tallies the labels it meets in a [`LabelTally`]
//! per split, and [`LabelMap::from_tallies`] is the one place a label map is made and checked.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dataset::{Example, SplitData};
use crate::error::{Error, Result};

/// The distinct labels of one split: for each, how many rows carry it and the first of them
/// (so a message can name a row without keeping every row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelTally {
    /// The file the split came from, for messages.
    pub path: PathBuf,
    pub labels: BTreeMap<String, (u64, usize)>,
}

impl LabelTally {
    pub fn new(path: &Path) -> Self {
        LabelTally { path: path.to_path_buf(), labels: BTreeMap::new() }
    }

    /// Counts one row's label (trimmed); an empty label is an error naming the row.
    pub fn add(&mut self, label: &str, row: usize, column: &str) -> Result<()> {
        let v = label.trim();
        if v.is_empty() {
            return Err(Error::DataRow {
                path: self.path.clone(),
                row,
                column: column.into(),
                msg: "empty label".into(),
            });
        }
        self.labels.entry(v.to_string()).or_insert((0, row)).0 += 1;
        Ok(())
    }

    /// The tally of a split held in memory.
    pub fn of(split: &SplitData, column: &str) -> Result<Self> {
        let mut t = LabelTally::new(&split.path);
        for e in &split.examples {
            t.add(&e.label, e.row, column)?;
        }
        Ok(t)
    }

    pub fn rows(&self) -> u64 {
        self.labels.values().map(|(n, _)| n).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    /// Label name of each class id.
    pub names: Vec<String>,
    /// True when the data's labels are the ids themselves.
    pub integer: bool,
}

impl LabelMap {
    /// The map fixed by the training split's labels and checked against every other split's:
    /// a label the training rows do not define is an error naming its first row.
    /// `num_labels`, if given, fixes the number of classes (integer labels may then skip some ids).
    pub fn from_tallies(
        train: &LabelTally,
        others: &[&LabelTally],
        column: &str,
        num_labels: Option<i64>,
    ) -> Result<Self> {
        let map = LabelMap::from_training(train, column, num_labels)?;
        for tally in std::iter::once(train).chain(others.iter().copied()) {
            for (label, &(_, row)) in &tally.labels {
                map.id(label, &tally.path, row, column)?;
            }
        }
        Ok(map)
    }

    fn from_training(train: &LabelTally, column: &str, num_labels: Option<i64>) -> Result<Self> {
        let integer = train.labels.keys().all(|v| v.parse::<i64>().is_ok());
        let map = if integer {
            let mut max = -1i64;
            for (label, &(_, row)) in &train.labels {
                let v: i64 = label.parse().unwrap_or(-1);
                if v < 0 {
                    return Err(Error::DataRow {
                        path: train.path.clone(),
                        row,
                        column: column.into(),
                        msg: format!("label {v} is negative; class ids start at 0"),
                    });
                }
                max = max.max(v);
            }
            let n = num_labels.unwrap_or(max + 1);
            LabelMap { names: (0..n).map(|i| i.to_string()).collect(), integer }
        } else {
            let map = LabelMap { names: train.labels.keys().cloned().collect(), integer };
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
            map
        };
        if map.names.len() < 2 {
            return Err(Error::data(
                &train.path,
                format!("classification needs at least 2 labels, the train split has {:?}", map.names),
            ));
        }
        Ok(map)
    }

    pub fn num_labels(&self) -> i64 {
        self.names.len() as i64
    }

    /// Class ids of a split's examples; an unknown label is an error naming its row.
    pub fn encode(&self, split: &SplitData, column: &str) -> Result<Vec<i64>> {
        split.examples.iter().map(|e: &Example| self.id(&e.label, &split.path, e.row, column)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(labels: &[&str]) -> LabelTally {
        let mut t = LabelTally::new(Path::new("d.csv"));
        for (i, l) in labels.iter().enumerate() {
            t.add(l, i + 1, "label").unwrap();
        }
        t
    }

    #[test]
    fn string_labels_are_sorted_and_unknown_ones_name_their_row() {
        let m = LabelMap::from_tallies(&tally(&["spam", "ham", "spam"]), &[], "label", None).unwrap();
        assert_eq!(m.names, ["ham", "spam"]);
        assert_eq!(m.id("spam", Path::new("d.csv"), 1, "label").unwrap(), 1);
        let err =
            LabelMap::from_tallies(&tally(&["spam", "ham"]), &[&tally(&["ham", "eggs"])], "label", None)
                .unwrap_err()
                .to_string();
        assert!(err.contains("row 2") && err.contains("'eggs'"), "{err}");
    }

    #[test]
    fn integer_labels_are_ids_and_checked_against_num_labels() {
        let m = LabelMap::from_tallies(&tally(&["0", "2", "1"]), &[], "label", Some(4)).unwrap();
        assert_eq!(m.num_labels(), 4);
        let err = LabelMap::from_tallies(&tally(&["0", "1"]), &[&tally(&["3", "4"])], "label", Some(4))
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 2") && err.contains("label 4"), "{err}");
        assert!(LabelMap::from_tallies(&tally(&["0", "5"]), &[], "label", Some(3)).is_err());
    }

    #[test]
    fn one_class_and_empty_labels_are_refused() {
        assert!(LabelMap::from_tallies(&tally(&["a", "a"]), &[], "label", None).is_err());
        let err = LabelTally::new(Path::new("d.csv")).add(" ", 3, "label").unwrap_err().to_string();
        assert!(err.contains("row 3") && err.contains("empty label"), "{err}");
    }
}
