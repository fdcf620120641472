//! The label map: fixed from the training rows, persisted as `id2label` in the saved config.
//!
//! Integer labels are class ids themselves (the seed script's `torch.tensor(label)`); any other labels
//! are names, sorted, and numbered in that order. HF's three `problem_type`s read the label cell
//! differently: one class per row; several (`a|b`, `[0, 3]`, or empty for none) for multi-label;
//! a number for regression.
//!
//! Every reader (in memory, streamed, `check-data`) tallies the labels it meets in a [`LabelTally`]
//! per split, and [`LabelMap::from_tallies`] is the one place a label map is made and checked.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dataset::{Example, SplitData};
use crate::error::{Error, Result};
pub use crate::model::config::ProblemType;
use crate::model::config::{check_label_count, LabelSource};

/// How a label cell is read.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFormat {
    pub problem: ProblemType,
    /// Separates the names of a multi-label cell (`sports|politics`).
    pub separator: String,
    /// How the label list is made from the splits.
    pub list: LabelList,
}

/// How the label list (class ids) is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelList {
    /// The seed script's: integer labels are class ids; other labels are the training rows'
    /// names, sorted; a validation or test label not among them is refused.
    #[default]
    Seed,
    /// run_classification.py's: every label as text, sorted as text, from the training rows plus,
    /// with a warning, validation and test labels the training rows lack; -1 is no label.
    Hf,
}

impl Default for LabelFormat {
    fn default() -> Self {
        LabelFormat {
            problem: ProblemType::SingleLabelClassification,
            separator: "|".into(),
            list: LabelList::Seed,
        }
    }
}

impl LabelFormat {
    /// The label names in one multi-label cell: `a|b`, a bracketed list `[0, 3]` / `['a', 'b']`,
    /// or nothing (an empty cell or `[]`).
    pub fn names<'a>(&self, cell: &'a str) -> Vec<&'a str> {
        let v = cell.trim();
        let list = v.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
        let parts: Vec<&str> = match list {
            Some(inner) => inner.split(',').collect(),
            None => v.split(self.separator.as_str()).collect(),
        };
        parts
            .into_iter()
            .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').trim())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// A regression target; `None` if the cell is not a finite number.
    pub fn value(cell: &str) -> Option<f32> {
        cell.trim().parse::<f32>().ok().filter(|v| v.is_finite())
    }

    /// One label cell as the loss takes it, for a head of `num_labels` classes whose class ids
    /// `id` looks up (a training run's labels, or a saved model's); `path`, `row` and `column`
    /// name the cell in the error.
    pub fn target(
        &self,
        label: &str,
        num_labels: usize,
        id: impl Fn(&str) -> Result<i64>,
        (path, row, column): (&Path, usize, &str),
    ) -> Result<Target> {
        match self.problem {
            ProblemType::SingleLabelClassification => id(label).map(Target::Class),
            ProblemType::MultiLabelClassification => {
                let mut hot = vec![0f32; num_labels];
                for name in self.names(label) {
                    hot[id(name)? as usize] = 1.0;
                }
                Ok(Target::MultiHot(hot))
            }
            ProblemType::Regression => {
                LabelFormat::value(label).map(Target::Value).ok_or_else(|| Error::DataRow {
                    path: path.into(),
                    row,
                    column: column.into(),
                    msg: format!("'{}' is not a number (regression labels are numbers)", label.trim()),
                })
            }
        }
    }
}

/// One example's training target, as the head's loss takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class id (cross-entropy).
    Class(i64),
    /// 1.0 for each of the row's classes, 0.0 elsewhere (BCE with logits).
    MultiHot(Vec<f32>),
    /// A regression value (MSE).
    Value(f32),
}

/// The distinct labels of one split: for each, how many rows carry it and the first of them
/// (so a message can name a row without keeping every row).
/// For regression only the rows are counted (every value is checked as it is added).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelTally {
    /// The file the split came from, for messages.
    pub path: PathBuf,
    pub format: LabelFormat,
    pub labels: BTreeMap<String, (u64, usize)>,
    /// Rows added.
    pub rows: u64,
}

impl LabelTally {
    pub fn new(path: &Path, format: &LabelFormat) -> Self {
        LabelTally { path: path.to_path_buf(), format: format.clone(), labels: BTreeMap::new(), rows: 0 }
    }

