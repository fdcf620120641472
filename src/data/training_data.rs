//! The data of a run: the label map and the train / validation / test rows, held in memory (exact
//! PyTorch order) or streamed from the files each pass. Every pass is opened with the run's
//! [`RandomStream`], which draws what PyTorch's DataLoader draws for it, so no pass can skip a draw.
use std::path::PathBuf;
use std::sync::Arc;

use super::dataset::{read_dataset_as, Columns, DataSource, Split, SplitData};
use super::labels::{LabelFormat, LabelList, LabelMap, LabelTally, LabelWarning, Target};
use super::loader::{Batches, LoaderSettings};
use super::numpy_rng;
use super::prepared::{batches_in_order, Prepared};
use super::sampler::{group_by_length, sampler, Sampler, SequentialSampler, Shard};
use super::stream::{self, Scan, StreamSpec};
use super::token_cache;
use super::tokenize::Tokenizer;
use crate::error::{Error, Result};
use crate::random::RandomStream;

/// HF's `get_length_grouped_indices` settings: the batch size its megabatches count in, and the
/// length every row has when batches are padded to one (`input_ids` are then all that long).
#[derive(Clone, Copy, Debug)]
pub struct LengthGrouping {
    pub batch_size: usize,
    pub padded_to: Option<usize>,
}

/// How the data is read and batched (validated by the caller).
#[derive(Clone)]
pub struct DataSettings {
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub loader: LoaderSettings,
    /// Reshuffle the training rows every epoch (DataLoader `shuffle=True`).
    pub shuffle: bool,
    /// HF's `group_by_length` (`LengthGroupedSampler`): how the sampler's order is grouped.
    pub group_by_length: Option<LengthGrouping>,
    /// Re-read the files every pass instead of holding the rows.
    pub streaming: bool,
    pub shuffle_buffer: usize,
    pub token_cache: Option<PathBuf>,
    pub num_labels: Option<i64>,
    /// How label cells are read (problem type, multi-label separator).
    pub label_format: LabelFormat,
    /// HF's `max_train_samples` / `max_eval_samples` / `max_predict_samples`: the first N rows.
    pub max_samples: [Option<usize>; 3],
    /// HF's `shuffle_train_dataset` with its `shuffle_seed`: the training rows are shuffled once,
    /// before anything else (max_train_samples included), in 🤗 datasets' order
    /// ([`super::numpy_rng`]; the run's random stream is untouched).
    pub shuffle_train_dataset: Option<u64>,
    pub shard: Shard,
    /// The training sampler when not the DataLoader's own (DistributedSampler across ranks).
    pub train_sampler: Option<Arc<dyn Sampler>>,
}

// One per run: the size of the larger variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Rows {
    /// One prepared set per split (train, validation, test); `lengths` for length grouping.
    InMemory {
        sets: [Arc<Prepared>; 3],
        lengths: Option<Vec<usize>>,
    },
    Streaming {
        scan: Scan,
        source: DataSource,
        columns: Columns,
    },
}

/// The order of one training epoch: the in-memory row order, or a stream's shuffle seed.
#[derive(Debug, Clone, PartialEq)]
pub enum PassPlan {
    Order(Vec<usize>),
    Stream(Option<u64>),
}

pub struct TrainingData {
    labels: Arc<LabelMap>,
    /// Training labels that differ only in case or whitespace, for the caller to show.
    warnings: Vec<LabelWarning>,
    rows: Rows,
    tokenizer: Arc<Tokenizer>,
    settings: DataSettings,
}

/// The first `n` examples of a split (HF's `select(range(n))`).
fn first(mut split: SplitData, n: Option<usize>) -> SplitData {
    if let Some(n) = n {
        split.examples.truncate(n);
    }
    split
}

