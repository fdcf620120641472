//! Larger-than-memory training (`--streaming`): each epoch the rows are read from the file again,
//! tokenized and collated on a loader thread, and shuffled through a buffer, so memory is bounded
//! by `--shuffle-buffer`, the batch and the prefetch queue, never by the file size.
//!
//! The shuffle buffer (as in tf.data and HF `IterableDataset.shuffle`): the first B examples fill
//! it; then each new example replaces a uniformly chosen one, which is emitted; at the end of the
//! file the rest leave in a random order. Deterministic for a seed (one draw from libtorch's
//! generator per epoch seeds an mt19937), but an example can only move ahead by up to B places:
//! a file sorted by label needs B well above the rows of one label's run. In-memory training (the
//! default) shuffles exactly instead, as PyTorch's DataLoader does.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Device;

use super::batch::collate;
use super::dataset::{Columns, DataSource, Split};
use super::labels::{distinct_labels, LabelMap};
use super::loader::{EpochBatches, LoadedBatch, LoaderSettings};
use super::sampler::{randperm, Mt19937};
use super::table::{for_each_row, Row, Wanted};
use super::tokenize::{BertTokenizer, Encoding};
use crate::error::{Error, Result};

/// What a first pass over the labels finds.
#[derive(Debug, Clone)]
pub struct Scan {
    pub labels: LabelMap,
    pub train_rows: usize,
    pub validation_rows: usize,
}

/// The file holding `split`'s rows, and whether rows must be filtered by the split column.
fn file_of(source: &DataSource, split: Split) -> Option<(PathBuf, bool)> {
    match (source, split) {
        (DataSource::SplitColumn(p), _) => Some((p.clone(), true)),
        (DataSource::Files { train, .. }, Split::Train) => Some((train.clone(), false)),
        (DataSource::Files { validation, .. }, Split::Validation) => validation.clone().map(|p| (p, false)),
        (DataSource::Files { test, .. }, Split::Test) => test.clone().map(|p| (p, false)),
    }
}

/// Calls `f` on each row of `split`, reading only the columns `wanted` names besides the split.
fn for_each_split_row<'a>(
    source: &DataSource,
    columns: &'a Columns,
    split: Split,
    mut wanted: Wanted<'a>,
    mut f: impl FnMut(Row) -> Result<()>,
) -> Result<()> {
    let Some((path, filter)) = file_of(source, split) else { return Ok(()) };
    wanted.split = filter.then_some(columns.split.as_str());
    for_each_row(&path, &wanted, |r| {
        if filter && Split::from_cell(&r.split, &path, r.row, &columns.split)? != split {
            return Ok(());
        }
        f(r)
    })?;
    Ok(())
}

/// Reads only the label (and split) column: the label map and the row counts. A file with a split
/// column is read once for both splits.
pub fn scan(source: &DataSource, columns: &Columns, num_labels: Option<i64>) -> Result<Scan> {
    let mut seen: [BTreeMap<String, (u64, usize)>; 2] = Default::default();
    let mut counts = [0usize; 2];
    let mut tally = |k: usize, path: &PathBuf, r: Row| -> Result<()> {
        if r.label.trim().is_empty() {
            return Err(Error::DataRow {
                path: path.clone(),
                row: r.row,
                column: columns.label.clone(),
                msg: "empty label".into(),
            });
        }
        seen[k].entry(r.label.trim().to_string()).or_insert((0, r.row)).0 += 1;
        counts[k] += 1;
        Ok(())
    };
    let labels_only = Wanted { text: None, text_pair: None, label: Some(&columns.label), split: None };
    match source {
        DataSource::SplitColumn(path) => {
            let wanted = Wanted { split: Some(&columns.split), ..labels_only };
            for_each_row(path, &wanted, |r| {
                match Split::from_cell(&r.split, path, r.row, &columns.split)? {
                    Split::Train => tally(0, path, r),
                    Split::Validation => tally(1, path, r),
                    Split::Test => Ok(()),
                }
            })?;
        }
        DataSource::Files { train, validation, .. } => {
            for (k, path) in [(0, Some(train)), (1, validation.as_ref())] {
                if let Some(path) = path {
                    for_each_row(path, &labels_only, |r| tally(k, path, r))?;
                }
            }
        }
    }
    let train_path = file_of(source, Split::Train).map(|f| f.0).unwrap_or_default();
    if counts[0] == 0 {
        return Err(Error::data(&train_path, "the train split is empty"));
    }
    let labels =
        LabelMap::from_training(&distinct_labels(&train_path, &seen[0]), &columns.label, num_labels)?;
    labels.encode(&distinct_labels(&train_path, &seen[0]), &columns.label)?;
    let val_path = file_of(source, Split::Validation).map(|f| f.0).unwrap_or_default();
    labels.encode(&distinct_labels(&val_path, &seen[1]), &columns.label)?;
    Ok(Scan { labels, train_rows: counts[0], validation_rows: counts[1] })
}

/// The shuffle buffer and the batch being filled, on the loader thread.
struct Emitter {
    tx: SyncSender<Result<LoadedBatch>>,
    batch: Vec<(Encoding, i64, usize)>,
    batch_size: usize,
    settings: LoaderSettings,
    sent: usize,
}

