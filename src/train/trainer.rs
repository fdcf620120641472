//! The training run: a [`Trainer`] owns the model, the optimizer, the random stream, the data and
//! the step counter, and `run` is a short loop over its methods: one training step per batch, an
//! evaluation after each epoch, a save at the end.
//!
//! Random draws happen in the reference script's order (`scripts/reference_train.py`), each through
//! the run's [`RandomStream`]: the seed, the classifier's init inside loading, then per epoch the
//! training DataLoader's draws and the dropout masks of the forward passes, then the validation
//! DataLoader's base seed. Batches are made ahead on a background thread, which draws nothing.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Reduction};

use super::args::TrainArgs;
pub use super::evaluation::Evaluation;
use super::interrupt;
use super::report::{EpochRecord, Reporter, StepRecord};
use crate::data::batch::Batch;
use crate::data::dataset::Split;
use crate::data::labels::ProblemType;
use crate::data::pipeline::LoaderSettings;
use crate::data::sampler::Shard;
use crate::data::splits::{DataSettings, TrainingData};
use crate::data::tokenize::BertTokenizer;
use crate::error::{Error, Result};
use crate::model::{loss, BertConfig, BertForSequenceClassification};
use crate::random::RandomStream;
use crate::weights::{from_pretrained, resolve, save_config, save_weights, write_atomic, Pretrained};

/// What `run` returns.
#[derive(Debug)]
pub struct TrainSummary {
    /// One record per trained epoch.
    pub epochs: Vec<EpochRecord>,
    pub newly_initialized: Vec<String>,
    pub global_step: usize,
    /// The last evaluation on the validation rows, if any.
    pub eval: Option<Evaluation>,
}

/// What one epoch of training did.
struct EpochOutcome {
    mean_loss: f64,
    samples: usize,
    seconds: f64,
    data_wait_seconds: f64,
    /// `--max-steps` was reached.
    reached_max_steps: bool,
    /// A stop was requested (signal): the model is saved and the run ends.
    interrupted: bool,
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

fn describe_device(args: &TrainArgs) -> String {
    let name = match args.device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    };
    match (args.device_auto, args.device) {
        (true, Device::Cpu) => format!("device {name} (--device auto: libtorch sees no CUDA device)"),
        (true, _) => format!("device {name} (--device auto: CUDA is available)"),
        (false, _) => format!("device {name}"),
    }
}

pub struct Trainer<'r> {
    args: TrainArgs,
    reporter: &'r mut dyn Reporter,
    rng: RandomStream,
    config: BertConfig,
    tokenizer: Arc<BertTokenizer>,
    data: TrainingData,
    vs: VarStore,
    model: BertForSequenceClassification,
    optimizer: nn::Optimizer,
    global_step: usize,
    newly_initialized: Vec<String>,
}

impl<'r> Trainer<'r> {
    /// Seeds the random stream, reads the data, loads the model and prepares the output folder.
    pub fn new(args: &TrainArgs, reporter: &'r mut dyn Reporter) -> Result<Self> {
        args.validate()?;
        reporter.device(&describe_device(args));
        if let Some(t) = args.threads {
            tch::set_num_threads(t);
        }
        let mut rng = RandomStream::manual_seed(args.seed);

        let files = resolve(&args.model)?;
        let mut config = BertConfig::from_file(&files.config)?;
        let tokenizer = Arc::new(BertTokenizer::from_dir(&files.dir)?);
        if args.max_length as i64 > config.max_position_embeddings {
            return Err(Error::usage(
                "--max-length",
                format!(
                    "{} exceeds the model's max_position_embeddings ({})",
                    args.max_length, config.max_position_embeddings
                ),
            ));
        }
        let data = TrainingData::open(
            &args.data,
            &args.columns,
            tokenizer.clone(),
            data_settings(args, &tokenizer),
        )?;
        config.set_labels(&data.labels().names);
        config.problem_type = Some(args.label_format.problem.hf_name().into());

        if args.do_train {
            prepare_output(&args.output_dir, args.overwrite)?;
        } else {
            std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
        }
        let args_json = serde_json::to_string_pretty(args).unwrap_or_default();
        write_atomic(&args.output_dir.join("training_args.json"), args_json.as_bytes())?;

        let Pretrained { vs, model, report } =
            rng.init_weights(|| from_pretrained(&files, &config, args.device))?;
        if !report.newly_initialized.is_empty() {
            reporter.note(&format!(
                "Some weights of BertForSequenceClassification were not initialized from the model checkpoint at {} \
                 and are newly initialized: {:?}{}",
                files.dir.display(),
                report.newly_initialized,
                if args.do_train { "" } else { " (nothing is trained: evaluation measures an untrained head)" }
            ));
        }
        let optimizer = nn::Adam::default().build(&vs, args.learning_rate)?;
        Ok(Trainer {
            args: args.clone(),
            reporter,
            rng,
            config,
            tokenizer,
            data,
            vs,
            model,
            optimizer,
            global_step: 0,
            newly_initialized: report.newly_initialized,
        })
    }