impl TrainingData {
    /// Reads (or, streaming, scans) the data and fixes the label map from the training rows.
    pub fn open(
        source: &DataSource,
        columns: &Columns,
        tokenizer: Arc<Tokenizer>,
        settings: DataSettings,
    ) -> Result<Self> {
        if settings.streaming {
            let scan = stream::scan(source, columns, settings.num_labels, &settings.label_format)?;
            return Ok(TrainingData {
                labels: Arc::new(scan.labels.clone()),
                warnings: scan.warnings.clone(),
                rows: Rows::Streaming { scan, source: source.clone(), columns: columns.clone() },
                tokenizer,
                settings,
            });
        }
        let hf = settings.label_format.list == LabelList::Hf;
        let ds = read_dataset_as(source, columns, settings.label_format.list)?;
        let tally = |s: &SplitData| {
            if s.labelled {
                LabelTally::of(s, &columns.label, &settings.label_format)
            } else {
                Ok(LabelTally::default())
            }
        };
        // run_classification.py makes its label list from the whole files, before
        // max_*_samples selects rows; the seed script from the rows it keeps.
        let full =
            if hf { Some([tally(&ds.train)?, tally(&ds.validation)?, tally(&ds.test)?]) } else { None };
        let [n_train, n_val, n_test] = settings.max_samples;
        let mut train = ds.train;
        if let Some(seed) = settings.shuffle_train_dataset {
            // run_classification.py shuffles every row (Dataset.shuffle: NumPy's default_rng),
            // then max_train_samples keeps the first N of that order.
            let order = numpy_rng::permutation(train.examples.len(), seed);
            let mut slots: Vec<_> = train.examples.into_iter().map(Some).collect();
            train.examples = order.into_iter().filter_map(|i| slots[i].take()).collect();
        }
        let train = first(train, n_train);
        let (validation, test) = (first(ds.validation, n_val), first(ds.test, n_test));
        let [t, v, te] = match full {
            Some(tallies) => tallies,
            None => [tally(&train)?, tally(&validation)?, tally(&test)?],
        };
        let labels = LabelMap::from_tallies(&t, &[&v, &te], &columns.label, settings.num_labels)?;
        let warnings = LabelMap::warnings(&t, [&v, &te], &columns.label);
        let max_length = settings.loader.max_length;
        let prepare =
            |s: &SplitData| Prepared::new(s, Some(&labels), &columns.label, max_length).map(Arc::new);
        let sets = [prepare(&train)?, prepare(&validation)?, prepare(&test)?];
        if let Some(dir) = &settings.token_cache {
            token_cache::fill(dir, source, columns, &tokenizer, max_length, &[&sets[0], &sets[1]])?;
        }
        let lengths = settings.group_by_length.map(|g| match g.padded_to {
            Some(len) => vec![len; sets[0].len()],
            None => sets[0].lengths(&tokenizer),
        });
        Ok(TrainingData {
            labels: Arc::new(labels),
            warnings,
            rows: Rows::InMemory { sets, lengths },
            tokenizer,
            settings,
        })
    }

    fn train_sampler(&self) -> &dyn Sampler {
        match &self.settings.train_sampler {
            Some(s) => s.as_ref(),
            None => sampler(self.settings.shuffle),
        }
    }

    pub fn labels(&self) -> &LabelMap {
        &self.labels
    }

    /// Training labels that differ only in case or whitespace (the run goes on: a warning).
    pub fn warnings(&self) -> &[LabelWarning] {
        &self.warnings
    }

    /// Rows of `split` (this process's share when streaming a shard).
    pub fn len(&self, split: Split) -> usize {
        match &self.rows {
            Rows::InMemory { sets, .. } if split == Split::Train => self.train_sampler().len(sets[0].len()),
            Rows::InMemory { sets, .. } => sets[split as usize].len(),
            Rows::Streaming { scan, .. } => {
                let n = [scan.train_rows, scan.validation_rows, scan.test_rows][split as usize];
                let s = self.settings.shard;
                n / s.world_size + usize::from(s.rank < n % s.world_size)
            }
        }
    }

    /// Rows of the training file (all ranks'), the range a checkpoint's data order must lie in.
    pub fn train_file_rows(&self) -> usize {
        match &self.rows {
            Rows::InMemory { sets, .. } => sets[0].len(),
            Rows::Streaming { scan, .. } => scan.train_rows,
        }
    }

