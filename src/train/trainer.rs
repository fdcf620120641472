//! The training run: the seed script's loop, one step per batch, one evaluation per epoch.
//!
//! Random draws happen in the reference script's order (`scripts/reference_train.py`): the seed,
//! the classifier's init inside loading, then per epoch the DataLoader's draws (`data::sampler`) and
//! the dropout masks of the forward passes, then the validation DataLoader's base seed. Batches are
//! made ahead on a background thread (`data::loader`), which draws nothing.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tch::nn::{self, OptimizerConfig};
use tch::Device;

use super::args::TrainArgs;
use super::interrupt;
use super::metrics::{accuracy, EpochRecord, MetricsLog, StepRecord};
use crate::data::batch::Batch;
use crate::data::dataset::{read_dataset, Columns, DataSource, Split};
use crate::data::labels::LabelMap;
use crate::data::loader::{EpochBatches, Loader, LoaderSettings, Prepared};
use crate::data::sampler::{draw_int64_seed, epoch_order, group_by_length};
use crate::data::stream::{self, Scan, StreamLoader, StreamSpec};
use crate::data::token_cache;
use crate::data::tokenize::BertTokenizer;
use crate::error::{Error, Result};
use crate::model::{cross_entropy, BertConfig, BertForSequenceClassification};
use crate::weights::{from_pretrained, resolve, write_atomic, Pretrained};

/// What `train` returns: one record per epoch.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub epochs: Vec<EpochRecord>,
    pub newly_initialized: Vec<String>,
}