    /// Trains (`do_train`), validating after each epoch (`do_eval`), saves the model, then
    /// evaluates and predicts as asked; prints the seed's two lines per epoch through the reporter.
    pub fn run(mut self) -> Result<TrainSummary> {
        let mut summary = TrainSummary {
            epochs: Vec::new(),
            newly_initialized: self.newly_initialized.clone(),
            global_step: 0,
            eval: None,
        };
        if self.args.do_train {
            for epoch in 1..=self.args.epochs {
                let outcome = self.train_epoch(epoch)?;
                if outcome.interrupted {
                    self.save()?;
                    self.reporter.finish()?;
                    return Err(Error::Interrupted {
                        step: self.global_step,
                        saved: self.args.output_dir.clone(),
                    });
                }
                self.reporter.epoch_loss(epoch, outcome.mean_loss);
                if self.args.do_eval {
                    let eval = self.evaluate(Split::Validation)?;
                    if let Some(acc) = eval.accuracy() {
                        self.reporter.validation_accuracy(epoch, 100.0 * acc);
                    }
                    if let Some(mse) = eval.mse() {
                        self.reporter.validation_mse(epoch, mse);
                    }
                    summary.eval = Some(eval);
                }
                let eval = summary.eval.as_ref().filter(|_| self.args.do_eval);
                let record = EpochRecord {
                    kind: "epoch",
                    epoch,
                    loss: outcome.mean_loss,
                    val_accuracy: eval.and_then(Evaluation::accuracy).map(|a| 100.0 * a),
                    val_loss: eval.and_then(|e| e.loss),
                    train_seconds: outcome.seconds,
                    train_samples_per_second: outcome.samples as f64 / outcome.seconds.max(1e-9),
                    data_wait_seconds: outcome.data_wait_seconds,
                };
                self.reporter.epoch_finished(&record);
                summary.epochs.push(record);
                if outcome.reached_max_steps {
                    break;
                }
            }
            self.save()?;
        } else if self.args.do_eval {
            summary.eval = Some(self.evaluate(Split::Validation)?);
        }
        if let Some(eval) = summary.eval.as_ref().filter(|_| self.args.do_eval) {
            self.write_results("eval_results.json", "eval", eval, summary.epochs.len())?;
        }
        if self.args.do_predict {
            let test = self.evaluate(Split::Test)?;
            self.write_predictions(&test)?;
            if test.labels.is_some() {
                self.write_results("test_results.json", "test", &test, summary.epochs.len())?;
            }
        }
        self.reporter.finish()?;
        summary.global_step = self.global_step;
        Ok(summary)
    }

