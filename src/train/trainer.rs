//! The training run: a [`Trainer`] owns the model, the optimizer, the random stream, the data and
//! the step counter, and `run` is a short loop over its methods: one training step per batch, an
//! evaluation after each epoch, a save at the end.
//!
//! Random draws happen in the reference script's order (`scripts/reference_train.py`), each through
//! the run's [`RandomStream`]: the seed, the classifier's init inside loading, then per epoch the
//! training DataLoader's draws and the dropout masks of the forward passes, then the validation
//! DataLoader's base seed. Batches are made ahead on a background thread, which draws nothing.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Reduction};

use super::args::SaveStrategy;
use super::args::TrainArgs;
use super::checkpoint::{self, Fingerprint, Position, TrainerState};
pub use super::evaluation::Evaluation;
use super::identity::RunIdentity;
use super::interrupt;
use super::optim::{named_trainable, Optimizer, OptimizerSettings};
use super::output_folder::{self, OutputFolder};
use super::pending::PendingSteps;
use super::precision::{autocast, LossScaler, Precision, ScalerSettings};
use super::report::{describe_device, CheckpointRecord, EpochRecord, Reporter, StepRecord};
use super::schedule::{warmup_steps, Schedule};
use super::startup::Startup;
use super::update::Updater;
use super::verify;
use crate::data::batch::Batch;
use crate::data::dataset::Split;
use crate::data::labels::ProblemType;
use crate::data::pipeline::LoaderSettings;
use crate::data::sampler::Shard;
use crate::data::splits::PassPlan;
use crate::data::splits::{DataSettings, TrainingData};
use crate::data::tokenize::check_vocab;
use crate::data::tokenize::BertTokenizer;
use crate::dist::ddp::Ddp;
use crate::dist::sampler::DistributedSampler;
use crate::error::{Error, Result};
use crate::model::{loss, names, BertConfig, BertForSequenceClassification, LayoutPolicy};
use crate::random::RandomStream;
use crate::weights::{from_pretrained, resolve, save_pretrained, write_atomic, Pretrained};

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
    /// Multi-process runs: time spent averaging gradients across ranks.
    allreduce_seconds: Option<f64>,
    /// `--max-steps` was reached.
    reached_max_steps: bool,
    /// Early stopping's patience ran out.
    stop_early: bool,
    /// A stop was requested (signal): the model is saved and the run ends.
    interrupted: bool,
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
    /// How each batch is laid out (padded or `--unpadded`), from the host's copy of its mask.
    layouts: LayoutPolicy,
    updater: Updater,
    /// The process group of a multi-process run (torchrun / SLURM variables), rank 0 writing.
    ddp: Option<Ddp>,
    global_step: usize,
    /// The best evaluation so far by the recipe's metric: (value, step, weights).
    best: Option<Best>,
    /// Evaluations since the metric last improved (early stopping).
    evals_without_improvement: usize,
    /// HF's log_history: one entry per step and evaluation (trainer_state.json).
    log_history: Vec<serde_json::Value>,
    /// When the run started (train_runtime).
    started: Instant,
    /// Everything written to the *_results.json files, for all_results.json.
    results: serde_json::Map<String, serde_json::Value>,
    newly_initialized: Vec<String>,
    /// Start-up phases until the first step; taken (and reported) once it is done.
    startup: Option<Startup>,
    /// The checkpoint folder this run continues from (`--resume-from-checkpoint`, resolved).
    resume: Option<std::path::PathBuf>,
    /// `auto` found this very run finished in the output folder, at this step: nothing to do.
    finished_at: Option<usize>,
    /// Which run this is, as checkpoints record it.
    identity: RunIdentity,
    /// The output folder, held for the run's lifetime (rank 0 of a training run).
    _lock: Option<crate::output::RunLock>,
}

impl<'r> Trainer<'r> {
    /// Seeds the random stream, reads the data, loads the model and prepares the output folder.
    pub fn new(args: &TrainArgs, reporter: &'r mut dyn Reporter) -> Result<Self> {
        let mut startup = Startup::begin();
        args.validate()?;
        reporter.device(&describe_device(args.device, args.device_auto));
        if let Some(t) = args.threads {
            tch::set_num_threads(t);
        }
        let mut rng = RandomStream::manual_seed(args.seed);
        let backend = crate::dist::ddp::choose_backend(args.ddp_backend, args.device)?;
        let timeout = std::time::Duration::from_secs(args.ddp_timeout);
        let ddp = Ddp::from_env_with(backend, timeout, args.ddp_backend.is_some())?;
        let mut args = args.clone();
        if let Some(d) = &ddp {
            if let Device::Cuda(_) = args.device {
                args.device = Device::Cuda(d.local_rank());
            }
        }
        // Saved resolved (training_args.json), so the folder alone repeats the run on any device.
        args.unpadded = Some(args.unpadded());
        let args = &args;

        let files = resolve(&args.model)?;
        let mut config = BertConfig::from_file(&files.config)?;
        let tokenizer = Arc::new(BertTokenizer::from_dir(&files.dir)?);
        check_vocab(&tokenizer, &config, &files.config)?;
        startup.mark("tokenizer");
        // Before the data is read: the folder is this run's, or the run stops here.
        let is_main = ddp.as_ref().is_none_or(Ddp::is_main);
        let identity = RunIdentity::of(args, &files)?;
        let OutputFolder { lock, resume, finished_at } = OutputFolder::claim(args, &identity, is_main)?;
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
            data_settings(args, &tokenizer, ddp.as_ref()),
        )?;
        startup.mark("data");
        for w in data.warnings() {
            reporter.note(&format!("warning: {w}"));
        }
        config.set_labels(&data.labels().names);
        config.problem_type = Some(args.label_format.problem.hf_name().into());

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
        if args.recipe.tf32 {
            crate::torch_ext::set_allow_tf32(true)?;
        }
        startup.mark("weights");
        let updater = build_updater(args, &config, &vs, &data)?;
        let mut ddp = ddp;
        if let Some(d) = ddp.as_mut() {
            // DDP's first step: every rank starts from rank 0's weights.
            let params: Vec<tch::Tensor> = updater.optimizer.params().into_iter().map(|(_, t)| t).collect();
            tch::no_grad(|| d.broadcast_parameters(&params))?;
        }
        // Only now, with every input checked, is anything written.
        // Only the output folder itself is made now; everything in it is written by the final
        // save in one swap (training_args.json included), so a run that fails earlier changes
        // nothing a previous run left there.
        std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
        if args.overwrite && args.do_train && is_main && resume.is_none() && finished_at.is_none() {
            if let Some(note) = output_folder::set_aside_old_checkpoints(&args.output_dir)? {
                reporter.note(&note);
            }
        }
        startup.mark("optimizer");