/// Refuses to write into a folder that already holds a model, unless told to: a finished run
/// must not be lost to a typo.
fn prepare_output(dir: &Path, overwrite: bool) -> Result<()> {
    if dir.join("config.json").exists() && !overwrite {
        return Err(Error::usage(
            "--output-dir",
            format!("{} already holds a model; pass --overwrite to replace it", dir.display()),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Fine-tunes `args.model` on `args.data`, printing the seed script's two lines per epoch, and
/// saves the result as an HF folder in `args.output_dir`.
pub fn train(args: &TrainArgs) -> Result<TrainSummary> {
    args.validate()?;
    interrupt::clear();
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    tch::manual_seed(args.seed as i64);

    let files = resolve(&args.model)?;
    let mut config = BertConfig::from_file(&files.config)?;
    let tokenizer = Arc::new(BertTokenizer::from_dir(&files.dir)?);
    crate::data::tokenize::check_vocab(&tokenizer, &config, &files.config)?;
    if args.max_length as i64 > config.max_position_embeddings {
        return Err(Error::usage(
            "--max-length",
            format!(
                "{} exceeds the model's max_position_embeddings ({})",
                args.max_length, config.max_position_embeddings
            ),
        ));
    }

    let columns = &args.columns;
    let data = Data::open(args, columns, &tokenizer)?;
    config.set_labels(&data.labels().names);

    prepare_output(&args.output_dir, args.overwrite)?;
    let args_json = serde_json::to_string_pretty(args).unwrap_or_default();
    write_atomic(&args.output_dir.join("training_args.json"), args_json.as_bytes())?;

    let Pretrained { vs, model, report } = from_pretrained(&files, &config, args.device)?;
    if !report.newly_initialized.is_empty() {
        eprintln!(
            "Some weights of BertForSequenceClassification were not initialized from the model checkpoint at {} \
             and are newly initialized: {:?}",
            files.dir.display(),
            report.newly_initialized
        );
    }

    let mut opt = nn::Adam::default().build(&vs, args.learning_rate)?;
    let mut log = MetricsLog::create(&args.output_dir.join("metrics.jsonl"))?;
    let settings = LoaderSettings {
        padding: args.padding,
        max_length: args.max_length,
        pad_id: tokenizer.pad_token_id(),
        prefetch: args.prefetch,
    };
    let mut summary =
        TrainSummary { epochs: Vec::new(), newly_initialized: report.newly_initialized.clone() };
    let mut step = 0usize;
    let mut interrupted = false;
    for epoch in 1..=args.epochs {
        let started = Instant::now();
        let mut batches = data.train_batches(args, &tokenizer, settings)?;
        let progress = progress_bar(data.train_len().div_ceil(args.batch_size), epoch);
        let (mut total_loss, mut steps_done, mut samples) = (0.0, 0usize, 0usize);
        let mut stopped = false;
        for loaded in batches.by_ref() {
            let loaded = loaded?;
            let batch = loaded.batch.to_device(args.device);
            let logits =
                model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, true);
            let loss = cross_entropy(&logits, &batch.labels);
            opt.zero_grad();
            loss.backward();
            opt.step();
            let loss = loss.double_value(&[]);
            step += 1;
            steps_done += 1;
            samples += loaded.rows.len();
            if !loss.is_finite() {
                return Err(Error::usage(
                    "--learning-rate",
                    format!(
                        "the loss became {loss} at epoch {epoch}, step {step}; try a smaller learning rate"
                    ),
                ));
            }
            total_loss += loss;
            progress.set_message(format!("loss {loss:.4}"));
            progress.inc(1);
            log.write(&StepRecord { kind: "step", epoch, step, loss, rows: loaded.rows })?;
            if args.max_steps.is_some_and(|m| step >= m) {
                stopped = true;
                break;
            }
            if interrupt::stop_requested() {
                interrupted = true;
                break;
            }
        }
        let waited = batches.finish(stopped || interrupted)?.as_secs_f64();
        progress.finish_and_clear();
        if interrupted {
            break;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let mean_loss = total_loss / steps_done.max(1) as f64;
        println!("Epoch {epoch}, Loss: {mean_loss:.4}");
        let val_accuracy = if data.validation_len() == 0 {
            None
        } else {
            let acc = evaluate(
                &model,
                data.validation_batches(args, &tokenizer, settings)?,
                data.validation_len(),
                args.device,
            )?;
            println!("Validation Accuracy: {acc:.2}%");
            Some(acc)
        };
        let record = EpochRecord {
            kind: "epoch",
            epoch,
            loss: mean_loss,
            val_accuracy,
            train_seconds,
            train_samples_per_second: samples as f64 / train_seconds,
            data_wait_seconds: waited,
        };
        log.write(&record)?;
        summary.epochs.push(record);
        if stopped {
            break;
        }
    }

    crate::weights::save_pretrained(&args.output_dir, &config, &vs.variables(), &tokenizer, &[])?;
    if interrupted {
        return Err(Error::Interrupted { step, saved: args.output_dir.clone() });
    }
    Ok(summary)
}

/// A step counter on stderr; indicatif draws nothing when stderr is not a terminal (logs, CI).
fn progress_bar(steps: usize, epoch: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(epoch.to_string());
    bar
}

/// Validation accuracy in eval mode (no dropout, no gradients), batches in file order.
fn evaluate(
    model: &BertForSequenceClassification,
    mut batches: Box<dyn EpochBatches>,
    total: usize,
    device: Device,
) -> Result<f64> {
    let mut correct = 0usize;
    let mut seen = 0usize;
    tch::no_grad(|| -> Result<()> {
        for loaded in batches.by_ref() {
            let batch: Batch = loaded?.batch.to_device(device);
            let logits =
                model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, false);
            let predictions = logits.argmax(-1, false);
            correct += predictions.eq_tensor(&batch.labels).sum(tch::Kind::Int64).int64_value(&[]) as usize;
            seen += batch.size();
        }
        Ok(())
    })?;
    batches.finish(false)?;
    if seen != total {
        return Err(Error::Runtime(format!("validation saw {seen} of {total} rows")));
    }
    Ok(accuracy(correct, total))
}

/// The training data, held in memory (exact PyTorch order) or streamed from the files.
enum Data {
    InMemory {
        labels: LabelMap,
        train: Arc<Prepared>,
        validation: Arc<Prepared>,
        lengths: Option<Vec<usize>>,
    },
    Streaming(Streamed),
}

/// What a streamed pass needs: the first pass's label map and counts, and where the rows are.
struct Streamed {
    scan: Scan,
    labels: Arc<LabelMap>,
    source: DataSource,
    columns: Columns,
}

impl Streamed {
    fn pass(
        &self,
        split: Split,
        shuffle: Option<(u64, usize)>,
        batch_size: usize,
        tokenizer: &Arc<BertTokenizer>,
        settings: LoaderSettings,
    ) -> Result<Box<dyn EpochBatches>> {
        let spec = StreamSpec {
            source: self.source.clone(),
            columns: self.columns.clone(),
            split,
            batch_size,
            shuffle,
        };
        Ok(Box::new(StreamLoader::spawn(spec, tokenizer.clone(), self.labels.clone(), settings)?))
    }
}

impl Data {
    fn open(args: &TrainArgs, columns: &Columns, tokenizer: &BertTokenizer) -> Result<Data> {
        if args.streaming {
            let scan = stream::scan(&args.data, columns, args.num_labels)?;
            return Ok(Data::Streaming(Streamed {
                labels: Arc::new(scan.labels.clone()),
                scan,
                source: args.data.clone(),
                columns: columns.clone(),
            }));
        }
        let dataset = read_dataset(&args.data, columns)?;
        let labels = LabelMap::from_training(&dataset.train, &columns.label, args.num_labels)?;
        let train = Arc::new(Prepared::new(&dataset.train, &labels, &columns.label, args.max_length)?);
        let validation =
            Arc::new(Prepared::new(&dataset.validation, &labels, &columns.label, args.max_length)?);
        if let Some(dir) = &args.token_cache {
            token_cache::fill(dir, &args.data, columns, tokenizer, args.max_length, &[&train, &validation])?;
        }
        let lengths = args.group_by_length.then(|| train.lengths(tokenizer));
        Ok(Data::InMemory { labels, train, validation, lengths })
    }

    fn labels(&self) -> &LabelMap {
        match self {
            Data::InMemory { labels, .. } => labels,
            Data::Streaming(s) => &s.labels,
        }
    }

    fn train_len(&self) -> usize {
        match self {
            Data::InMemory { train, .. } => train.len(),
            Data::Streaming(s) => s.scan.train_rows,
        }
    }

    fn validation_len(&self) -> usize {
        match self {
            Data::InMemory { validation, .. } => validation.len(),
            Data::Streaming(s) => s.scan.validation_rows,
        }
    }

    /// One epoch's training batches. The order is drawn here, on the training thread, so the
    /// random stream stays PyTorch's.
    fn train_batches(
        &self,
        args: &TrainArgs,
        tokenizer: &Arc<BertTokenizer>,
        settings: LoaderSettings,
    ) -> Result<Box<dyn EpochBatches>> {
        match self {
            Data::InMemory { train, lengths, .. } => {
                let mut order = epoch_order(train.len(), args.shuffle);
                if let Some(lengths) = lengths {
                    order = group_by_length(&order, lengths, args.batch_size);
                }
                in_memory(train, &order, args.batch_size, tokenizer, settings)
            }
            Data::Streaming(s) => {
                let shuffle = args.shuffle.then(|| (draw_int64_seed() as u64, args.shuffle_buffer));
                s.pass(Split::Train, shuffle, args.batch_size, tokenizer, settings)
            }
        }
    }

    /// Validation batches in file order (drawn like an unshuffled PyTorch DataLoader, which still
    /// draws its base seed).
    fn validation_batches(
        &self,
        args: &TrainArgs,
        tokenizer: &Arc<BertTokenizer>,
        settings: LoaderSettings,
    ) -> Result<Box<dyn EpochBatches>> {
        match self {
            Data::InMemory { validation, .. } => {
                let order = epoch_order(validation.len(), false);
                in_memory(validation, &order, args.batch_size, tokenizer, settings)
            }
            Data::Streaming(s) => s.pass(Split::Validation, None, args.batch_size, tokenizer, settings),
        }
    }
}

/// Batches of `order` cut from an in-memory split, made on the loader thread.
fn in_memory(
    set: &Arc<Prepared>,
    order: &[usize],
    batch_size: usize,
    tokenizer: &Arc<BertTokenizer>,
    settings: LoaderSettings,
) -> Result<Box<dyn EpochBatches>> {
    let batches = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    Ok(Box::new(Loader::spawn(set.clone(), tokenizer.clone(), batches, settings)?))
}
