//! The training run: a [`Trainer`] owns the model, the optimizer, the random stream, the data and
//! the step counter; [`Trainer::train`] is the loop over epochs and steps. What a step does is in
//! `step`, when to evaluate, save and stop in `control`, saving and resuming in `checkpoint`, the
//! best model in `best`. The command that drives the trainer (`crate::commands::train`) writes
//! the results files, as run_classification.py does around HF's Trainer.
//!
//! Random draws happen in the reference script's order (`scripts/reference_train.py`), each through
//! the run's [`RandomStream`]: the seed, the classifier's init inside loading, then per epoch the
//! training DataLoader's draws and the dropout masks of the forward passes, then the validation
//! DataLoader's base seed. Batches are made ahead on a background thread, which draws nothing.
use std::sync::Arc;
use std::time::Instant;

use tch::nn::VarStore;

use super::args::TrainArgs;
pub use super::best::Best;
use super::checkpoint::Position;
use super::control::{Control, Stop};
pub use super::evaluation::Evaluation;
use super::identity::RunIdentity;
use super::interrupt;
use super::log_history::LogHistory;
use super::mfu::{self, FlopMeter, StepFlops};
use super::output_folder::OutputFolder;
use super::pending::PendingSteps;
use super::profile::StepProfiler;
use super::report::{describe_device, EpochRecord, Reporter, StepRecord};
use super::setup;
use super::startup::Startup;
use super::step::StepResult;
use super::update::Updater;
use crate::data::dataset::Split;
use crate::data::tokenize::Tokenizer;
use crate::data::training_data::{PassPlan, TrainingData};
use crate::dist::ddp::Ddp;
use crate::error::{Error, Result};
use crate::model::{BertConfig, LayoutPolicy, ModelFlops, SequenceClassifier};
use crate::random::RandomStream;
use crate::weights::{resolve, Pretrained};

/// What [`Trainer::train`] did.
#[derive(Debug, Default)]
pub struct TrainSummary {
    /// One record per trained epoch.
    pub epochs: Vec<EpochRecord>,
    pub newly_initialized: Vec<String>,
    pub global_step: usize,
    /// The last evaluation on the validation rows, if any (of the best model when it was kept).
    pub eval: Option<Evaluation>,
    /// `--resume-from-checkpoint auto` found this very run finished: nothing was done.
    pub already_finished: bool,
    /// HF's train metrics (`train_runtime`, `train_samples_per_second`, `train_steps_per_second`,
    /// `total_flos`, `train_loss`), as `_finalize_training` makes them.
    pub hf_metrics: serde_json::Map<String, serde_json::Value>,
    /// HF's `state.epoch` at the end: fractional epochs done.
    pub epoch: f64,
}

/// What one epoch of training did.
struct EpochOutcome {
    mean_loss: f64,
    samples: usize,
    seconds: f64,
    data_wait_seconds: f64,
    /// Multi-process runs: time spent averaging gradients across ranks.
    allreduce_seconds: Option<f64>,
    /// The epoch's useful FLOPs over its seconds.
    flops: StepFlops,
    stop: Stop,
}

/// Where a resumed run goes on: the checkpoint's position and, inside an epoch, that epoch's
/// data plan (its order, or its stream's seed).
pub(super) struct Resume {
    pub plan: Option<PassPlan>,
    pub position: Position,
}