    /// Counts one row's label cell; a label that cannot be read is an error naming the row.
    pub fn add(&mut self, label: &str, row: usize, column: &str) -> Result<()> {
        let err = |msg: String| Error::DataRow { path: self.path.clone(), row, column: column.into(), msg };
        let v = label.trim();
        self.rows += 1;
        match self.format.problem {
            ProblemType::SingleLabelClassification => {
                if v.is_empty() {
                    return Err(err("empty label".into()));
                }
                if self.format.list == LabelList::Hf && v == "-1" {
                    return Err(err(HF_MINUS_ONE.into()));
                }
                self.labels.entry(v.to_string()).or_insert((0, row)).0 += 1;
            }
            ProblemType::MultiLabelClassification => {
                for name in self.format.names(v) {
                    self.labels.entry(name.to_string()).or_insert((0, row)).0 += 1;
                }
            }
            ProblemType::Regression => {
                if LabelFormat::value(v).is_none() {
                    return Err(err(format!("'{v}' is not a number (regression labels are numbers)")));
                }
            }
        }
        Ok(())
    }

    /// Labels that differ only in case or whitespace (`spam`, `Spam`, `sp am`): each becomes a
    /// class of its own, which is seldom what was meant, but may be, so it is a warning. Each
    /// spelling after the first (by first row) is reported against the first.
    pub fn near_duplicates(&self, column: &str) -> Vec<NearDuplicate> {
        let key = |label: &str| -> String {
            label.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
        };
        let mut groups: BTreeMap<String, Vec<(usize, &str)>> = BTreeMap::new();
        for (label, &(_, row)) in &self.labels {
            groups.entry(key(label)).or_default().push((row, label));
        }
        let mut out = Vec::new();
        for mut spellings in groups.into_values().filter(|g| g.len() > 1) {
            spellings.sort_unstable();
            let (first_row, first) = spellings[0];
            for &(row, label) in &spellings[1..] {
                out.push(NearDuplicate {
                    path: self.path.clone(),
                    column: column.into(),
                    first: (first.into(), first_row),
                    second: (label.into(), row),
                });
            }
        }
        out.sort_by_key(|w| w.second.1);
        out
    }

    /// The tally of a split held in memory.
    pub fn of(split: &SplitData, column: &str, format: &LabelFormat) -> Result<Self> {
        let mut t = LabelTally::new(&split.path, format);
        for e in &split.examples {
            t.add(&e.label, e.row, column)?;
        }
        Ok(t)
    }
}

/// run_classification.py maps a label -1 to class id -1 (`label_to_id[str(l)] if l != -1 else -1`),
/// which the loss does not ignore (it ignores -100): PyTorch stops with "Target -1 is out of
/// bounds". Refused before any step instead.
const HF_MINUS_ONE: &str = "label -1: run_classification.py keeps it as class id -1, which the loss refuses \
     (IndexError: Target -1 is out of bounds); remove these rows or give them a label";

/// Something about the labels worth saying; the run goes on. The CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelWarning {
    NearDuplicate(NearDuplicate),
    /// run_classification.py's: labels of the validation or test split that the train split lacks
    /// are added to the label list.
    Added {
        split: &'static str,
        labels: Vec<String>,
    },
}

impl std::fmt::Display for LabelWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelWarning::NearDuplicate(w) => w.fmt(f),
            LabelWarning::Added { split, labels } => {
                // Python's set repr (its order is the set's hash order; sorted here).
                let set: Vec<String> = labels.iter().map(|l| python_repr(l)).collect();
                write!(
                    f,
                    "Labels {{{}}} in {split} set but not in training set, adding them to the label list",
                    set.join(", ")
                )
            }
        }
    }
}

/// Python's `repr()` of a str: single quotes unless the text has one and no double quote.
fn python_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Two spellings of what is probably one label (they differ only in case or whitespace): they are
/// trained as two classes. Not an error, since they may be meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearDuplicate {
    /// The file of the split whose labels were tallied.
    pub path: PathBuf,
    pub column: String,
    /// The spelling met first, and the row it was first seen in.
    pub first: (String, usize),
    /// The other spelling, and the row it was first seen in.
    pub second: (String, usize),
}