/// The consumer hung up (an error, or --max-steps): stop reading, quietly.
const STOPPED: &str = "bertfit: streaming consumer stopped";

impl Emitter {
    fn emit(&mut self, item: (Encoding, i64, usize)) -> Result<()> {
        self.batch.push(item);
        if self.batch.len() == self.batch_size {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.batch);
        let encodings: Vec<&Encoding> = items.iter().map(|(e, _, _)| e).collect();
        let labels: Vec<i64> = items.iter().map(|(_, l, _)| *l).collect();
        let s = self.settings;
        let batch = collate(&encodings, &labels, s.padding, s.max_length, s.pad_id, Device::Cpu);
        let rows = items.iter().map(|(_, _, r)| *r).collect();
        self.tx.send(Ok(LoadedBatch { batch, rows })).map_err(|_| Error::Runtime(STOPPED.into()))?;
        self.sent += 1;
        Ok(())
    }
}

/// A streamed pass over one split.
pub struct StreamLoader {
    rx: Option<Receiver<Result<LoadedBatch>>>,
    worker: Option<JoinHandle<()>>,
    waited: Duration,
}

pub struct StreamSpec {
    pub source: DataSource,
    pub columns: Columns,
    pub split: Split,
    pub batch_size: usize,
    /// `Some((seed, buffer))` shuffles through a buffer of that many examples.
    pub shuffle: Option<(u64, usize)>,
}

impl StreamLoader {
    pub fn spawn(
        spec: StreamSpec,
        tokenizer: Arc<BertTokenizer>,
        labels: Arc<LabelMap>,
        settings: LoaderSettings,
    ) -> Result<Self> {
        let (tx, rx) = sync_channel(settings.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("bertfit-stream".into())
            .spawn(move || {
                let err_tx = tx.clone();
                if let Err(e) = produce(&spec, &tokenizer, &labels, settings, tx) {
                    if !matches!(&e, Error::Runtime(m) if m == STOPPED) {
                        let _ = err_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the streaming loader thread: {e}")))?;
        Ok(StreamLoader { rx: Some(rx), worker: Some(worker), waited: Duration::ZERO })
    }
}

fn produce(
    spec: &StreamSpec,
    tokenizer: &BertTokenizer,
    labels: &LabelMap,
    settings: LoaderSettings,
    tx: SyncSender<Result<LoadedBatch>>,
) -> Result<()> {
    let mut out = Emitter {
        tx,
        batch: Vec::with_capacity(spec.batch_size),
        batch_size: spec.batch_size,
        settings,
        sent: 0,
    };
    let mut rng = spec.shuffle.map(|(seed, _)| Mt19937::new(seed));
    let capacity = spec.shuffle.map(|(_, b)| b.max(1)).unwrap_or(0);
    let mut buffer: Vec<(Encoding, i64, usize)> = Vec::with_capacity(capacity);
    let path: PathBuf = file_of(&spec.source, spec.split).map(|f| f.0).unwrap_or_default();
    let c = &spec.columns;
    let wanted =
        Wanted { text: Some(&c.text), text_pair: c.text_pair.as_deref(), label: Some(&c.label), split: None };
    for_each_split_row(&spec.source, c, spec.split, wanted, |r| {
        let label = labels.id(&r.label, &path, r.row, &c.label)?;
        let item = (tokenizer.encode(&r.text, r.text_pair.as_deref(), settings.max_length), label, r.row);
        match rng.as_mut() {
            None => out.emit(item),
            Some(_) if buffer.len() < capacity => {
                buffer.push(item);
                Ok(())
            }
            Some(g) => {
                let j = (g.next_u32() as usize) % capacity;
                let leaving = std::mem::replace(&mut buffer[j], item);
                out.emit(leaving)
            }
        }
    })?;
    if let Some(g) = rng.as_mut() {
        let order = randperm(buffer.len(), g);
        let mut slots: Vec<Option<(Encoding, i64, usize)>> = buffer.into_iter().map(Some).collect();
        for i in order {
            if let Some(item) = slots[i].take() {
                out.emit(item)?;
            }
        }
    }
    out.send()
}

impl Iterator for StreamLoader {
    type Item = Result<LoadedBatch>;

    fn next(&mut self) -> Option<Result<LoadedBatch>> {
        let started = Instant::now();
        let item = self.rx.as_ref()?.recv().ok();
        self.waited += started.elapsed();
        item
    }
}

impl EpochBatches for StreamLoader {
    fn finish(mut self: Box<Self>, _stopped_early: bool) -> Result<Duration> {
        self.rx = None;
        if let Some(w) = self.worker.take() {
            if w.join().is_err() {
                return Err(Error::Runtime("the streaming loader thread died".into()));
            }
        }
        Ok(self.waited)
    }
}

impl Drop for StreamLoader {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The file a split's rows are read from (for messages).
pub fn split_path(source: &DataSource, split: Split) -> Option<PathBuf> {
    file_of(source, split).map(|f| f.0)
}
