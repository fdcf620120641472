//! The one batch loader: a producer on a background thread turns rows into collated batches, a
//! bounded number ahead of the training step, so the step does not wait for tokenization or
//! collation. What the producer reads (an in-memory split in a given order, or a file streamed
//! through a shuffle buffer) is the caller's closure; the thread, the queue, the stop handshake and
//! the error path live here once.
//!
//! Nothing here draws random numbers: every order is decided on the training thread, so background
//! work cannot move PyTorch's random stream.
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Device;

use super::batch::{collate, Batch, Padding};
use super::labels::Target;
use super::tokenize::Encoding;
use crate::error::{Error, Result};

/// How batches are padded, and how many are made ahead.
#[derive(Debug, Clone, Copy)]
pub struct LoaderSettings {
    pub padding: Padding,
    pub max_length: usize,
    pub pad_id: i64,
    /// Batches made ahead of the consumer (the bound on memory held by the queue).
    pub prefetch: usize,
    /// The CUDA device the batches go to, if any: they are made in pinned memory for it.
    pub pin_for: Option<Device>,
}

/// One batch on the CPU, with the data rows (1-based) of its examples.
pub struct LoadedBatch {
    pub batch: Batch,
    pub rows: Vec<usize>,
}

/// The producer's end: collates and sends batches.
pub struct Sink {
    tx: SyncSender<Result<LoadedBatch>>,
    settings: LoaderSettings,
}

/// The consumer hung up (an error, --max-steps, a stop request): the producer ends quietly.
const STOPPED: &str = "bertfit: batch consumer stopped";

impl Sink {
    pub fn settings(&self) -> LoaderSettings {
        self.settings
    }

    /// Collates one batch (`labels` is `None` for rows to predict) and queues it, waiting while
    /// the queue is full.
    pub fn send(&self, encodings: &[&Encoding], labels: Option<&[Target]>, rows: Vec<usize>) -> Result<()> {
        let s = self.settings;
        let batch = collate(encodings, labels, s.padding, s.max_length, s.pad_id, Device::Cpu);
        let batch = match s.pin_for {
            Some(device) => batch.pinned(device)?,
            None => batch,
        };
        self.tx.send(Ok(LoadedBatch { batch, rows })).map_err(|_| Error::Runtime(STOPPED.into()))
    }
}

/// One pass of batches, made by a producer thread.
pub struct Batches {
    rx: Option<Receiver<Result<LoadedBatch>>>,
    worker: Option<JoinHandle<()>>,
    /// Time the consumer spent blocked on the queue.
    waited: Duration,
    /// Batches the pass must yield, when known up front (in memory).
    expected: Option<usize>,
    received: usize,
}

impl Batches {
    /// Starts `produce` on a thread named `name`. An error it returns reaches the consumer as the
    /// pass's next item.
    pub fn spawn(
        name: &str,
        settings: LoaderSettings,
        expected: Option<usize>,
        produce: impl FnOnce(&Sink) -> Result<()> + Send + 'static,
    ) -> Result<Batches> {
        let (tx, rx) = sync_channel(settings.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let sink = Sink { tx, settings };
                if let Err(e) = produce(&sink) {
                    if !matches!(&e, Error::Runtime(m) if m == STOPPED) {
                        let _ = sink.tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the {name} thread: {e}")))?;
        Ok(Batches { rx: Some(rx), worker: Some(worker), waited: Duration::ZERO, expected, received: 0 })
    }

    /// Ends the pass and returns the time the consumer waited for batches. An error if the producer
    /// died before making every batch (stopping early, as --max-steps does, is fine).
    pub fn finish(mut self, stopped_early: bool) -> Result<Duration> {
        self.rx = None; // unblocks a producer waiting to send
        let panicked = self.worker.take().map(|w| w.join().is_err()).unwrap_or(false);
        let short = self.expected.is_some_and(|n| self.received < n);
        if panicked || (!stopped_early && short) {
            return Err(Error::Runtime(format!(
                "the data loader stopped after {} of {} batches",
                self.received,
                self.expected.map_or("?".to_string(), |n| n.to_string())
            )));
        }
        Ok(self.waited)
    }
}

impl Iterator for Batches {
    type Item = Result<LoadedBatch>;

    fn next(&mut self) -> Option<Result<LoadedBatch>> {
        let started = Instant::now();
        let item = self.rx.as_ref()?.recv().ok();
        self.waited += started.elapsed();
        self.received += matches!(item, Some(Ok(_))) as usize;
        item
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.rx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
