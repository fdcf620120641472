//! `bertfit check-data`: reads a dataset the way training would, streaming (memory bounded by the
//! batch size, not the file size), and reports rows, labels, token lengths and truncation, or the
//! first problem training would stop on.
use std::collections::BTreeMap;
use std::path::Path;

use super::dataset::{Columns, DataSource, Split};
use super::labels::{distinct_labels, LabelMap};
use super::table::{for_each_row, Row, Wanted};
use super::tokenize::BertTokenizer;
use crate::error::{Error, Result};

/// Rows tokenized together.
const CHUNK: usize = 4096;
/// More distinct labels than this is almost always the wrong column.
const MAX_LABELS: usize = 10_000;

/// What one split holds.
#[derive(Debug, Default, Clone)]
pub struct SplitStats {
    pub rows: u64,
    /// Label -> (rows, first row), the first row for messages.
    pub labels: BTreeMap<String, (u64, usize)>,
    /// Token count (with [CLS]/[SEP], before truncation) -> rows.
    pub lengths: BTreeMap<usize, u64>,
}

impl SplitStats {
    /// The smallest length with at least `q` of the rows at or below it.
    pub fn length_quantile(&self, q: f64) -> usize {
        let target = (q * self.rows as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&len, &n) in &self.lengths {
            seen += n;
            if seen >= target {
                return len;
            }
        }
        0
    }

    pub fn truncated(&self, max_length: usize) -> u64 {
        self.lengths.range(max_length + 1..).map(|(_, n)| n).sum()
    }
}

#[derive(Debug, Default, Clone)]
pub struct DataReport {
    pub train: SplitStats,
    pub validation: SplitStats,
    pub test: SplitStats,
}

struct Accumulator<'a> {
    tokenizer: &'a BertTokenizer,
    pending: Vec<Row>,
    stats: SplitStats,
    path: &'a Path,
    label_column: &'a str,
}

impl Accumulator<'_> {
    fn push(&mut self, row: Row) -> Result<()> {
        if row.label.trim().is_empty() {
            return Err(Error::DataRow {
                path: self.path.into(),
                row: row.row,
                column: self.label_column.into(),
                msg: "empty label".into(),
            });
        }
        self.stats.labels.entry(row.label.trim().to_string()).or_insert((0, row.row)).0 += 1;
        if self.stats.labels.len() > MAX_LABELS {
            return Err(Error::data(
                self.path,
                format!(
                    "column '{}' has over {MAX_LABELS} distinct labels: is it the label column?",
                    self.label_column
                ),
            ));
        }
        self.pending.push(row);
        if self.pending.len() >= CHUNK {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        let texts: Vec<&str> = self.pending.iter().map(|r| r.text.as_str()).collect();
        let pairs: Option<Vec<&str>> = self
            .pending
            .iter()
            .any(|r| r.text_pair.is_some())
            .then(|| self.pending.iter().map(|r| r.text_pair.as_deref().unwrap_or("")).collect());
        // No truncation: the point is to see how long the texts really are.
        for e in self.tokenizer.encode_batch(&texts, pairs.as_deref(), usize::MAX / 2) {
            *self.stats.lengths.entry(e.input_ids.len()).or_default() += 1;
        }
        self.stats.rows += self.pending.len() as u64;
        self.pending.clear();
    }
}

