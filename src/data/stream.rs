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
use std::sync::Arc;

use super::dataset::{empty_train_split, for_each_split_row_as, Columns, DataSource, Read, Split};
use super::labels::{LabelFormat, LabelMap, LabelTally, LabelWarning, Target};
use super::loader::{Batches, LoaderSettings, Sink};
use super::sampler::{randperm, Mt19937, Shard};
use super::tokenize::{Encoding, Tokenizer};
use crate::error::Result;

/// What the first pass over the data finds.
#[derive(Debug, Clone)]
pub struct Scan {
    pub labels: LabelMap,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub test_rows: usize,
    /// Training labels that differ only in case or whitespace.
    pub warnings: Vec<LabelWarning>,
}

/// The first pass, before any step: reads every cell training will read (text, text pair, label,
/// split), so a bad row anywhere in the files is refused now, with the reader's own row and column
/// message, not after steps were spent. Texts are checked and dropped (memory stays bounded by a
/// record batch); the labels make the label map, and the rows are counted. A file with a split
/// column is read once for all splits.
pub fn scan(
    source: &DataSource,
    columns: &Columns,
    num_labels: Option<i64>,
    format: &LabelFormat,
) -> Result<Scan> {
    let path = |s| super::dataset::file_of(source, s).map(|(p, _)| p.to_path_buf()).unwrap_or_default();
    let mut tallies =
        [Split::Train, Split::Validation, Split::Test].map(|s| LabelTally::new(&path(s), format));
    let mut counts = [0usize; 3];
    let labelled_test = super::dataset::split_is_labelled(source, columns, Split::Test)?;
    let all = [Split::Train, Split::Validation, Split::Test];
    for_each_split_row_as(source, columns, &all, Read::Examples, format.list, |split, _, r| {
        let k = split as usize;
        counts[k] += 1;
        if split != Split::Test || labelled_test {
            tallies[k].add(&r.label, r.row, &columns.label)?;
        }
        Ok(())
    })?;
    if counts[0] == 0 {
        return Err(empty_train_split(source, columns));
    }
    let labels =
        LabelMap::from_tallies(&tallies[0], &[&tallies[1], &tallies[2]], &columns.label, num_labels)?;
    Ok(Scan {
        labels,
        train_rows: counts[0],
        validation_rows: counts[1],
        test_rows: counts[2],
        warnings: LabelMap::warnings(&tallies[0], [&tallies[1], &tallies[2]], &columns.label),
    })
}

/// One streamed pass over a split.
pub struct StreamSpec {
    pub source: DataSource,
    pub columns: Columns,
    pub split: Split,
    pub batch_size: usize,
    /// `Some((seed, buffer))` shuffles through a buffer of that many examples.
    pub shuffle: Option<(u64, usize)>,
    /// The rows this process reads.
    pub shard: Shard,
}

/// An example on its way into a batch: tokens, class id (if labelled), data row.
type Item = (Encoding, Option<Target>, usize);

/// Fills batches of `batch_size` and hands each full one to the sink.
struct Batcher<'a> {
    sink: &'a Sink,
    items: Vec<Item>,
    batch_size: usize,
}

impl Batcher<'_> {
    fn push(&mut self, item: Item) -> Result<()> {
        self.items.push(item);
        if self.items.len() == self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.items);
        let encodings: Vec<&Encoding> = items.iter().map(|(e, _, _)| e).collect();
        let labels: Option<Vec<Target>> = items.iter().map(|(_, l, _)| l.clone()).collect();
        self.sink.send(&encodings, labels.as_deref(), items.iter().map(|(_, _, r)| *r).collect())
    }
}

/// Starts a streamed pass: `labels` is `None` for rows that are only predicted.
pub fn stream(
    spec: StreamSpec,
    tokenizer: Arc<Tokenizer>,
    labels: Option<Arc<LabelMap>>,
    settings: LoaderSettings,
) -> Result<Batches> {
    Batches::spawn("bertfit-stream", settings, None, move |sink| {
        produce(&spec, &tokenizer, labels.as_deref(), sink)
    })
}

fn produce(spec: &StreamSpec, tokenizer: &Tokenizer, labels: Option<&LabelMap>, sink: &Sink) -> Result<()> {
    let mut out = Batcher { sink, items: Vec::with_capacity(spec.batch_size), batch_size: spec.batch_size };
    let mut rng = spec.shuffle.map(|(seed, _)| Mt19937::new(seed));
    let capacity = spec.shuffle.map(|(_, b)| b.max(1)).unwrap_or(0);
    let mut buffer: Vec<Item> = Vec::with_capacity(capacity);
    let c = &spec.columns;
    let max_length = sink.settings().max_length;
    let mut index = 0usize;
    let list = labels.map(|m| m.format.list).unwrap_or_default();
    for_each_split_row_as(&spec.source, c, &[spec.split], Read::Examples, list, |_, path, r| {
        index += 1;
        if !spec.shard.holds(index - 1) {
            return Ok(());
        }
        let label = labels.map(|m| m.target(&r.label, path, r.row, &c.label)).transpose()?;
        let item = (tokenizer.encode(&r.text, r.text_pair.as_deref(), max_length), label, r.row);
        match rng.as_mut() {
            None => out.push(item),
            Some(_) if buffer.len() < capacity => {
                buffer.push(item);
                Ok(())
            }
            Some(g) => {
                let j = (g.next_u32() as usize) % capacity;
                let leaving = std::mem::replace(&mut buffer[j], item);
                out.push(leaving)
            }
        }
    })?;
    if let Some(g) = rng.as_mut() {
        let order = randperm(buffer.len(), g);
        let mut slots: Vec<Option<Item>> = buffer.into_iter().map(Some).collect();
        for i in order {
            if let Some(item) = slots[i].take() {
                out.push(item)?;
            }
        }
    }
    out.flush()
}