pub struct Trainer<'r> {
    pub(super) args: TrainArgs,
    pub(super) reporter: &'r mut dyn Reporter,
    pub(super) rng: RandomStream,
    pub(super) config: BertConfig,
    pub(super) tokenizer: Arc<Tokenizer>,
    pub(super) data: TrainingData,
    pub(super) vs: VarStore,
    pub(super) model: SequenceClassifier,
    /// The folder the model was loaded from (`--model`, resolved).
    pub(super) model_dir: std::path::PathBuf,
    /// How each batch's tokens are laid out for the forward (padded or packed), and the kernel
    /// fallbacks seen so far.
    pub(super) layouts: LayoutPolicy,
    pub(super) updater: Updater,
    pub(super) control: Control,
    /// The process group of a multi-process run (torchrun / SLURM variables), rank 0 writing.
    pub(super) ddp: Option<Ddp>,
    pub(super) global_step: usize,
    /// The best evaluation so far by the recipe's metric.
    pub(super) best: Option<Best>,
    /// Evaluations since the metric last improved (early stopping).
    pub(super) evals_without_improvement: usize,
    /// HF's log_history (trainer_state.json) and the running losses it logs.
    pub(super) log: LogHistory,
    /// HF's `state.total_flos` (`floating_point_ops` summed over the run's micro-batches).
    pub(super) total_flos: f64,
    /// HF's `num_parameters(exclude_embeddings=True)`: every parameter but the embedding tables.
    pub(super) non_embedding_parameters: usize,
    /// The run's useful FLOPs and step times, for FLOP/s and MFU.
    pub(super) meter: FlopMeter,
    /// What MFU is measured against; reported (and taken) with the start-up record.
    pub(super) peak: Option<mfu::PeakRecord>,
    /// The epoch's evaluation gave a new best under `--save-strategy best`: a checkpoint is due at
    /// the epoch's end.
    pub(super) save_for_best: bool,
    /// The probed peak each epoch's useful rate is checked against ([`mfu::peak_passed_note`]),
    /// until it is found passed; `None` for a `--peak-flops` figure, and for fp16 on a CPU without
    /// fp16 GEMMs (whose probe's rate depends on the product's size).
    pub(super) peak_check: Option<mfu::PeakRecord>,
    /// HF's `state.epoch`: the fractional epochs done at the last step.
    pub(super) epoch_done: f64,

    /// When the run started (train_runtime).
    pub(super) started: Instant,
    pub(super) newly_initialized: Vec<String>,
    /// Start-up phases until the first step; taken (and reported) once it is done.
    pub(super) startup: Option<Startup>,
    /// The checkpoint folder this run continues from (`--resume-from-checkpoint`, resolved).
    pub(super) resume: Option<std::path::PathBuf>,
    /// `auto` found this very run finished in the output folder, at this step: nothing to do.
    pub(super) finished_at: Option<usize>,
    /// Which run this is, as checkpoints record it.
    pub(super) identity: RunIdentity,
    /// The output folder, held for the run's lifetime (rank 0 of a training run).
    pub(super) _lock: Option<crate::output::RunLock>,
    /// `--profile-ops` (the main process only).
    pub(super) op_profiler: Option<StepProfiler>,
}