/// Streams every split of `source`; errors are what training would report.
pub fn check(
    source: &DataSource,
    columns: &Columns,
    tokenizer: &BertTokenizer,
    num_labels: Option<i64>,
) -> Result<DataReport> {
    let wanted = |split: bool| Wanted {
        text: Some(&columns.text),
        text_pair: columns.text_pair.as_deref(),
        label: Some(&columns.label),
        split: split.then_some(columns.split.as_str()),
    };
    let new = |path| Accumulator {
        tokenizer,
        pending: Vec::new(),
        stats: SplitStats::default(),
        path,
        label_column: &columns.label,
    };
    let mut report = DataReport::default();
    match source {
        DataSource::SplitColumn(path) => {
            let mut acc = [new(path), new(path), new(path)];
            let rows = for_each_row(path, &wanted(true), |r| {
                let k = match Split::from_cell(&r.split, path, r.row, &columns.split)? {
                    Split::Train => 0,
                    Split::Validation => 1,
                    Split::Test => 2,
                };
                acc[k].push(r)
            })?;
            if rows == 0 {
                return Err(Error::data(path, "no data rows"));
            }
            let [a, b, c] = acc.map(|mut a| {
                a.flush();
                a.stats
            });
            report = DataReport { train: a, validation: b, test: c };
        }
        DataSource::Files { train, validation, test } => {
            for (path, slot) in [
                (Some(train), &mut report.train),
                (validation.as_ref(), &mut report.validation),
                (test.as_ref(), &mut report.test),
            ] {
                let Some(path) = path else { continue };
                let mut acc = new(path);
                for_each_row(path, &wanted(false), |r| acc.push(r))?;
                acc.flush();
                if acc.stats.rows == 0 {
                    return Err(Error::data(path, "no data rows"));
                }
                *slot = acc.stats;
            }
        }
    }
    let train_path = source.paths()[0];
    if report.train.rows == 0 {
        return Err(Error::data(
            train_path,
            format!("the train split is empty (no row has {}=train)", columns.split),
        ));
    }
    check_labels(source, columns, &report, num_labels)?;
    Ok(report)
}

/// The label checks training makes, on one example per distinct label (its first row).
fn check_labels(
    source: &DataSource,
    columns: &Columns,
    report: &DataReport,
    num_labels: Option<i64>,
) -> Result<LabelMap> {
    let paths = source.paths();
    let split_of = |stats: &SplitStats, path: &Path| distinct_labels(path, &stats.labels);
    let (train_path, val_path, test_path) = match source {
        DataSource::SplitColumn(p) => (p.as_path(), p.as_path(), p.as_path()),
        DataSource::Files { train, validation, test } => {
            (train.as_path(), validation.as_deref().unwrap_or(paths[0]), test.as_deref().unwrap_or(paths[0]))
        }
    };
    let map = LabelMap::from_training(&split_of(&report.train, train_path), &columns.label, num_labels)?;
    map.encode(&split_of(&report.train, train_path), &columns.label)?;
    map.encode(&split_of(&report.validation, val_path), &columns.label)?;
    map.encode(&split_of(&report.test, test_path), &columns.label)?;
    Ok(map)
}

/// The report as `check-data` prints it.
pub fn render(report: &DataReport, max_length: usize) -> String {
    let mut out = String::new();
    for (name, s) in [("train", &report.train), ("validation", &report.validation), ("test", &report.test)] {
        if s.rows == 0 {
            out.push_str(&format!("{name}: no rows\n"));
            continue;
        }
        out.push_str(&format!("{name}: {} rows\n", s.rows));
        out.push_str("  labels:");
        for (label, (n, _)) in &s.labels {
            out.push_str(&format!(" {label} {n} ({:.1}%),", 100.0 * *n as f64 / s.rows as f64));
        }
        out.pop();
        out.push('\n');
        out.push_str(&format!(
            "  tokens per row: p50 {}, p90 {}, p95 {}, p99 {}, max {}\n",
            s.length_quantile(0.5),
            s.length_quantile(0.9),
            s.length_quantile(0.95),
            s.length_quantile(0.99),
            s.lengths.keys().next_back().copied().unwrap_or(0)
        ));
        let t = s.truncated(max_length);
        out.push_str(&format!(
            "  truncated at --max-length {max_length}: {t} rows ({:.2}%)\n",
            100.0 * t as f64 / s.rows as f64
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_truncation_come_from_the_histogram() {
        let mut s = SplitStats { rows: 10, ..Default::default() };
        for (len, n) in [(5, 5), (10, 4), (600, 1)] {
            s.lengths.insert(len, n);
        }
        assert_eq!(s.length_quantile(0.5), 5);
        assert_eq!(s.length_quantile(0.9), 10);
        assert_eq!(s.length_quantile(0.95), 600);
        assert_eq!(s.truncated(512), 1);
    }
}