        Ok(Trainer {
            args: args.clone(),
            reporter,
            rng,
            config,
            tokenizer,
            data,
            vs,
            model,
            layouts: LayoutPolicy::new(args.device, args.unpadded()),
            updater,
            ddp,
            global_step: 0,
            best: None,
            evals_without_improvement: 0,
            log_history: Vec::new(),
            started: Instant::now(),
            results: serde_json::Map::new(),
            newly_initialized: report.newly_initialized,
            startup: Some(startup),
            resume,
            finished_at,
            identity,
            _lock: lock,
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
        if let (true, Some(step)) = (self.args.do_train, self.finished_at) {
            self.reporter.note(&format!(
                "{} holds this run, finished at step {step}: nothing to do",
                self.args.output_dir.display()
            ));
            summary.global_step = step;
            return Ok(summary);
        }
        if self.args.do_train {
            let mut resume = None;
            let mut first_epoch = 1;
            if let Some(dir) = self.resume.clone() {
                let (plan, position) = self.restore(&dir)?;
                self.reporter.note(&format!("resuming from {} (step {})", dir.display(), self.global_step));
                first_epoch = position.epoch;
                resume = Some((plan, position));
            }
            // Optimizer steps of the whole run, as the schedule counts them.
            let total = self.updater.schedule.total_steps;
            if resume.is_some() && self.global_step >= total {
                // A requeue after the last checkpoint: the run is complete; one more step would
                // give a model that is not the run's.
                self.reporter.note(&format!(
                    "the checkpoint is at step {} of {total}: the run is complete, nothing left to train",
                    self.global_step
                ));
                first_epoch = self.args.epochs + 1;
            }
            for epoch in first_epoch..=self.args.epochs {
                let outcome = self.train_epoch(epoch, resume.take())?;
                if outcome.interrupted {
                    self.save(false)?;
                    self.reporter.finish()?;
                    // Every rank leaves only once rank 0's save is complete: a launcher that ends
                    // the job when the first task exits would otherwise cut the save short.
                    if let Some(d) = self.ddp.as_mut() {
                        d.barrier()?;
                    }
                    return Err(Error::Interrupted {
                        step: self.global_step,
                        saved: self.args.output_dir.clone(),
                    });
                }
                self.reporter.epoch_loss(epoch, outcome.mean_loss);
                let mut stop_early = outcome.stop_early;
                if self.args.do_eval {
                    let eval = self.evaluate(Split::Validation)?;
                    if let Some(percent) = eval.accuracy_percent() {
                        self.reporter.validation_accuracy(epoch, percent);
                    }
                    if let Some(mse) = eval.mse() {
                        self.reporter.validation_mse(epoch, mse);
                    }
                    if !stop_early {
                        // (An early stop already counted this step's evaluation.)
                        stop_early |= self.track_best(&eval, epoch)?;
                    }
                    summary.eval = Some(eval);
                }
                let eval = summary.eval.as_ref().filter(|_| self.args.do_eval);
                let record = EpochRecord {
                    kind: "epoch",
                    epoch,
                    loss: outcome.mean_loss,
                    val_accuracy: eval.and_then(Evaluation::accuracy_percent),
                    val_loss: eval.and_then(|e| e.loss),
                    train_seconds: outcome.seconds,
                    train_samples_per_second: outcome.samples as f64 / outcome.seconds.max(1e-9),
                    data_wait_seconds: outcome.data_wait_seconds,
                    allreduce_seconds: outcome.allreduce_seconds,
                };
                self.reporter.epoch_finished(&record);
                summary.epochs.push(record);
                if outcome.reached_max_steps || stop_early {
                    break;
                }
                if self.args.save_strategy == SaveStrategy::Epoch {
                    let next = Position {
                        epoch: epoch + 1,
                        scheduled_steps: self.updater.scheduled_steps,
                        ..Default::default()
                    };
                    self.save_checkpoint(None, &next)?;
                }
            }
            if let Some(best) = self.best.take() {
                self.reporter.note(&format!(
                    "keeping the best model: {} = {} at step {}",
                    best.metric, best.value, best.step
                ));
                tch::no_grad(|| {
                    for (var, saved) in self.trainable().iter().zip(&best.weights) {
                        var.shallow_clone().copy_(saved);
                    }
                });
                summary.eval = Some(self.evaluate(Split::Validation)?);
                self.best = Some(best);
            }
            self.save(true)?;
            if !summary.epochs.is_empty() || !self.args.output_dir.join("train_results.json").exists() {
                self.write_train_results(&summary)?;
            }
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
        if !self.results.is_empty() && self.is_main() {
            let text = serde_json::to_string_pretty(&self.results).unwrap_or_default();
            write_atomic(&self.args.output_dir.join("all_results.json"), text.as_bytes())?;
        }
        self.reporter.finish()?;
        if let Some(d) = self.ddp.as_mut() {
            d.barrier()?;
        }
        summary.global_step = self.global_step;
        Ok(summary)
    }

    /// One epoch over the training rows: micro-batches accumulate gradients in windows of
    /// `gradient_accumulation_steps` (the epoch's last window may be shorter), one update each.
    fn train_epoch(
        &mut self,
        epoch: usize,
        resume: Option<(Option<PassPlan>, Position)>,
    ) -> Result<EpochOutcome> {
        let started = Instant::now();
        let allreduce_before = self.ddp.as_ref().map(Ddp::allreduce_seconds);
        let (plan, pos) = match resume {
            Some((Some(plan), pos)) => (plan, pos),
            Some((None, pos)) => (self.data.plan_train_pass(&mut self.rng, epoch), pos),
            None => {
                (self.data.plan_train_pass(&mut self.rng, epoch), Position { epoch, ..Default::default() })
            }
        };
        let mut batches = self.data.train_batches(&plan, pos.batches_done)?;
        let total_batches = batches_per_epoch(&self.data, self.args.batch_size);
        let accumulation = self.args.recipe.gradient_accumulation_steps;
        self.reporter.epoch_started(epoch, total_batches.div_ceil(accumulation));
        let (mut total_loss, mut steps, mut samples, mut consumed) =
            (pos.epoch_loss_sum, pos.epoch_steps, pos.epoch_samples, pos.batches_done);
        let (mut reached_max_steps, mut interrupted, mut stop_early) = (false, false, false);
        let mut window = Window::default();
        let mut pending = PendingSteps::for_device(self.args.device);
        for loaded in batches.by_ref() {
            let loaded = loaded?;
            if let Some(s) = self.startup.as_mut() {
                s.first_batch_ready();
            }
            if window.micro_batches == 0 {
                window.size = accumulation.min(total_batches.saturating_sub(consumed)).max(1);
            }
            consumed += 1;
            samples += loaded.rows.len();
            let micro = self.micro_step(&loaded.batch, window.size)? / window.size as f64;
            window.loss = Some(match window.loss.take() {
                Some(sum) => sum + micro,
                None => micro,
            });
            window.rows.extend(loaded.rows);
            window.micro_batches += 1;
            if window.micro_batches < window.size {
                continue;
            }
            let mut done = std::mem::take(&mut window);
            let mut rank_rows = None;
            // Multi-process runs stop where every rank agreed to (the step's summary).
            let mut agreed_stop = None;
            if let Some(d) = self.ddp.as_mut() {
                // After the window's last backward (no all-reduce on earlier micro-steps, as DDP's
                // no_sync): gradients averaged over ranks, and the step's loss over all examples.
                let params: Vec<tch::Tensor> =
                    self.updater.optimizer.params().into_iter().map(|(_, t)| t).collect();
                d.all_reduce_gradients(&params)?;
                // (A host read: one sync per step in multi-process runs.)
                let local = done.loss.as_ref().map_or(f64::NAN, |l| l.double_value(&[]));
                let capacity = self.args.batch_size * accumulation;
                let summary = d.step_summary(local, &done.rows, capacity, interrupt::stop_requested())?;
                done.loss = Some(tch::Tensor::from(summary.loss));
                rank_rows = Some(summary.rank_rows);
                agreed_stop = Some(summary.stop);
            }
            let update = self.updater.apply()?;
            if let Some(mut s) = self.startup.take() {
                s.mark("first_step");
                self.reporter.startup(&s.record());
            }
            self.global_step += 1;
            steps += 1;
            let record = StepRecord {
                kind: "step",
                epoch,
                step: self.global_step,
                loss: f64::NAN, // read from the device below
                lr: update.lr,
                skipped: update.scale.map(|_| update.skipped),
                scale: update.scale,
                rows: done.rows,
                rank_rows,
            };
            let epoch_fraction = (epoch - 1) as f64 + consumed as f64 / total_batches.max(1) as f64;
            pending.push(done.loss.unwrap_or_else(|| tch::Tensor::from(f64::NAN)), record, epoch_fraction);
            let eval_due = self.args.recipe.eval_steps.is_some_and(|n| self.global_step.is_multiple_of(n))
                && self.args.do_eval;
            let save_due = self.args.save_strategy == SaveStrategy::Steps
                && self.global_step.is_multiple_of(self.args.save_steps);
            if pending.due() || eval_due || save_due {
                self.record_steps(&mut pending, &mut total_loss)?;
            }
            if eval_due {
                let eval = self.evaluate(Split::Validation)?;
                stop_early |= self.track_best(&eval, epoch)?;
            }
            crate::output::hooks::step_pause();
            interrupted = agreed_stop.unwrap_or_else(interrupt::stop_requested);
            if save_due || interrupted {
                self.record_steps(&mut pending, &mut total_loss)?;
                let here = Position {
                    epoch,
                    batches_done: consumed,
                    epoch_loss_sum: total_loss,
                    epoch_steps: steps,
                    epoch_samples: samples,
                    scheduled_steps: self.updater.scheduled_steps,
                    stream_seed: match &plan {
                        PassPlan::Stream(seed) => *seed,
                        PassPlan::Order(_) => None,
                    },
                    evals_without_improvement: self.evals_without_improvement,
                };
                self.save_checkpoint(Some(&plan), &here)?;
            }
            if self.args.max_steps.is_some_and(|m| self.global_step >= m) {
                reached_max_steps = true;
                break;
            }
            if interrupted {
                break;
            }
            if stop_early {
                break;
            }
        }
        self.record_steps(&mut pending, &mut total_loss)?;
        let waited = batches.finish(reached_max_steps || interrupted || stop_early)?;
        Ok(EpochOutcome {
            mean_loss: total_loss / steps.max(1) as f64,
            samples,
            seconds: started.elapsed().as_secs_f64(),
            data_wait_seconds: waited.as_secs_f64(),
            allreduce_seconds: allreduce_before
                .zip(self.ddp.as_ref().map(Ddp::allreduce_seconds))
                .map(|(before, after)| after - before),
            reached_max_steps,
            interrupted,
            stop_early,
        })
    }

    /// Reads the pending steps' losses (one transfer), adds them to the epoch's sum, stops an fp32
    /// or bf16 run at the first non-finite one, and logs each step (log_history, the reporter).
    fn record_steps(&mut self, pending: &mut PendingSteps, epoch_loss_sum: &mut f64) -> Result<()> {
        for (record, epoch_fraction) in pending.read() {
            *epoch_loss_sum += record.loss;
            if !record.loss.is_finite() && self.args.recipe.precision != Precision::Fp16 {
                return Err(Error::usage(
                    "--learning-rate",
                    format!(
                        "the loss became {} at step {}; try a smaller learning rate{}",
                        record.loss,
                        record.step,
                        checkpoint::list(&self.args.output_dir).pop().map_or(
                            String::new(),
                            |(_, p)| format!(
                                " (the last good checkpoint is {}: --resume-from-checkpoint latest)",
                                p.display()
                            )
                        )
                    ),
                ));
            }
            self.log_history.push(json!({
                "epoch": epoch_fraction,
                "step": record.step,
                "loss": record.loss,
                "learning_rate": record.lr,
            }));
            self.reporter.step(&record);
        }
        Ok(())
    }

    /// Forward in training mode (dropout on) under the run's autocast, the loss, and backward of
    /// the loss divided by the accumulation window (scaled under fp16); returns the batch's loss
    /// (a 0-dim f64 tensor on the device: reading it would wait for the GPU).
    /// `host`: the batch as the loader made it, on the host; it goes to the run's device here.
    pub fn micro_step(&mut self, host: &Batch, window: usize) -> Result<tch::Tensor> {
        let batch = &host.to_device(self.args.device);
        let labels =
            batch.labels.as_ref().ok_or_else(|| Error::Runtime("a training batch without labels".into()))?;
        let (model, recipe) = (&self.model, &self.args.recipe);
        let problem = self.args.label_format.problem;
        let layout = self.layouts.for_batch(&host.attention_mask);
        let loss = {
            let _autocast = autocast(self.args.device, recipe.precision)?;
            let logits =
                self.rng.dropout(|| model.forward_t(&batch.input_ids, &batch.token_type_ids, &layout, true));
            loss(&logits, labels, problem, recipe.label_smoothing, Reduction::Mean)
        };
        if let Some(fallback) = self.layouts.fallback(&layout) {
            self.reporter.note(&fallback.to_string());
        }
        let scaled = if window > 1 { &loss / window as f64 } else { loss.shallow_clone() };
        self.updater.backward_loss(&scaled)?.backward();
        // Left on the device (train::pending); f64, so window sums are the host's bits.
        Ok(loss.detach().to_kind(tch::Kind::Double))
    }

    /// The model's trainable tensors in state-dict order.
    fn trainable(&self) -> Vec<tch::Tensor> {
        self.updater.optimizer.params().into_iter().map(|(_, t)| t).collect()
    }

    /// Keeps the best model by the recipe's metric and counts evaluations without improvement;
    /// returns whether early stopping's patience ran out.
    fn track_best(&mut self, eval: &Evaluation, epoch: usize) -> Result<bool> {
        let metrics = eval.metrics("eval", &self.data.labels().names)?;
        let mut record = serde_json::Map::new();
        record.insert("kind".into(), json!("eval"));
        record.insert("epoch".into(), json!(epoch));
        record.insert("step".into(), json!(self.global_step));
        if let Some(acc) = eval.accuracy() {
            record.insert("eval_accuracy".into(), json!(acc));
        }
        record.extend(metrics.clone());
        let record = serde_json::Value::Object(record);
        self.log_history.push(record.clone());
        self.reporter.evaluated(&record);
        let Some((key, greater)) = self.args.recipe.best_model_metric() else { return Ok(false) };
        let value =
            if key == "eval_accuracy" { eval.accuracy() } else { metrics.get(&key).and_then(|v| v.as_f64()) };
        let Some(value) = value else {
            return Err(Error::usage(
                "--metric-for-best-model",
                format!("the evaluation has no '{key}' (it has {:?})", metrics.keys().collect::<Vec<_>>()),
            ));
        };
        let improved = match &self.best {
            None => true,
            Some(b) => {
                if greater {
                    value > b.value
                } else {
                    value < b.value
                }
            }
        };
        if improved {
            let weights = tch::no_grad(|| self.trainable().iter().map(|t| t.detach().copy()).collect());
            self.best = Some(Best { metric: key.clone(), value, step: self.global_step, weights });
            self.evals_without_improvement = 0;
        } else {
            self.evals_without_improvement += 1;
        }
        let patience = self.args.recipe.early_stopping_patience;
        let stop = patience.is_some_and(|p| self.evals_without_improvement >= p);
        if stop {
            self.reporter.note(&format!(
                "early stopping at step {}: no improvement of {key} in {} evaluations",
                self.global_step, self.evals_without_improvement
            ));
        }
        Ok(stop)
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
                // HF evaluates under the same autocast as it trains.
                let _autocast = autocast(self.args.device, self.args.recipe.precision)?;
                let layout = self.layouts.for_batch(&loaded.batch.attention_mask);
                let logits = self.model.forward_t(&batch.input_ids, &batch.token_type_ids, &layout, false);
                if let Some(fallback) = self.layouts.fallback(&layout) {
                    self.reporter.note(&fallback.to_string());
                }
                if let Some(l) = &batch.labels {
                    // HF evaluates with the training loss, label smoothing included.
                    let smoothing = self.args.recipe.label_smoothing;
                    let mean = loss(&logits, l, problem, smoothing, Reduction::Mean).double_value(&[]);
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
            return Err(Error::Runtime(format!(
                "the {} pass saw {} of {expected} rows",
                split.name(),
                rows.len()
            )));
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

    /// Whether this process writes the run's files (rank 0, or the only process).
    fn is_main(&self) -> bool {
        self.ddp.as_ref().is_none_or(Ddp::is_main)
    }

    /// What a checkpoint must share with this run to continue it.
    fn fingerprint(&self) -> Fingerprint {
        let c = &self.config;
        Fingerprint {
            model_shape: format!(
                "vocab {} hidden {} layers {} heads {} intermediate {}",
                c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size
            ),
            labels: self.data.labels().names.clone(),
            problem_type: self.args.label_format.problem.hf_name().into(),
            batch_size: self.args.batch_size,
            gradient_accumulation_steps: self.args.recipe.gradient_accumulation_steps,
            max_length: self.args.max_length,
            padding: format!("{:?}", self.args.padding),
            shuffle: self.args.shuffle,
            streaming: self.args.streaming,
            train_rows: self.data.len(Split::Train),
            optim: format!("{:?} fused={}", self.args.recipe.optim, self.args.recipe.fused),
            precision: self.args.recipe.precision.as_str().into(),
            world_size: self.ddp.as_ref().map_or(1, Ddp::world_size),
        }
    }

    /// Multi-process runs: every rank's generator state and data order (`order`), gathered on
    /// every rank as `rank<r>.rng.cpu` / `rank<r>.data.order` tensors. A collective: every rank
    /// calls it at the same step. Empty in a single-process run.
    fn gather_rank_state(&mut self, order: Option<&[i64]>) -> Result<Vec<(String, tch::Tensor)>> {
        let Some(d) = self.ddp.as_mut() else { return Ok(Vec::new()) };
        let rng: Vec<f64> = Vec::<u8>::try_from(&self.rng.state()?)?.into_iter().map(f64::from).collect();
        let mut out = Vec::new();
        for (r, state) in d.all_gather(&rng)?.into_iter().enumerate() {
            let bytes: Vec<u8> = state.into_iter().map(|b| b as u8).collect();
            out.push((format!("rank{r}.rng.cpu"), tch::Tensor::from_slice(&bytes)));
        }
        if let Some(order) = order {
            let order: Vec<f64> = order.iter().map(|&i| i as f64).collect();
            for (r, indices) in d.all_gather(&order)?.into_iter().enumerate() {
                let indices: Vec<i64> = indices.into_iter().map(|i| i as i64).collect();
                out.push((format!("rank{r}.data.order"), tch::Tensor::from_slice(&indices)));
            }
        }
        Ok(out)
    }

    /// Writes `checkpoint-<step>/`: the model, trainer_state.json and the exact training state,
    /// then drops the oldest checkpoints beyond --save-total-limit (never the best one).
    fn save_checkpoint(&mut self, plan: Option<&PassPlan>, position: &Position) -> Result<()> {
        let started = Instant::now();
        let order: Option<Vec<i64>> = match plan {
            Some(PassPlan::Order(order)) => Some(order.iter().map(|&i| i as i64).collect()),
            _ => None,
        };
        // Each rank's own generator state (its dropout masks) and data order: rank 0 writes them
        // all, each rank restores its own.
        let per_rank = self.gather_rank_state(order.as_deref())?;
        if !self.is_main() {
            return Ok(());
        }
        let dir = checkpoint::folder(&self.args.output_dir, self.global_step);
        let mut tensors = vec![("rng.cpu".to_string(), self.rng.state()?)];
        tensors.extend(per_rank);
        for (name, t) in self.updater.optimizer.state()? {
            tensors.push((format!("optimizer.{name}"), t));
        }
        if let Some(scaler) = &self.updater.scaler {
            for (name, t) in scaler.state()? {
                tensors.push((format!("scaler.{name}"), t));
            }
        }
        if let Some(order) = &order {
            tensors.push(("data.order".into(), tch::Tensor::from_slice(order)));
        }
        let best_dir = self.best.as_ref().map(|b| checkpoint::folder(&self.args.output_dir, b.step));
        let state = TrainerState {
            global_step: self.global_step,
            epoch: (position.epoch - 1) as f64
                + position.batches_done as f64
                    / batches_per_epoch(&self.data, self.args.batch_size).max(1) as f64,
            log_history: self.log_history.clone(),
            best_metric: self.best.as_ref().map(|b| b.value),
            best_global_step: self.best.as_ref().map(|b| b.step),
            best_model_checkpoint: best_dir
                .as_ref()
                .filter(|d| d.exists() || *d == &dir)
                .map(|d| d.display().to_string()),
            bertfit_position: position.clone(),
            bertfit_run: self.fingerprint(),
            bertfit_identity: Some(self.identity.clone()),
        };
        let state_json = serde_json::to_string_pretty(&state).unwrap_or_default();
        let args_json = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        let training_state = checkpoint::tensors_to_bytes(&tensors)?;
        save_pretrained(
            &dir,
            &self.config,
            &self.vs.variables(),
            &self.tokenizer,
            &[
                ("training_args.json", args_json.as_bytes()),
                (checkpoint::TRAINER_STATE, state_json.as_bytes()),
                (checkpoint::TRAINING_STATE, &training_state),
            ],
        )?;
        // Last: a checkpoint with a manifest is complete, and its files are checked against it.
        verify::write_manifest(&dir)?;
        self.reporter.note(&format!("saved {}", dir.display()));
        if let Some(limit) = self.args.save_total_limit {
            checkpoint::prune(&self.args.output_dir, limit, best_dir.as_deref())?;
        }
        self.reporter.checkpoint(&CheckpointRecord {
            kind: "checkpoint",
            step: self.global_step,
            seconds: started.elapsed().as_secs_f64(),
            bytes: checkpoint::size_of(&dir),
            path: dir,
        });
        Ok(())
    }

    /// Puts the run back where the checkpoint in `dir` was taken: weights, optimizer, scaler,
    /// generator state, counters, and the epoch's order. The checkpoint is verified first
    /// ([`Self::verified_checkpoint`]).
    fn restore(&mut self, dir: &Path) -> Result<(Option<PassPlan>, Position)> {
        let started = Instant::now();
        let (state, tensors) = self.verified_checkpoint(dir)?;
        self.reporter.resumed(state.global_step, state.bertfit_position.epoch, dir);
        // (A path, not a name: a folder whose name is not UTF-8 is still this folder.)
        let files = crate::weights::resolve::model_files(dir)?;
        let report = crate::weights::load_pretrained(&self.vs.variables(), &self.config, &files.weights)?;
        if !report.newly_initialized.is_empty() {
            return Err(Error::weights(
                files.weights.path(),
                format!("the checkpoint lacks {:?}", report.newly_initialized),
            ));
        }
        let take = |prefix: &str| -> Vec<(String, tch::Tensor)> {
            tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.shallow_clone())))
                .collect()
        };
        self.updater.optimizer.load_state(&take("optimizer."))?;
        if let Some(scaler) = self.updater.scaler.as_mut() {
            scaler.load_state(&take("scaler."))?;
        }
        let key = self.rank_key(&state);
        // (Present: verified.)
        if let Some(rng) = tensors.get(&key("rng.cpu")) {
            self.rng.set_state(rng)?;
        }
        let position = state.bertfit_position;
        self.updater.scheduled_steps = position.scheduled_steps;
        self.global_step = state.global_step;
        self.evals_without_improvement = position.evals_without_improvement;
        self.log_history = state.log_history;
        if let (Some(step), Some(value), Some(_)) =
            (state.best_global_step, state.best_metric, state.best_model_checkpoint)
        {
            // Verified to be checkpoint-<step> of this checkpoint's folder.
            let best_dir = checkpoint::folder(dir.parent().unwrap_or(dir), step);
            self.best = Some(self.best_from(&best_dir, step, value)?);
        }
        let plan = match (tensors.get(&key("data.order")), position.batches_done) {
            (_, 0) => None,
            (Some(order), _) => {
                Some(PassPlan::Order(Vec::<i64>::try_from(order)?.into_iter().map(|i| i as usize).collect()))
            }
            (None, _) => Some(PassPlan::Stream(position.stream_seed)),
        };
        self.reporter.checkpoint(&CheckpointRecord {
            kind: "checkpoint_load",
            step: self.global_step,
            seconds: started.elapsed().as_secs_f64(),
            bytes: checkpoint::size_of(dir),
            path: dir.to_path_buf(),
        });
        Ok((plan, position))
    }

    /// The checkpoint in `dir`, checked before any of it is used: its files against its manifest,
    /// that it is this run's (shape, then identity), its best model's folder, its optimizer state,
    /// its generator state and its data position against this run's data and rank.
    fn verified_checkpoint(&mut self, dir: &Path) -> Result<(TrainerState, HashMap<String, tch::Tensor>)> {
        if !verify::check_manifest(dir)? {
            self.reporter.note(&format!(
                "warning: {} has no {}: its files cannot be checked for damage",
                dir.display(),
                verify::MANIFEST
            ));
        }
        let state = checkpoint::read_state(dir)?;
        let refuse =
            |why: String| Error::usage("--resume-from-checkpoint", format!("{} {why}", dir.display()));
        // The shape of the run first (it knows which differences a new world size allows), then
        // everything else that makes it this run.
        if let Err(why) = state.bertfit_run.check_resume(&self.fingerprint(), &state.bertfit_position) {
            return Err(refuse(why));
        }
        match &state.bertfit_identity {
            Some(theirs) => {
                let differences = theirs.differences(&self.identity);
                if !differences.is_empty() {
                    return Err(refuse(format!(
                        "is from another run; it differs in {}",
                        differences.join("; ")
                    )));
                }
            }
            None => self.reporter.note(&format!(
                "warning: {} predates run identities: only its shape, labels and recipe are checked \
                 against this run (not the model and data files, seed or learning rate)",
                dir.display()
            )),
        }
        verify::check_best(dir, &state)?;
        let tensors = checkpoint::read_tensors(dir)?;
        let path = dir.join(checkpoint::TRAINING_STATE);
        let names: Vec<String> = self.updater.optimizer.params().into_iter().map(|(n, _)| n).collect();
        let position = &state.bertfit_position;
        verify::check_optimizer_state(&path, &tensors, &names, position.scheduled_steps)?;
        let key = self.rank_key(&state);
        let missing = |key: &str| {
            Error::weights(
                &path,
                format!(
                    "no '{key}' tensor{}",
                    if key.starts_with("rank") {
                        ": the checkpoint was written by a bertfit that kept only rank 0's generator \
                         state and data order, so every rank would continue on rank 0's rows. Resume \
                         it with one process, or start the run again"
                    } else {
                        ""
                    }
                ),
            )
        };
        let rng = tensors.get(&key("rng.cpu")).ok_or_else(|| missing(&key("rng.cpu")))?;
        let want = self.rng.state()?.numel();
        if rng.numel() != want || rng.kind() != tch::Kind::Uint8 {
            return Err(Error::weights(
                &path,
                format!(
                    "'{}' is a {:?} tensor of {} values; libtorch's CPU generator state is {want} bytes",
                    key("rng.cpu"),
                    rng.kind(),
                    rng.numel()
                ),
            ));
        }
        let order = match tensors.get(&key("data.order")) {
            Some(t) => Some(Vec::<i64>::try_from(t)?),
            None if position.batches_done > 0 && !self.args.streaming => {
                return Err(missing(&key("data.order")));
            }
            None => None,
        };
        let expected = verify::Expected {
            batches_per_epoch: batches_per_epoch(&self.data, self.args.batch_size),
            accumulation: self.args.recipe.gradient_accumulation_steps,
            rank_rows: self.data.len(Split::Train),
            file_rows: self.data.train_file_rows(),
            permutation: self.ddp.is_none(),
        };
        let order = order.filter(|_| position.batches_done > 0);
        verify::check_position(&dir.join(checkpoint::TRAINER_STATE), &state, order.as_deref(), &expected)?;
        Ok((state, tensors))
    }

    /// The name of this rank's tensor `name` in a checkpoint: a multi-process checkpoint of this
    /// world size holds each rank's own (`rank<r>.<name>`); across world sizes (allowed only at an
    /// epoch's start, where the order is drawn afresh) rank 0's, under the plain name.
    fn rank_key(&self, state: &TrainerState) -> impl Fn(&str) -> String {
        let written = state.bertfit_run.world_size;
        let (rank, world) = self.ddp.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
        move |name: &str| {
            if written > 1 && written == world {
                format!("rank{rank}.{name}")
            } else {
                name.to_string()
            }
        }
    }

    /// The best model's weights, from its own checkpoint folder.
    fn best_from(&self, best_dir: &Path, step: usize, value: f64) -> Result<Best> {
        let best_files = crate::weights::resolve::model_files(best_dir)?;
        let copy: HashMap<String, tch::Tensor> =
            self.vs.variables().iter().map(|(k, v)| (k.clone(), v.detach().copy())).collect();
        crate::weights::load_pretrained(&copy, &self.config, &best_files.weights)?;
        let weights = self
            .updater
            .optimizer
            .params()
            .iter()
            .filter_map(|(n, _)| copy.get(n).map(|t| t.shallow_clone()))
            .collect();
        let metric = self.args.recipe.best_model_metric().map(|m| m.0).unwrap_or_default();
        Ok(Best { metric, value, step, weights })
    }

    /// train_results.json with HF's keys and units.
    fn write_train_results(&mut self, summary: &TrainSummary) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let runtime = self.started.elapsed().as_secs_f64();
        let samples: f64 = summary.epochs.iter().map(|e| e.train_samples_per_second * e.train_seconds).sum();
        let loss = if summary.epochs.is_empty() {
            None
        } else {
            Some(summary.epochs.iter().map(|e| e.loss).sum::<f64>() / summary.epochs.len() as f64)
        };
        let results = json!({
            "epoch": summary.epochs.len() as f64,
            "train_loss": loss,
            "train_runtime": runtime,
            "train_samples_per_second": samples / runtime.max(1e-9),
            "train_steps_per_second": self.global_step as f64 / runtime.max(1e-9),
            "total_steps": self.global_step,
        });
        self.results.extend(results.as_object().cloned().unwrap_or_default());
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        write_atomic(&self.args.output_dir.join("train_results.json"), text.as_bytes())
    }