impl<'r> Trainer<'r> {
    /// Seeds the random stream, reads the data, loads the model and prepares the output folder.
    /// Nothing is written before every input is checked.
    pub fn new(args: &TrainArgs, reporter: &'r mut dyn Reporter) -> Result<Self> {
        let mut startup = Startup::begin();
        args.validate()?;
        reporter.device(&describe_device(args.device, args.device_auto));
        if let Some(t) = args.threads {
            tch::set_num_threads(t);
        }
        let mut rng = RandomStream::manual_seed(args.seed);
        let (mut args, ddp) = setup::join(args)?;
        if args.recipe.precision_auto {
            let choice = setup::auto_precision(&args)?;
            reporter.note(&choice.why);
            args.recipe.precision = choice.precision;
        }
        let files = resolve(&args.model)?;
        let mut config = BertConfig::from_file(&files.config)?;
        let tokenizer = setup::tokenizer(&files, &config)?;
        startup.mark("tokenizer");
        // Before the data is read: the folder is this run's, or the run stops here.
        let is_main = ddp.as_ref().is_none_or(Ddp::is_main);
        let identity = RunIdentity::of(&args, &files)?;
        let OutputFolder { lock, resume, finished_at } = OutputFolder::claim(&args, &identity, is_main)?;
        setup::check_max_length(&args, &config, &tokenizer)?;
        let data = setup::data(&args, &tokenizer, ddp.as_ref(), &mut config, reporter)?;
        if args.do_eval {
            let classes = data.classes(Split::Validation);
            let problem = args.label_format.problem;
            super::hf_metric::check_binary_metric(args.conventions.metric, problem, classes.as_ref())?;
        }
        startup.mark("data");
        let Pretrained { vs, model, report } = setup::model(&args, &files, &config, &mut rng, reporter)?;
        if args.conventions.hf_trainer {
            // HF's Trainer.__init__ seeds again (set_seed(args.seed)) once the model is made: its
            // DataLoader passes and dropout masks draw from the seed, not from after the new
            // classifier's init.
            rng = RandomStream::manual_seed(args.seed);
        }
        startup.mark("weights");
        let updater = setup::updater(&args, &config, &vs, &data)?;
        let mut ddp = ddp;
        if let Some(d) = ddp.as_mut() {
            // DDP's first step: every rank starts from rank 0's weights.
            tch::no_grad(|| d.broadcast_parameters(&updater.parameters()))?;
        }
        setup::output_dir(&args, is_main && resume.is_none() && finished_at.is_none(), reporter)?;
        let per_epoch = setup::steps_per_epoch(
            setup::batches_per_epoch(&data, args.batch_size),
            args.recipe.gradient_accumulation_steps,
        );
        startup.mark("optimizer");
        // Reported with the start-up record after the first step: a record written now would
        // open metrics.jsonl before a resumed run has kept the earlier runs' lines.
        let peak = mfu::run_peak(&args)?;
        startup.mark("peak");
        let cpu = crate::machine::cpu::CpuInfo::read;
        let slow_fp16 = mfu::slow_cpu_fp16_note(args.device, args.recipe.precision, &peak, cpu);
        if let Some(note) = &slow_fp16 {
            reporter.note(note);
        }
        let op_profiler =
            args.profile_ops.clone().filter(|_| is_main).map(|p| StepProfiler::new(p, args.device));
        Ok(Trainer {
            control: Control::new(&args, setup::max_steps(&args, per_epoch), per_epoch),
            log: LogHistory::new(args.conventions.logging, args.conventions.logging_first_step),
            total_flos: 0.0,
            non_embedding_parameters: setup::non_embedding_parameters(&updater),
            meter: FlopMeter::new(ModelFlops::of(&config), peak.peak.flops_per_second),
            peak_check: slow_fp16.is_none().then(|| peak.clone()),
            save_for_best: false,
            peak: Some(peak),
            epoch_done: 0.0,

            model_dir: files.dir,
            layouts: LayoutPolicy::new(args.device, args.unpadded()),
            args,
            reporter,
            rng,
            config,
            tokenizer,
            data,
            vs,
            model,
            updater,
            ddp,
            global_step: 0,
            best: None,
            evals_without_improvement: 0,
            started: Instant::now(),
            newly_initialized: report.newly_initialized,
            startup: Some(startup),
            resume,
            finished_at,
            identity,
            _lock: lock,
            op_profiler,
        })
    }