impl std::fmt::Display for NearDuplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ((first, first_row), (second, row)) = (&self.first, &self.second);
        write!(
            f,
            "{}: row {row}, column '{}': label '{second}' differs from '{first}' (first seen at row \
             {first_row}) only in case or whitespace; they are trained as two different classes",
            self.path.display(),
            self.column
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    /// Label name of each class id (regression: HF's single `LABEL_0`).
    pub names: Vec<String>,
    /// True when the data's labels are the ids themselves.
    pub integer: bool,
    pub format: LabelFormat,
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
        if train.format.problem == ProblemType::Regression {
            if num_labels.is_some_and(|n| n != 1) {
                return Err(Error::usage(
                    "--num-labels",
                    "regression has one output: drop --num-labels or give 1",
                ));
            }
            return Ok(LabelMap {
                names: vec!["LABEL_0".into()],
                integer: false,
                format: train.format.clone(),
            });
        }
        if train.format.list == LabelList::Hf {
            return LabelMap::hf(train, others, num_labels);
        }
        let map = LabelMap::from_training(train, column, num_labels)?;
        for tally in std::iter::once(train).chain(others.iter().copied()) {
            for (label, &(_, row)) in &tally.labels {
                map.id(label, &tally.path, row, column)?;
            }
        }
        Ok(map)
    }

    /// run_classification.py's label list: every label of the train split and of the others (the
    /// validation and test splits), as text, sorted as Python sorts strings (code points: `10`
    /// before `2`, `B` before `a`). Multi-label: every name in the lists.
    fn hf(train: &LabelTally, others: &[&LabelTally], num_labels: Option<i64>) -> Result<Self> {
        let mut names: Vec<String> = train.labels.keys().cloned().collect();
        for t in others {
            names.extend(t.labels.keys().cloned());
        }
        names.sort_unstable();
        names.dedup();
        if names.len() <= 1 {
            return Err(Error::data(
                &train.path,
                format!("You need more than one label to do classification (the labels are {names:?})"),
            ));
        }
        if let Some(n) = num_labels.filter(|&n| n as usize != names.len()) {
            return Err(Error::data(
                &train.path,
                format!("--num-labels is {n} but the data has {} labels: {names:?}", names.len()),
            ));
        }
        Ok(LabelMap { names, integer: false, format: train.format.clone() })
    }

    /// What to say about the labels of these splits: spellings of one label in the train split
    /// and, for run_classification.py's label list, the labels `others` (validation, then test)
    /// add, each reported for the first split that adds it, as the script does.
    pub fn warnings(train: &LabelTally, others: [&LabelTally; 2], column: &str) -> Vec<LabelWarning> {
        let mut out: Vec<LabelWarning> =
            train.near_duplicates(column).into_iter().map(LabelWarning::NearDuplicate).collect();
        if train.format.list != LabelList::Hf || train.format.problem == ProblemType::Regression {
            return out;
        }
        let mut known: std::collections::BTreeSet<&String> = train.labels.keys().collect();
        for (split, t) in ["validation", "test"].into_iter().zip(others) {
            let added: Vec<String> = t.labels.keys().filter(|l| known.insert(*l)).cloned().collect();
            if !added.is_empty() {
                out.push(LabelWarning::Added { split, labels: added });
            }
        }
        out
    }

    fn from_training(train: &LabelTally, column: &str, num_labels: Option<i64>) -> Result<Self> {
        if let Some(n) = num_labels {
            check_label_count(n, LabelSource::Flag("--num-labels"))?;
        }
        let integer = train.labels.keys().all(|v| v.parse::<i64>().is_ok());
        // A `1.0` among integer labels would silently become a class of its own.
        if !integer {
            if let (Some(int), Some((odd, &(_, row)))) = (
                train.labels.keys().find(|v| v.parse::<i64>().is_ok()),
                train.labels.iter().find(|(v, _)| v.parse::<i64>().is_err() && v.parse::<f64>().is_ok()),
            ) {
                return Err(Error::DataRow {
                    path: train.path.clone(),
                    row,
                    column: column.into(),
                    msg: format!(
                        "label '{odd}' is a number but not an integer class id like '{int}'; write it as an integer"
                    ),
                });
            }
        }
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
                if v >= max {
                    // Bounded before `0..=v` names are allocated: one stray huge id is an error.
                    check_label_count(
                        v.saturating_add(1),
                        LabelSource::Row { path: &train.path, row, column },
                    )?;
                    max = v;
                }
            }
            let n = num_labels.unwrap_or(max + 1);
            LabelMap { names: (0..n).map(|i| i.to_string()).collect(), integer, format: train.format.clone() }
        } else {
            let map = LabelMap {
                names: train.labels.keys().cloned().collect(),
                integer,
                format: train.format.clone(),
            };
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
        let multi = train.format.problem == ProblemType::MultiLabelClassification;
        if map.names.len() < if multi { 1 } else { 2 } {
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

    /// Targets of a split's examples; an unknown label is an error naming its row.
    pub fn encode(&self, split: &SplitData, column: &str) -> Result<Vec<Target>> {
        split.examples.iter().map(|e: &Example| self.target(&e.label, &split.path, e.row, column)).collect()
    }

    /// One label cell as the loss takes it; `path`, `row` and `column` name it in the error.
    pub fn target(&self, label: &str, path: &Path, row: usize, column: &str) -> Result<Target> {
        let id = |name: &str| self.id(name, path, row, column);
        self.format.target(label, self.names.len(), id, (path, row, column))
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
        tally_as(labels, ProblemType::SingleLabelClassification)
    }

    fn tally_as(labels: &[&str], problem: ProblemType) -> LabelTally {
        let mut t = LabelTally::new(Path::new("d.csv"), &LabelFormat { problem, ..Default::default() });
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
    fn a_float_among_integer_labels_and_a_huge_id_are_refused_by_row() {
        let err =
            LabelMap::from_tallies(&tally(&["0", "1", "1.0"]), &[], "label", None).unwrap_err().to_string();
        assert!(err.contains("row 3") && err.contains("'1.0'") && err.contains("integer"), "{err}");
        let err = LabelMap::from_tallies(&tally(&["0", "99999999999"]), &[], "label", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 2") && err.contains("limit"), "{err}");
    }

    #[test]
    fn one_class_and_empty_labels_are_refused() {
        assert!(LabelMap::from_tallies(&tally(&["a", "a"]), &[], "label", None).is_err());
        let err = LabelTally::new(Path::new("d.csv"), &LabelFormat::default())
            .add(" ", 3, "label")
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 3") && err.contains("empty label"), "{err}");
    }

    #[test]
    fn multi_label_cells_are_lists_of_names_or_ids() {
        let multi = ProblemType::MultiLabelClassification;
        let m = LabelMap::from_tallies(&tally_as(&["b|a", "c", "", "a"], multi), &[], "label", None).unwrap();
        assert_eq!(m.names, ["a", "b", "c"]);
        let p = Path::new("d.csv");
        assert_eq!(m.target("a|c", p, 1, "label").unwrap(), Target::MultiHot(vec![1.0, 0.0, 1.0]));
        assert_eq!(m.target("['b', 'c']", p, 1, "label").unwrap(), Target::MultiHot(vec![0.0, 1.0, 1.0]));
        assert_eq!(m.target("", p, 1, "label").unwrap(), Target::MultiHot(vec![0.0; 3]));
        let err = m.target("a|z", p, 7, "label").unwrap_err().to_string();
        assert!(err.contains("row 7") && err.contains("'z'"), "{err}");
        let ids = LabelMap::from_tallies(&tally_as(&["[0, 3]", "[1]"], multi), &[], "label", None).unwrap();
        assert_eq!(ids.names, ["0", "1", "2", "3"]);
        assert_eq!(ids.target("[0, 3]", p, 1, "label").unwrap(), Target::MultiHot(vec![1.0, 0.0, 0.0, 1.0]));
    }

    #[test]
    fn near_duplicate_labels_are_warned_with_both_spellings_and_rows() {
        let t = tally(&["spam", "ham", "Spam ", " h am", "spam", "eggs"]);
        let w = t.near_duplicates("label");
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!((w[0].first.clone(), w[0].second.clone()), (("spam".into(), 1), ("Spam".into(), 3)));
        assert_eq!((w[1].first.clone(), w[1].second.clone()), (("ham".into(), 2), ("h am".into(), 4)));
        let text = w[0].to_string();
        assert!(
            text.starts_with("d.csv: row 3, column 'label'") && text.contains("'spam' (first seen at row 1)")
        );
        assert!(tally(&["spam", "ham", "0", "1"]).near_duplicates("label").is_empty());
    }

    #[test]
    fn regression_labels_are_numbers() {
        let reg = ProblemType::Regression;
        let m = LabelMap::from_tallies(&tally_as(&["0.5", "-2", "3e1"], reg), &[], "label", None).unwrap();
        assert_eq!(m.names, ["LABEL_0"]);
        assert_eq!(m.target(" 2.5 ", Path::new("d.csv"), 1, "label").unwrap(), Target::Value(2.5));
        let mut t = LabelTally::new(Path::new("d.csv"), &LabelFormat { problem: reg, ..Default::default() });
        let err = t.add("high", 4, "score").unwrap_err().to_string();
        assert!(
            err.contains("row 4") && err.contains("column 'score'") && err.contains("not a number"),
            "{err}"
        );
        assert!(t.add("nan", 5, "score").is_err());
    }
}