    /// The model as an HF folder (config.json, model.safetensors, tokenizer files) with
    /// training_args.json, written beside the output folder and swapped in at once: the folder is
    /// at every instant the complete previous one or the complete new one. `finished`: the run
    /// is complete (not stopped by a signal), so `--resume-from-checkpoint auto` leaves it be.
    pub fn save(&self, finished: bool) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let args_json = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        // HF Trainer leaves its trainer_state.json beside the final model too.
        let state = serde_json::json!({
            "global_step": self.global_step,
            "log_history": self.log_history,
            "best_metric": self.best.as_ref().map(|b| b.value),
            "best_global_step": self.best.as_ref().map(|b| b.step),
            "bertfit_finished": finished,
            "bertfit_run": self.fingerprint(),
            "bertfit_identity": self.identity,
        });
        let state_json = serde_json::to_string_pretty(&state).unwrap_or_default();
        save_pretrained(
            &self.args.output_dir,
            &self.config,
            &self.vs.variables(),
            &self.tokenizer,
            &[
                ("training_args.json", args_json.as_bytes()),
                (checkpoint::TRAINER_STATE, state_json.as_bytes()),
            ],
        )?;
        // What --overwrite set aside is no longer needed: this run has its model.
        crate::output::remove_set_aside(&self.args.output_dir)
    }

    /// `eval_results.json` / `test_results.json` with HF Trainer's keys (`eval_accuracy` a fraction,
    /// `eval_loss`, `eval_runtime`, ...) and every metric of the problem type.
    fn write_results(&mut self, file: &str, prefix: &str, e: &Evaluation, epochs: usize) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
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
        self.results.extend(results);
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
        if !self.is_main() {
            return Ok(());
        }
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
            ProblemType::Regression => Vec::<f32>::try_from(e.logits.flatten(0, -1))
                .unwrap_or_default()
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect(),
        };
        let mut out = String::from("index\tprediction\n");
        for (i, item) in items.iter().enumerate() {
            out.push_str(&format!("{i}\t{item}\n"));
        }
        write_atomic(&self.args.output_dir.join("predict_results.txt"), out.as_bytes())
    }
}