    /// The class ids of `split`'s single-label rows held in memory (`None` when streaming).
    pub fn classes(&self, split: Split) -> Option<std::collections::BTreeSet<i64>> {
        let Rows::InMemory { sets, .. } = &self.rows else { return None };
        let labels = sets[split as usize].labels.as_ref()?;
        Some(labels.iter().filter_map(|t| if let Target::Class(c) = t { Some(*c) } else { None }).collect())
    }

    /// Whether `split`'s rows carry labels (an unlabelled test file is only predicted).
    pub fn labelled(&self, split: Split) -> bool {
        match &self.rows {
            Rows::InMemory { sets, .. } => sets[split as usize].labels.is_some(),
            Rows::Streaming { .. } => true,
        }
    }

    /// One epoch's order of the training rows: the DataLoader's draws happen here, on the
    /// training thread. A checkpoint keeps the plan, so a resumed epoch visits the same batches.
    pub fn plan_train_pass(&self, rng: &mut RandomStream, epoch: usize) -> PassPlan {
        let s = &self.settings;
        match &self.rows {
            Rows::InMemory { sets, lengths } => {
                // Samplers count epochs from 0, as PyTorch's set_epoch does.
                let (n, sampler) = (sets[0].len(), self.train_sampler());
                let mut order = rng.dataloader_pass(|rng| sampler.indices(n, epoch.saturating_sub(1), rng));
                if let (Some(lengths), Some(grouping)) = (lengths, s.group_by_length) {
                    order = group_by_length(&order, lengths, grouping.batch_size);
                }
                PassPlan::Order(order)
            }
            Rows::Streaming { .. } => PassPlan::Stream(rng.stream_pass(s.shuffle)),
        }
    }

    /// The training batches of `plan`, without the first `skip` (already trained on before a
    /// checkpoint). Skipped batches are not computed in memory; a stream reads past them.
    pub fn train_batches(&self, plan: &PassPlan, skip: usize) -> Result<Batches> {
        let s = &self.settings;
        match (&self.rows, plan) {
            (Rows::InMemory { sets, .. }, PassPlan::Order(order)) => {
                let rest = order.get((skip * s.batch_size).min(order.len())..).unwrap_or_default();
                batches_in_order(&sets[0], rest, s.batch_size, &self.tokenizer, s.loader)
            }
            (Rows::Streaming { .. }, PassPlan::Stream(seed)) => {
                let mut batches =
                    self.streamed(Split::Train, seed.map(|x| (x, s.shuffle_buffer)), s.batch_size)?;
                for _ in 0..skip {
                    if let Some(Err(e)) = batches.next() {
                        return Err(e);
                    }
                }
                Ok(batches)
            }
            _ => Err(Error::Runtime(
                "a checkpoint's data position does not fit this data (in memory vs --streaming)".into(),
            )),
        }
    }

    /// One evaluation pass over `split` in file order (an unshuffled DataLoader: one draw, even
    /// over no rows).
    pub fn eval_pass(&self, split: Split, rng: &mut RandomStream) -> Result<Batches> {
        let s = &self.settings;
        match &self.rows {
            Rows::InMemory { sets, .. } => {
                let set = &sets[split as usize];
                let order = rng.dataloader_pass(|rng| SequentialSampler.indices(set.len(), 0, rng));
                batches_in_order(set, &order, s.eval_batch_size, &self.tokenizer, s.loader)
            }
            Rows::Streaming { .. } => {
                rng.stream_pass(false);
                self.streamed(split, None, s.eval_batch_size)
            }
        }
    }

    fn streamed(&self, split: Split, shuffle: Option<(u64, usize)>, batch_size: usize) -> Result<Batches> {
        let Rows::Streaming { source, columns, .. } = &self.rows else {
            return Err(Error::Runtime("a streamed pass over in-memory data".into()));
        };
        let spec = StreamSpec {
            source: source.clone(),
            columns: columns.clone(),
            split,
            batch_size,
            shuffle,
            shard: self.settings.shard,
        };
        let labels = self.labelled(split).then(|| self.labels.clone());
        stream::stream(spec, self.tokenizer.clone(), labels, self.settings.loader)
    }
}