    /// One epoch over the training rows.
    fn train_epoch(&mut self, epoch: usize) -> Result<EpochOutcome> {
        let started = Instant::now();
        let mut batches = self.data.train_pass(&mut self.rng, epoch)?;
        self.reporter.epoch_started(epoch, self.data.len(Split::Train).div_ceil(self.args.batch_size));
        let (mut total_loss, mut steps, mut samples) = (0.0, 0usize, 0usize);
        let (mut reached_max_steps, mut interrupted) = (false, false);
        for loaded in batches.by_ref() {
            let loaded = loaded?;
            let loss = self.training_step(&loaded.batch.to_device(self.args.device))?;
            steps += 1;
            samples += loaded.rows.len();
            total_loss += loss;
            self.reporter.step(&StepRecord {
                kind: "step",
                epoch,
                step: self.global_step,
                loss,
                rows: loaded.rows,
            });
            if self.args.max_steps.is_some_and(|m| self.global_step >= m) {
                reached_max_steps = true;
                break;
            }
            if interrupt::stop_requested() {
                interrupted = true;
                break;
            }
        }
        let waited = batches.finish(reached_max_steps || interrupted)?;
        Ok(EpochOutcome {
            mean_loss: total_loss / steps.max(1) as f64,
            samples,
            seconds: started.elapsed().as_secs_f64(),
            data_wait_seconds: waited.as_secs_f64(),
            reached_max_steps,
            interrupted,
        })
    }