/// The micro-batches of one accumulation window.
#[derive(Default)]
struct Window {
    /// Micro-batches this window takes (fixed at its first).
    size: usize,
    micro_batches: usize,
    /// Mean of the micro-batch losses (each divided by `size` as it arrives), on the device.
    loss: Option<tch::Tensor>,
    rows: Vec<usize>,
}

/// The best model so far.
struct Best {
    metric: String,
    value: f64,
    step: usize,
    weights: Vec<tch::Tensor>,
}

/// Micro-batches of one training epoch (this rank's share).
fn batches_per_epoch(data: &TrainingData, batch_size: usize) -> usize {
    data.len(Split::Train).div_ceil(batch_size)
}

/// Optimizer (with HF's decay groups), schedule over the run's optimizer steps, loss scaler.
fn build_updater(
    args: &TrainArgs,
    config: &BertConfig,
    vs: &VarStore,
    data: &TrainingData,
) -> Result<Updater> {
    let r = &args.recipe;
    let order: Vec<String> = names::parameters(config).into_iter().map(|(n, _)| n).collect();
    let optimizer = Optimizer::new(
        named_trainable(vs, &order)?,
        OptimizerSettings {
            kind: r.optim,
            lr: args.learning_rate,
            betas: (r.adam_beta1, r.adam_beta2),
            eps: r.adam_epsilon,
            weight_decay: r.weight_decay,
            fused: r.fused,
        },
    )?;
    let per_epoch = batches_per_epoch(data, args.batch_size).div_ceil(r.gradient_accumulation_steps);
    let total = args.max_steps.unwrap_or(per_epoch * args.epochs);
    let warmup = warmup_steps(r.warmup_steps, r.warmup_ratio, total)?;
    let schedule = Schedule::new(r.lr_scheduler_type, args.learning_rate, warmup, total)?;
    let scaler = r
        .precision
        .needs_loss_scaling()
        .then(|| LossScaler::new(ScalerSettings::default(), args.device))
        .transpose()?;
    Ok(Updater { optimizer, schedule, scaler, max_grad_norm: r.max_grad_norm, scheduled_steps: 0 })
}

fn data_settings(args: &TrainArgs, tokenizer: &BertTokenizer, ddp: Option<&Ddp>) -> DataSettings {
    let shard = ddp.map_or(Shard::WHOLE, |d| Shard { rank: d.rank(), world_size: d.world_size() });
    let train_sampler: Option<Arc<dyn crate::data::sampler::Sampler>> = ddp.map(|_| {
        Arc::new(DistributedSampler { shard, shuffle: args.shuffle, seed: args.seed, drop_last: false }) as _
    });
    DataSettings {
        batch_size: args.batch_size,
        eval_batch_size: args.eval_batch_size,
        loader: LoaderSettings {
            padding: args.padding,
            max_length: args.max_length,
            pad_id: tokenizer.pad_token_id(),
            prefetch: args.prefetch,
            pin_for: args.device.is_cuda().then_some(args.device),
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
        shard,
        train_sampler,
    }
}

/// Fine-tunes `args.model` on `args.data` as `Trainer::run` does, telling `reporter` everything.
pub fn train(args: &TrainArgs, reporter: &mut dyn Reporter) -> Result<TrainSummary> {
    interrupt::clear();
    Trainer::new(args, reporter)?.run()
}
