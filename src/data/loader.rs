//! Batches made on a background thread, a bounded number ahead of the training step, so the step
//! does not wait for tokenization or collation. Tokenization is memoised per example: epoch 1 pays
//! for it (in the background), later epochs reuse it.
//!
//! Nothing here draws random numbers: the example order is decided on the training thread
//! (`sampler.rs`), so background work cannot move PyTorch's random stream.
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Device;

use super::batch::{collate, Batch, Padding};
use super::dataset::SplitData;
use super::labels::LabelMap;
use super::tokenize::{BertTokenizer, Encoding};
use crate::error::{Error, Result};

/// A split ready for batching: texts, class ids, and each example's tokens once computed.
pub struct Prepared {
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
    pub labels: Vec<i64>,
    /// Data rows (1-based) for metrics and messages.
    pub rows: Vec<usize>,
    encodings: Vec<OnceLock<Encoding>>,
    max_length: usize,
}

impl Prepared {
    pub fn new(split: &SplitData, labels: &LabelMap, column: &str, max_length: usize) -> Result<Self> {
        let has_pairs = split.examples.iter().any(|e| e.text_pair.is_some());
        Ok(Prepared {
            texts: split.examples.iter().map(|e| e.text.clone()).collect(),
            pairs: has_pairs
                .then(|| split.examples.iter().map(|e| e.text_pair.clone().unwrap_or_default()).collect()),
            labels: labels.encode(split, column)?,
            rows: split.examples.iter().map(|e| e.row).collect(),
            encodings: (0..split.examples.len()).map(|_| OnceLock::new()).collect(),
            max_length,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Tokenizes every example not yet tokenized, on all cores (used before length grouping and
    /// for the token cache, which need every length up front).
    pub fn encode_all(&self, tokenizer: &BertTokenizer) {
        let missing: Vec<usize> = (0..self.len()).filter(|&i| self.encodings[i].get().is_none()).collect();
        if missing.is_empty() {
            return;
        }
        let texts: Vec<&str> = missing.iter().map(|&i| self.texts[i].as_str()).collect();
        let pairs: Option<Vec<&str>> =
            self.pairs.as_ref().map(|p| missing.iter().map(|&i| p[i].as_str()).collect());
        for (i, e) in
            missing.into_iter().zip(tokenizer.encode_batch(&texts, pairs.as_deref(), self.max_length))
        {
            let _ = self.encodings[i].set(e);
        }
    }

    /// Installs encodings computed elsewhere (the token cache).
    pub fn set_encodings(&self, encodings: Vec<Encoding>) {
        for (slot, e) in self.encodings.iter().zip(encodings) {
            let _ = slot.set(e);
        }
    }

    pub fn encoding(&self, i: usize, tokenizer: &BertTokenizer) -> &Encoding {
        self.encodings[i].get_or_init(|| {
            tokenizer.encode(&self.texts[i], self.pairs.as_ref().map(|p| p[i].as_str()), self.max_length)
        })
    }

    /// Token counts, tokenizing what is not yet tokenized.
    pub fn lengths(&self, tokenizer: &BertTokenizer) -> Vec<usize> {
        self.encode_all(tokenizer);
        (0..self.len()).map(|i| self.encoding(i, tokenizer).input_ids.len()).collect()
    }
}

/// How batches are padded, and how many are made ahead.
#[derive(Debug, Clone, Copy)]
pub struct LoaderSettings {
    pub padding: Padding,
    pub max_length: usize,
    pub pad_id: i64,
    /// Batches made ahead of the consumer (the bound on memory held by the queue).
    pub prefetch: usize,
}

/// One batch on the CPU, with the data rows (1-based) of its examples.
pub struct LoadedBatch {
    pub batch: Batch,
    pub rows: Vec<usize>,
}

/// One pass of batches, however they are made (in memory or streamed from the file).
pub trait EpochBatches: Iterator<Item = Result<LoadedBatch>> {
    /// Ends the pass and returns the time the consumer waited for batches. An error if the
    /// producer died before making every batch (stopping early, as --max-steps does, is fine).
    fn finish(self: Box<Self>, stopped_early: bool) -> Result<Duration>;
}

/// Yields the given batches in order, made on a background thread.
pub struct Loader {
    rx: Option<Receiver<LoadedBatch>>,
    worker: Option<JoinHandle<()>>,
    /// Time the consumer spent blocked on the queue.
    pub waited: Duration,
    expected: usize,
    received: usize,
}

impl Loader {
    pub fn spawn(
        set: Arc<Prepared>,
        tokenizer: Arc<BertTokenizer>,
        batches: Vec<Vec<usize>>,
        s: LoaderSettings,
    ) -> Result<Self> {
        let expected = batches.len();
        let (tx, rx) = sync_channel(s.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("bertfit-loader".into())
            .spawn(move || {
                for indices in batches {
                    let encodings: Vec<&Encoding> =
                        indices.iter().map(|&i| set.encoding(i, &tokenizer)).collect();
                    let labels: Vec<i64> = indices.iter().map(|&i| set.labels[i]).collect();
                    let batch = collate(&encodings, &labels, s.padding, s.max_length, s.pad_id, Device::Cpu);
                    let rows = indices.iter().map(|&i| set.rows[i]).collect();
                    if tx.send(LoadedBatch { batch, rows }).is_err() {
                        return; // the consumer stopped early (an error, or --max-steps)
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the data loader thread: {e}")))?;
        Ok(Loader { rx: Some(rx), worker: Some(worker), waited: Duration::ZERO, expected, received: 0 })
    }
}

impl EpochBatches for Loader {
    fn finish(mut self: Box<Self>, stopped_early: bool) -> Result<Duration> {
        self.rx = None;
        let panicked = self.worker.take().map(|w| w.join().is_err()).unwrap_or(false);
        if panicked || (!stopped_early && self.received < self.expected) {
            return Err(Error::Runtime(format!(
                "the data loader stopped after {} of {} batches",
                self.received, self.expected
            )));
        }
        Ok(self.waited)
    }
}

impl Iterator for Loader {
    type Item = Result<LoadedBatch>;

    fn next(&mut self) -> Option<Result<LoadedBatch>> {
        let started = Instant::now();
        let item = self.rx.as_ref()?.recv().ok();
        self.waited += started.elapsed();
        self.received += item.is_some() as usize;
        item.map(Ok)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.rx = None; // unblocks a worker waiting to send
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
