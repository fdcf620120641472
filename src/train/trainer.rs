//! The training run: the seed script's loop, one step per batch, one evaluation per epoch.
//!
//! Random draws happen in the reference script's order (`scripts/reference_train.py`): the seed,
//! the classifier's init inside loading, then per epoch the DataLoader's draws (`data::sampler`) and
//! the dropout masks of the forward passes, then the validation DataLoader's base seed.
use std::path::Path;
use std::time::Instant;

use tch::nn::{self, OptimizerConfig};
use indicatif::{ProgressBar, ProgressStyle};
use tch::Device;

use super::args::TrainArgs;
use super::metrics::{accuracy, EpochRecord, MetricsLog, StepRecord};
use crate::data::batch::{collate, Padding};
use crate::data::dataset::{read_with_split_column, SplitData};
use crate::data::labels::LabelMap;
use crate::data::sampler::epoch_order;
use crate::data::tokenize::{BertTokenizer, Encoding};
use crate::error::{Error, Result};
use crate::model::{cross_entropy, BertConfig, BertForSequenceClassification};
use crate::weights::{from_pretrained, resolve, save_config, save_weights, write_atomic, Pretrained};

/// What `train` returns: one record per epoch.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub epochs: Vec<EpochRecord>,
    pub newly_initialized: Vec<String>,
}

/// A split tokenized and labelled, ready for batching.
struct Encoded {
    encodings: Vec<Encoding>,
    labels: Vec<i64>,
    rows: Vec<usize>,
}

fn encode(split: &SplitData, tokenizer: &BertTokenizer, labels: &LabelMap, column: &str, max_length: usize) -> Result<Encoded> {
    let texts: Vec<&str> = split.examples.iter().map(|e| e.text.as_str()).collect();
    let pairs: Option<Vec<&str>> =
        split.examples.first().and_then(|e| e.text_pair.as_ref()).map(|_| split.examples.iter().map(|e| e.text_pair.as_deref().unwrap_or("")).collect());
    Ok(Encoded {
        encodings: tokenizer.encode_batch(&texts, pairs.as_deref(), max_length),
        labels: labels.encode(split, column)?,
        rows: split.examples.iter().map(|e| e.row).collect(),
    })
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
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    tch::manual_seed(args.seed as i64);

    let files = resolve(&args.model)?;
    let mut config = BertConfig::from_file(&files.config)?;
    let tokenizer = BertTokenizer::from_dir(&files.dir)?;
    if args.max_length as i64 > config.max_position_embeddings {
        return Err(Error::usage(
            "--max-length",
            format!("{} exceeds the model's max_position_embeddings ({})", args.max_length, config.max_position_embeddings),
        ));
    }

    let columns = args.columns();
    let dataset = read_with_split_column(&args.data, &columns)?;
    let labels = LabelMap::from_training(&dataset.train, &columns.label, args.num_labels)?;
    let train_set = encode(&dataset.train, &tokenizer, &labels, &columns.label, args.max_length)?;
    let val_set = encode(&dataset.validation, &tokenizer, &labels, &columns.label, args.max_length)?;
    config.set_labels(&labels.names);

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
    let pad_id = tokenizer.pad_token_id();
    let mut summary = TrainSummary { epochs: Vec::new(), newly_initialized: report.newly_initialized.clone() };
    let mut step = 0usize;
    for epoch in 1..=args.epochs {
        let started = Instant::now();
        let order = epoch_order(train_set.encodings.len(), args.shuffle);
        let progress = progress_bar(order.len().div_ceil(args.batch_size), epoch);
        let mut total_loss = 0.0;
        let mut batches = 0usize;
        let mut samples = 0usize;
        for idx in order.chunks(args.batch_size) {
            let batch = batch_of(&train_set, idx, args.padding, args.max_length, pad_id, args.device);
            let logits = model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, true);
            let loss = cross_entropy(&logits, &batch.labels);
            opt.zero_grad();
            loss.backward();
            opt.step();
            let loss = loss.double_value(&[]);
            step += 1;
            batches += 1;
            samples += idx.len();
            if !loss.is_finite() {
                return Err(Error::usage(
                    "--learning-rate",
                    format!("the loss became {loss} at epoch {epoch}, step {step}; try a smaller learning rate"),
                ));
            }
            total_loss += loss;
            progress.set_message(format!("loss {loss:.4}"));
            progress.inc(1);
            let rows = idx.iter().map(|&i| train_set.rows[i]).collect();
            log.write(&StepRecord { kind: "step", epoch, step, loss, rows })?;
            if args.max_steps.is_some_and(|m| step >= m) {
                break;
            }
        }
        progress.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let mean_loss = total_loss / batches as f64;
        println!("Epoch {epoch}, Loss: {mean_loss:.4}");
        let val_accuracy = if val_set.encodings.is_empty() {
            None
        } else {
            let acc = evaluate(&model, &val_set, args, pad_id);
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
        };
        log.write(&record)?;
        summary.epochs.push(record);
        if args.max_steps.is_some_and(|m| step >= m) {
            break;
        }
    }

    save_config(&args.output_dir, &config)?;
    save_weights(&args.output_dir.join("model.safetensors"), &config, &vs.variables())?;
    tokenizer.save_files(&args.output_dir)?;
    Ok(summary)
}

/// A step counter on stderr; indicatif draws nothing when stderr is not a terminal (logs, CI).
fn progress_bar(steps: usize, epoch: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(epoch.to_string());
    bar
}

fn batch_of(set: &Encoded, idx: &[usize], padding: Padding, max_length: usize, pad_id: i64, device: Device) -> crate::data::batch::Batch {
    let encodings: Vec<&Encoding> = idx.iter().map(|&i| &set.encodings[i]).collect();
    let labels: Vec<i64> = idx.iter().map(|&i| set.labels[i]).collect();
    collate(&encodings, &labels, padding, max_length, pad_id, device)
}

/// Validation accuracy in eval mode (no dropout, no gradients), batches in file order.
fn evaluate(model: &BertForSequenceClassification, set: &Encoded, args: &TrainArgs, pad_id: i64) -> f64 {
    let order = epoch_order(set.encodings.len(), false);
    let mut correct = 0usize;
    tch::no_grad(|| {
        for idx in order.chunks(args.batch_size) {
            let batch = batch_of(set, idx, args.padding, args.max_length, pad_id, args.device);
            let logits = model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, false);
            let predictions = logits.argmax(-1, false);
            correct += predictions.eq_tensor(&batch.labels).sum(tch::Kind::Int64).int64_value(&[]) as usize;
        }
    });
    accuracy(correct, set.encodings.len())
}
