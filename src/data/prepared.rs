//! In-memory splits: each example's text, class id and tokens, tokenized once (memoised: epoch 1
//! pays for it on the loader thread, later epochs reuse it), and batches cut from them in an order
//! decided on the training thread.
use std::sync::{Arc, OnceLock};

use super::dataset::SplitData;
use super::labels::{LabelMap, Target};
use super::loader::{Batches, LoaderSettings};
use super::tokenize::{Encoding, Tokenizer};
use crate::error::Result;

pub use super::loader::LoadedBatch;

/// A split ready for batching: texts, class ids (unless the rows are only to be predicted), and
/// each example's tokens once computed.
pub struct Prepared {
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
    /// Targets, `None` for an unlabelled split.
    pub labels: Option<Vec<Target>>,
    /// Data rows (1-based) for metrics and messages.
    pub rows: Vec<usize>,
    encodings: Vec<OnceLock<Encoding>>,
    max_length: usize,
}

impl Prepared {
    /// `labels` maps the split's label cells to class ids; pass `None` (or an unlabelled split) for
    /// rows that are only predicted.
    pub fn new(
        split: &SplitData,
        labels: Option<&LabelMap>,
        column: &str,
        max_length: usize,
    ) -> Result<Self> {
        let has_pairs = split.examples.iter().any(|e| e.text_pair.is_some());
        let labels = match labels {
            Some(map) if split.labelled => Some(map.encode(split, column)?),
            _ => None,
        };
        Ok(Prepared {
            texts: split.examples.iter().map(|e| e.text.clone()).collect(),
            pairs: has_pairs
                .then(|| split.examples.iter().map(|e| e.text_pair.clone().unwrap_or_default()).collect()),
            labels,
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
    pub fn encode_all(&self, tokenizer: &Tokenizer) {
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

    pub fn encoding(&self, i: usize, tokenizer: &Tokenizer) -> &Encoding {
        self.encodings[i].get_or_init(|| {
            tokenizer.encode(&self.texts[i], self.pairs.as_ref().map(|p| p[i].as_str()), self.max_length)
        })
    }

    /// Token counts, tokenizing what is not yet tokenized.
    pub fn lengths(&self, tokenizer: &Tokenizer) -> Vec<usize> {
        self.encode_all(tokenizer);
        (0..self.len()).map(|i| self.encoding(i, tokenizer).input_ids.len()).collect()
    }
}

/// The batches of `order` (indices into `set`, `batch_size` at a time), made on the loader thread.
pub fn batches_in_order(
    set: &Arc<Prepared>,
    order: &[usize],
    batch_size: usize,
    tokenizer: &Arc<Tokenizer>,
    settings: LoaderSettings,
) -> Result<Batches> {
    let chunks = order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect();
    batches_of(set, chunks, tokenizer, settings)
}

/// One batch per entry of `chunks` (indices into `set`), made on the loader thread.
pub fn batches_of(
    set: &Arc<Prepared>,
    chunks: Vec<Vec<usize>>,
    tokenizer: &Arc<Tokenizer>,
    settings: LoaderSettings,
) -> Result<Batches> {
    let (set, tokenizer) = (set.clone(), tokenizer.clone());
    Batches::spawn("bertfit-loader", settings, Some(chunks.len()), move |sink| {
        for indices in chunks {
            let encodings: Vec<&Encoding> = indices.iter().map(|&i| set.encoding(i, &tokenizer)).collect();
            let labels: Option<Vec<Target>> =
                set.labels.as_ref().map(|l| indices.iter().map(|&i| l[i].clone()).collect());
            let rows = indices.iter().map(|&i| set.rows[i]).collect();
            sink.send(&encodings, labels.as_deref(), rows)?;
        }
        Ok(())
    })
}