    /// Forward in training mode (dropout on), cross-entropy, backward, one optimizer step; returns
    /// the loss.
    pub fn training_step(&mut self, batch: &Batch) -> Result<f64> {
        let labels =
            batch.labels.as_ref().ok_or_else(|| Error::Runtime("a training batch without labels".into()))?;
        let model = &self.model;
        let logits = self.rng.dropout(|| {
            model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, true)
        });
        let loss = loss(&logits, labels, self.args.label_format.problem, 0.0, Reduction::Mean);
        self.optimizer.zero_grad();
        loss.backward();
        self.optimizer.step();
        let loss = loss.double_value(&[]);
        self.global_step += 1;
        if !loss.is_finite() {
            return Err(Error::usage(
                "--learning-rate",
                format!("the loss became {loss} at step {}; try a smaller learning rate", self.global_step),
            ));
        }
        Ok(loss)
    }

    /// The model in eval mode (no dropout, no gradients) over `split` in file order.
    pub fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let started = Instant::now();
        let mut batches = self.data.eval_pass(split, &mut self.rng)?;
        let labelled = self.data.labelled(split);
        let problem = self.args.label_format.problem;
        let (mut logits_all, mut labels_all, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        let mut loss_sum = 0.0;
        tch::no_grad(|| -> Result<()> {
            for loaded in batches.by_ref() {
                let loaded = loaded?;
                let batch = loaded.batch.to_device(self.args.device);
                let logits =
                    self.model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, false);
                if let Some(l) = &batch.labels {
                    let mean = loss(&logits, l, problem, 0.0, Reduction::Mean).double_value(&[]);
                    loss_sum += mean * loaded.rows.len() as f64;
                    labels_all.push(l.to_device(Device::Cpu));
                }
                logits_all.push(logits.to_device(Device::Cpu).to_kind(tch::Kind::Float));
                rows.extend(loaded.rows);
            }
            Ok(())
        })?;
        batches.finish(false)?;
        let expected = self.data.len(split);
        if rows.len() != expected {
            return Err(Error::Runtime(format!("the {} pass saw {} of {expected} rows", split.name(), rows.len())));
        }
        let width = self.config.num_labels();
        let logits = if logits_all.is_empty() {
            tch::Tensor::zeros([0, width], (tch::Kind::Float, Device::Cpu))
        } else {
            tch::Tensor::cat(&logits_all, 0)
        };
        let n = rows.len();
        Ok(Evaluation {
            split,
            problem,
            loss: (labelled && n > 0).then(|| loss_sum / n as f64),
            logits,
            labels: (labelled && !labels_all.is_empty()).then(|| tch::Tensor::cat(&labels_all, 0)),
            rows,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The model as an HF folder in the output folder: config.json, model.safetensors, tokenizer.
    pub fn save(&self) -> Result<()> {
        let out = &self.args.output_dir;
        save_config(out, &self.config)?;
        save_weights(&out.join("model.safetensors"), &self.config, &self.vs.variables())?;
        self.tokenizer.save_files(out)
    }

    /// `eval_results.json` / `test_results.json` with HF Trainer's keys (`eval_accuracy` a fraction,
    /// `eval_loss`, `eval_runtime`, ...) and every metric of the problem type.
    fn write_results(&mut self, file: &str, prefix: &str, e: &Evaluation, epochs: usize) -> Result<()> {
        let n = e.rows.len();
        let mut results = serde_json::Map::new();
        if self.args.do_train {
            results.insert("epoch".into(), json!(epochs as f64));
        }
        if let Some(acc) = e.accuracy() {
            results.insert(format!("{prefix}_accuracy"), json!(acc));
        }
        results.extend(e.metrics(prefix, &self.data.labels().names)?);
        results.insert(format!("{prefix}_runtime"), json!(e.seconds));
        results.insert(format!("{prefix}_samples"), json!(n));
        results.insert(format!("{prefix}_samples_per_second"), json!(n as f64 / e.seconds.max(1e-9)));
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        write_atomic(&self.args.output_dir.join(file), text.as_bytes())?;
        let summary = e.summary(&self.data.labels().names)?;
        if !summary.is_empty() {
            self.reporter.note(&format!("{} rows ({}):\n{summary}", e.split.name(), file));
        }
        Ok(())
    }

    /// `predict_results.txt` as HF's run_classification.py writes it: `index<TAB>prediction`, one
    /// line per test row in file order: the label name (single-label), the names joined by commas
    /// (multi-label, as HF does), or the value (regression).
    fn write_predictions(&self, e: &Evaluation) -> Result<()> {
        let names = &self.data.labels().names;
        let name = |i: usize| names.get(i).map_or("?", String::as_str).to_string();
        let items: Vec<String> = match e.problem {
            ProblemType::SingleLabelClassification => {
                e.predicted_classes().iter().map(|&p| name(p as usize)).collect()
            }
            ProblemType::MultiLabelClassification => {
                let width = names.len().max(1);
                e.predicted_sets()
                    .chunks(width)
                    .map(|row| {
                        let set: Vec<String> =
                            row.iter().enumerate().filter(|(_, &v)| v == 1).map(|(i, _)| name(i)).collect();
                        format!("[{}]", set.join(", "))
                    })
                    .collect()
            }
            ProblemType::Regression => {
                Vec::<f32>::try_from(e.logits.flatten(0, -1)).unwrap_or_default().iter().map(|v| format!("{v:.3}")).collect()
            }
        };
        let mut out = String::from("index\tprediction\n");
        for (i, item) in items.iter().enumerate() {
            out.push_str(&format!("{i}\t{item}\n"));
        }
        write_atomic(&self.args.output_dir.join("predict_results.txt"), out.as_bytes())
    }
}

fn data_settings(args: &TrainArgs, tokenizer: &BertTokenizer) -> DataSettings {
    DataSettings {
        batch_size: args.batch_size,
        eval_batch_size: args.eval_batch_size,
        loader: LoaderSettings {
            padding: args.padding,
            max_length: args.max_length,
            pad_id: tokenizer.pad_token_id(),
            prefetch: args.prefetch,
        },
        shuffle: args.shuffle,
        group_by_length: args.group_by_length,
        streaming: args.streaming,
        shuffle_buffer: args.shuffle_buffer,
        token_cache: args.token_cache.clone(),
        num_labels: args.num_labels,
        label_format: args.label_format.clone(),
        max_samples: args.max_samples,
        shuffle_train_dataset: args.shuffle_train_dataset,
        shard: Shard::WHOLE,
    }
}

/// Fine-tunes `args.model` on `args.data` as `Trainer::run` does, telling `reporter` everything.
pub fn train(args: &TrainArgs, reporter: &mut dyn Reporter) -> Result<TrainSummary> {
    interrupt::clear();
    Trainer::new(args, reporter)?.run()
}