    /// Trains from the checkpoint given, or from the start: the epochs, an evaluation after each
    /// (`do_eval`), the best model put back (`--load-best-model-at-end`) and the model saved.
    /// A stop signal saves a checkpoint and the model and ends with [`Error::Interrupted`].
    pub fn train(&mut self) -> Result<TrainSummary> {
        let mut summary =
            TrainSummary { newly_initialized: self.newly_initialized.clone(), ..Default::default() };
        if let Some(step) = self.finished_at {
            self.reporter.note(&format!(
                "{} holds this run, finished at step {step}: nothing to do",
                self.args.output_dir.display()
            ));
            summary.global_step = step;
            summary.already_finished = true;
            return Ok(summary);
        }
        let (first_epoch, mut resume) = self.resume_point()?;
        if self.args.conventions.eval_on_start {
            // HF's `_evaluate` before the epoch loop (on a resume too): logged, not a best model.
            let eval = self.evaluate(Split::Validation)?;
            self.log_evaluation(&eval, first_epoch - 1)?;
        }
        for epoch in first_epoch..=self.control.last_epoch {
            let outcome = self.train_epoch(epoch, resume.take())?;
            if outcome.stop.interrupted {
                return Err(self.stop_interrupted()?);
            }
            let mut stop = outcome.stop;
            let record = self.end_epoch(epoch, &outcome, &mut stop, &mut summary)?;
            summary.epochs.push(record);
            // HF saves at every epoch's end under save_strategy epoch, the last one included
            // (`final_checkpoint`), and under best after a new best, the last epoch's included;
            // the seed script's rhythm saves where the run goes on.
            let save_best = std::mem::take(&mut self.save_for_best);
            let hf_saves_last = self.args.conventions.final_checkpoint && self.control.save_after_epoch();
            if stop.ends_run() && !hf_saves_last && !save_best {
                break;
            }
            if self.control.save_after_epoch() || save_best {
                let next = Position {
                    epoch: epoch + 1,
                    scheduled_steps: self.updater.scheduled_steps,
                    ..Default::default()
                };
                self.save_checkpoint(None, &next)?;
            }
            if stop.ends_run() {
                break;
            }
        }
        if let Some(p) = self.op_profiler.as_mut() {
            p.run_ended(self.reporter);
        }
        summary.hf_metrics = self.finalize_metrics();
        summary.epoch = self.epoch_done;
        // HF keeps the last model unless load_best_model_at_end; bertfit train's
        // --metric-for-best-model alone keeps the best one (its --help says so).
        let keep_best = self.args.recipe.load_best_model_at_end || !self.args.conventions.hf_trainer;
        if self.best.is_some() && keep_best {
            self.restore_best();
            summary.eval = Some(self.evaluate(Split::Validation)?);
        }
        self.save(true)?;
        summary.global_step = self.global_step;
        Ok(summary)
    }

    /// Where training starts: the first epoch, and the checkpoint's data plan and position when
    /// resuming. A checkpoint at or past the run's last step leaves nothing to train.
    fn resume_point(&mut self) -> Result<(usize, Option<Resume>)> {
        let Some(dir) = self.resume.clone() else { return Ok((1, None)) };
        let resume = self.restore(&dir)?;
        self.reporter.note(&format!("resuming from {} (step {})", dir.display(), self.global_step));
        // Optimizer steps of the whole run, as the schedule counts them.
        let total = self.updater.schedule.total_steps;
        if self.global_step >= total {
            // A requeue after the last checkpoint: the run is complete; one more step would give a
            // model that is not the run's.
            self.reporter.note(&format!(
                "the checkpoint is at step {} of {total}: the run is complete, nothing left to train",
                self.global_step
            ));
            return Ok((self.control.last_epoch + 1, Some(resume)));
        }
        Ok((resume.position.epoch, Some(resume)))
    }

    /// After a stop signal: the model saved as it is (a checkpoint was written at the step), and
    /// every rank leaves only once rank 0's save is complete (a launcher that ends the job when
    /// the first task exits would otherwise cut the save short).
    fn stop_interrupted(&mut self) -> Result<Error> {
        self.save(false)?;
        self.reporter.finish()?;
        if let Some(d) = self.ddp.as_mut() {
            d.barrier()?;
        }
        Ok(Error::Interrupted { step: self.global_step, saved: self.args.output_dir.clone() })
    }

