//! `bertfit check-data`: reads a dataset the way training would, streaming (memory bounded by the
//! batch size, not the file size), and reports rows, labels, token lengths and truncation, or the
//! first problem training would stop on.
use std::collections::BTreeMap;

use super::dataset::{
    empty_train_split, file_of, for_each_split_row_as, split_is_labelled, Columns, DataSource, Read, Split,
};
use super::labels::{LabelFormat, LabelMap, LabelTally, LabelWarning};
use super::table::Row;
use super::tokenize::Tokenizer;
use crate::error::{Error, Result};

/// Rows tokenized together.
const CHUNK: usize = 4096;
/// More distinct labels than this is almost always the wrong column.
const MAX_LABELS: usize = 10_000;

/// What one split holds.
#[derive(Debug, Default, Clone)]
pub struct SplitStats {
    pub rows: u64,
    /// Label -> rows and first row (empty for an unlabelled test file).
    pub labels: LabelTally,
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
    /// Training labels that differ only in case or whitespace.
    pub warnings: Vec<LabelWarning>,
}

struct Accumulator<'a> {
    tokenizer: &'a Tokenizer,
    pending: Vec<Row>,
    stats: SplitStats,
    labelled: bool,
    label_column: &'a str,
}

impl Accumulator<'_> {
    fn push(&mut self, row: Row) -> Result<()> {
        if self.labelled {
            self.stats.labels.add(&row.label, row.row, self.label_column)?;
            if self.stats.labels.labels.len() > MAX_LABELS {
                return Err(Error::data(
                    &self.stats.labels.path,
                    format!(
                        "column '{}' has over {MAX_LABELS} distinct labels: is it the label column?",
                        self.label_column
                    ),
                ));
            }
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
    tokenizer: &Tokenizer,
    num_labels: Option<i64>,
    format: &LabelFormat,
) -> Result<DataReport> {
    let all = [Split::Train, Split::Validation, Split::Test];
    let mut acc = Vec::new();
    for split in all {
        let path = file_of(source, split).map(|(p, _)| p.to_path_buf()).unwrap_or_default();
        acc.push(Accumulator {
            tokenizer,
            pending: Vec::new(),
            stats: SplitStats { labels: LabelTally::new(&path, format), ..Default::default() },
            labelled: split_is_labelled(source, columns, split)?,
            label_column: &columns.label,
        });
    }
    for_each_split_row_as(source, columns, &all, Read::Examples, format.list, |split, _, r| {
        acc[split as usize].push(r)
    })?;
    let [train, validation, test]: [SplitStats; 3] = acc
        .into_iter()
        .map(|mut a| {
            a.flush();
            a.stats
        })
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| Error::Runtime("check-data: three splits expected".into()))?;
    if train.rows == 0 {
        return Err(empty_train_split(source, columns));
    }
    LabelMap::from_tallies(&train.labels, &[&validation.labels, &test.labels], &columns.label, num_labels)?;
    let warnings = LabelMap::warnings(&train.labels, [&validation.labels, &test.labels], &columns.label);
    Ok(DataReport { train, validation, test, warnings })
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
        for (label, (n, _)) in &s.labels.labels {
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
