//! One training step, as HF Trainer's inner loop makes it: the micro-batches of an accumulation
//! window each go forward and backward (their gradients add up), then, in a multi-process run,
//! the gradients are averaged over ranks together with the step's loss and stop flag, then one
//! optimizer update ([`super::update::Updater::apply`]).
use tch::{Reduction, Tensor};

use super::args::TrainLoss;
use super::checkpoint;
use super::interrupt;
use super::mfu::row_lengths;
use super::pending::PendingSteps;
use super::precision::{autocast, Precision};
use super::update::UpdateOutcome;
use super::Trainer;
use crate::data::batch::Batch;
use crate::data::loader::{Batches, LoadedBatch};
use crate::error::{Error, Result};
use crate::model::layers::RowGradients;
use crate::model::loss;

/// What one step did.
pub struct StepResult {
    /// The step's loss: the mean over its examples (over all ranks in a multi-process run), a
    /// 0-dim f64 tensor left on the device (reading it would wait for the GPU).
    pub loss: Tensor,
    /// The data rows of this rank's micro-batches.
    pub rows: Vec<usize>,
    /// Multi-process runs: the rows each rank trained on.
    pub rank_rows: Option<Vec<Vec<usize>>>,
    /// Multi-process runs: whether any rank was asked to stop (every rank stops after this step).
    pub agreed_stop: Option<bool>,
    pub update: UpdateOutcome,
    /// HF's `floating_point_ops` of the step's micro-batches: 6 x input_ids' numel (padded) x
    /// the non-embedding parameters, summed.
    pub flos: f64,
    /// The useful FLOPs of this rank's micro-batches over their real tokens (`train::mfu`).
    pub useful_flops: f64,
}

impl Trainer<'_> {
    /// The next accumulation window's micro-batches: `--gradient-accumulation-steps` of them, fewer
    /// at the epoch's end (`consumed` of the epoch's `total` micro-batches are done). `None` when
    /// the epoch has no batch left.
    pub(super) fn next_window(
        &mut self,
        batches: &mut Batches,
        consumed: usize,
        total: usize,
    ) -> Result<Option<Vec<LoadedBatch>>> {
        let size = self.args.recipe.gradient_accumulation_steps.min(total.saturating_sub(consumed)).max(1);
        let mut window = Vec::with_capacity(size);
        for loaded in batches.by_ref() {
            window.push(loaded?);
            if let Some(s) = self.startup.as_mut() {
                s.first_batch_ready();
            }
            if window.len() == size {
                break;
            }
        }
        Ok((!window.is_empty()).then_some(window))
    }

    /// Trains on one window: forward and backward of each micro-batch, gradients averaged over
    /// ranks, one update. The window's size is its length.
    ///
    /// `TrainLoss::WindowMean` (the seed script's, HF 4.x's): each micro-batch's loss is divided
    /// by the window, in backward and in the step's loss. `WindowSum` is HF 5.24's Trainer for
    /// BertForSequenceClassification: its forward takes `**kwargs`, so `model_accepts_loss_kwargs`
    /// is true and `num_items_in_batch` is set, and `training_step` then skips its division:
    /// "if not loss_is_scaled_for_ga: loss = loss / self.current_gradient_accumulation_steps" —
    /// while the model's own CrossEntropyLoss ignores `num_items_in_batch` and stays a mean. So
    /// backward runs on each micro-batch's undivided mean (gradients add up over the window) and
    /// `tr_loss += tr_loss_step` sums the window's means.
    pub(super) fn training_step(&mut self, window: Vec<LoadedBatch>) -> Result<StepResult> {
        let size = window.len();
        let divisor = match self.args.conventions.train_loss {
            TrainLoss::WindowMean => size,
            TrainLoss::WindowSum => 1,
        };
        let mut loss: Option<Tensor> = None;
        let mut rows = Vec::new();
        let (mut flos, mut useful_flops) = (0.0, 0.0);
        for loaded in window {
            flos += 6.0 * loaded.batch.input_ids.numel() as f64 * self.non_embedding_parameters as f64;
            useful_flops += self.meter.training_flops(row_lengths(&loaded.batch.attention_mask));
            let micro = self.micro_step(&loaded.batch, divisor)?;
            self.updater.optimizer.gather_row_grads()?;
            let micro = if divisor > 1 { micro / divisor as f64 } else { micro };
            loss = Some(match loss.take() {
                Some(sum) => sum + micro,
                None => micro,
            });
            rows.extend(loaded.rows);
        }
        self.updater.optimizer.attach_row_grads(self.ddp.is_some())?;
        let (mut rank_rows, mut agreed_stop) = (None, None);
        if let Some(d) = self.ddp.as_mut() {
            // After the window's last backward (no all-reduce on earlier micro-steps, as DDP's
            // no_sync): gradients averaged over ranks, and the step's loss over all examples.
            d.all_reduce_gradients(&self.updater.parameters())?;
            // (A host read: one sync per step in multi-process runs.)
            let local = loss.as_ref().map_or(f64::NAN, |l| l.double_value(&[]));
            let capacity = self.args.batch_size * self.args.recipe.gradient_accumulation_steps;
            let summary = d.step_summary(local, &rows, capacity, interrupt::stop_requested())?;
            loss = Some(Tensor::from(summary.loss));
            rank_rows = Some(summary.rank_rows);
            agreed_stop = Some(summary.stop);
        }
        let update = self.updater.apply()?;
        let loss = loss.unwrap_or_else(|| Tensor::from(f64::NAN));
        Ok(StepResult { loss, rows, rank_rows, agreed_stop, update, flos, useful_flops })
    }

    /// Reads the pending steps' losses (one transfer), adds them to the epoch's sum, stops an fp32
    /// or bf16 run at the first non-finite one, and logs each step (log_history, the reporter).
    pub(super) fn record_steps(
        &mut self,
        pending: &mut PendingSteps,
        epoch_loss_sum: &mut f64,
    ) -> Result<()> {
        for (record, epoch_fraction) in pending.read() {
            self.log.step(&record, epoch_fraction);
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
            // The optimizer takes word-embedding gradients as rows (train::row_grads).
            let _rows = RowGradients::on();
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
}