    /// The epoch's report: its loss line, the validation (`do_eval`) with the best-model and
    /// early-stopping bookkeeping, and its record.
    fn end_epoch(
        &mut self,
        epoch: usize,
        outcome: &EpochOutcome,
        stop: &mut Stop,
        summary: &mut TrainSummary,
    ) -> Result<EpochRecord> {
        self.reporter.epoch_loss(epoch, outcome.mean_loss);
        self.log.epoch_end(self.global_step, self.epoch_done);
        // HF's on_epoch_end: `eval_delay <= state.epoch`.
        let evaluates = self.args.do_eval
            && self.args.conventions.eval_each_epoch
            && self.args.conventions.eval_delay <= self.epoch_done;
        if evaluates {
            let eval = self.evaluate(Split::Validation)?;
            if let Some(percent) = eval.accuracy_percent() {
                self.reporter.validation_accuracy(epoch, percent);
            }
            if let Some(mse) = eval.mse() {
                self.reporter.validation_mse(epoch, mse);
            }
            if !stop.early {
                // (An early stop already counted this step's evaluation.)
                let tracked = self.track_best(&eval, epoch)?;
                stop.early |= tracked.early_stop;
                self.save_for_best = tracked.save;
            }
            summary.eval = Some(eval);
        }
        let eval = summary.eval.as_ref().filter(|_| evaluates);
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
            flops: outcome.flops,
        };
        self.reporter.epoch_finished(&record);
        let rate = outcome.flops.flops_per_second;
        if let Some(note) = self.peak_check.as_ref().and_then(|p| mfu::peak_passed_note(p, rate)) {
            self.reporter.note(&note);
            self.peak_check = None;
        }
        Ok(record)
    }

    /// One epoch over the training rows, one step per accumulation window (the epoch's last
    /// window may be shorter), until its end or a stop.
    fn train_epoch(&mut self, epoch: usize, resume: Option<Resume>) -> Result<EpochOutcome> {
        let started = Instant::now();
        let allreduce_before = self.ddp.as_ref().map(Ddp::allreduce_seconds);
        // The epoch's running figures: a checkpoint taken inside it restores them.
        let (plan, mut pos) = match resume {
            Some(Resume { plan: Some(plan), position }) => (plan, position),
            Some(Resume { plan: None, position }) => {
                (self.data.plan_train_pass(&mut self.rng, epoch), position)
            }
            None => {
                (self.data.plan_train_pass(&mut self.rng, epoch), Position { epoch, ..Default::default() })
            }
        };
        let mut batches = self.data.train_batches(&plan, pos.batches_done)?;
        let total = self.batches_per_epoch();
        self.reporter.epoch_started(
            epoch,
            setup::steps_per_epoch(total, self.args.recipe.gradient_accumulation_steps),
        );
        let mut pending = PendingSteps::for_device(self.args.device);
        let mut stop = Stop::default();
        let mut flops = 0.0;
        self.meter.pause_ended();
        while let Some(window) = self.next_window(&mut batches, pos.batches_done, total)? {
            pos.batches_done += window.len();
            pos.epoch_samples += window.iter().map(|b| b.rows.len()).sum::<usize>();
            if let Some(p) = self.op_profiler.as_mut() {
                p.before_step()?;
            }
            let step = self.training_step(window)?;
            flops += step.useful_flops;
            stop = self.after_step(step, &mut pos, &mut pending, &plan)?;
            if let Some(p) = self.op_profiler.as_mut() {
                p.after_step(self.reporter)?;
            }
            if stop.any() {
                break;
            }
        }
        self.record_steps(&mut pending, &mut pos.epoch_loss_sum)?;
        if let Some(p) = self.op_profiler.as_mut() {
            p.epoch_ended(self.reporter)?;
        }
        let waited = batches.finish(stop.any())?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(EpochOutcome {
            flops: self.meter.rate(flops, seconds),
            mean_loss: pos.epoch_loss_sum / pos.epoch_steps.max(1) as f64,
            samples: pos.epoch_samples,
            seconds,
            data_wait_seconds: waited.as_secs_f64(),
            allreduce_seconds: allreduce_before
                .zip(self.ddp.as_ref().map(Ddp::allreduce_seconds))
                .map(|(before, after)| after - before),
            stop,
        })
    }

    /// After an optimizer step: its record, then what [`Control`] says is due (evaluate, save),
    /// and whether the epoch stops here.
    /// `pos`: where the run is in its epoch, this step's batches counted.
    fn after_step(
        &mut self,
        step: StepResult,
        pos: &mut Position,
        pending: &mut PendingSteps,
        plan: &PassPlan,
    ) -> Result<Stop> {
        let epoch = pos.epoch;
        if let Some(mut s) = self.startup.take() {
            s.mark("first_step");
            self.reporter.startup(&s.record());
            if let Some(peak) = self.peak.take() {
                self.reporter.peak(&peak);
            }
        }
        self.global_step += 1;
        pos.epoch_steps += 1;
        let update = step.update;
        self.total_flos += step.flos;
        let flops = self.meter.step_ended(step.useful_flops);
        let record = StepRecord {
            kind: "step",
            epoch,
            step: self.global_step,
            loss: f64::NAN, // read from the device below
            lr: update.lr,
            skipped: update.scale.map(|_| update.skipped),
            scale: update.scale,
            rows: step.rows,
            rank_rows: step.rank_rows,
            flops: Some(flops),
            grad_norm: f64::NAN, // read from the device with the loss
        };
        let epoch_fraction =
            (epoch - 1) as f64 + pos.batches_done as f64 / self.batches_per_epoch().max(1) as f64;
        self.epoch_done = epoch_fraction;
        pending.push(step.loss, update.grad_norm, record, epoch_fraction);
        let due = self.control.after_step(self.global_step);
        if pending.due() || due.evaluate || due.save {
            self.record_steps(pending, &mut pos.epoch_loss_sum)?;
        }
        let mut stop = Stop::default();
        let mut save_best = false;
        if due.evaluate {
            let eval = self.evaluate(Split::Validation)?;
            let tracked = self.track_best(&eval, epoch)?;
            stop.early = tracked.early_stop;
            save_best = tracked.save;
        }
        stop.interrupted = step.agreed_stop.unwrap_or_else(interrupt::stop_requested);
        if due.save || save_best || stop.interrupted {
            self.record_steps(pending, &mut pos.epoch_loss_sum)?;
            let here = self.checkpoint_position(pos, plan);
            self.save_checkpoint(Some(plan), &here)?;
        }
        stop.max_steps = self.control.reached_max_steps(self.global_step);
        // An evaluation or a checkpoint write is not the next step's time.
        self.meter.pause_ended();
        Ok(stop)
    }

    /// `pos` as a checkpoint records it: with the run's counters at this step and the stream's seed.
    fn checkpoint_position(&self, pos: &Position, plan: &PassPlan) -> Position {
        Position {
            scheduled_steps: self.updater.scheduled_steps,
            stream_seed: match plan {
                PassPlan::Stream(seed) => *seed,
                PassPlan::Order(_) => None,
            },
            evals_without_improvement: self.evals_without_improvement,
            ..pos.clone()
        }
    }

    /// Ends the run's reporting; in a multi-process run, every rank waits for the others (rank 0
    /// writes last).
    pub fn finish(&mut self) -> Result<()> {
        self.reporter.finish()?;
        if let Some(d) = self.ddp.as_mut() {
            d.barrier()?;
        }
        Ok(())
    }

    /// Micro-batches of one training epoch (this rank's share).
    pub(super) fn batches_per_epoch(&self) -> usize {
        setup::batches_per_epoch(&self.data, self.args.batch_size)
    }

    /// The model's trainable tensors in state-dict order.
    pub(super) fn trainable(&self) -> Vec<tch::Tensor> {
        self.updater.parameters()
    }

    /// Whether this process writes the run's files (rank 0, or the only process).
    pub fn is_main(&self) -> bool {
        self.ddp.as_ref().is_none_or(Ddp::is_main)
    }

    /// The folder the model was loaded from (`--model`, resolved).
    pub fn model_dir(&self) -> &std::path::Path {
        &self.model_dir
    }

    pub fn args(&self) -> &TrainArgs {
        &self.args
    }

    /// Processes training together (1 without DDP).
    pub fn world_size(&self) -> usize {
        self.ddp.as_ref().map_or(1, Ddp::world_size)
    }

    /// Training rows (HF's `train_samples`: after --max-train-samples; this rank's share).
    pub fn train_rows(&self) -> usize {
        self.data.len(Split::Train)
    }

    /// The label names, in class-id order.
    pub fn label_names(&self) -> &[String] {
        &self.data.labels().names
    }

    /// When the trainer was made (HF's train_runtime counts from there).
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn reporter(&mut self) -> &mut dyn Reporter {
        self.reporter
    }
}
