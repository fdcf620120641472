//! Resuming a run: the checkpoint is verified whole before any of it is used (manifest, run
//! identity, best model, optimizer and generator state, data position), then the weights,
//! optimizer, loss scaler, generator and counters are put back as they were when it was taken.
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use super::verify;
use super::TrainerState;
use crate::data::dataset::Split;
use crate::data::training_data::PassPlan;
use crate::error::{Error, Result};
use crate::train::best::Best;
use crate::train::checkpoint;
use crate::train::report::CheckpointRecord;
use crate::train::trainer::Resume;
use crate::train::Trainer;

impl Trainer<'_> {
    /// Puts the run back where the checkpoint in `dir` was taken: weights, optimizer, scaler,
    /// generator state, counters, and the epoch's order. The checkpoint is verified first
    /// ([`Self::verified_checkpoint`]).
    pub(in crate::train) fn restore(&mut self, dir: &Path) -> Result<Resume> {
        if checkpoint::hf::is_hf_checkpoint(dir) {
            return self.restore_hf(dir);
        }
        let started = Instant::now();
        let (state, tensors) = self.verified_checkpoint(dir)?;
        self.reporter.resumed(state.global_step, state.bertfit_position.epoch, dir);
        self.load_checkpoint_weights(dir)?;
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
        self.log.resume(state.log_history, state.global_step);
        self.epoch_done = state.epoch;
        self.total_flos = state.total_flos;
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
        self.report_load(dir, started);
        Ok(Resume { plan, position })
    }

    /// The checkpoint in `dir`, checked before any of it is used: its files against its manifest,
    /// that it is this run's (shape, then identity), its best model's folder, its optimizer state,
    /// its generator state and its data position against this run's data and rank.
    pub(in crate::train) fn verified_checkpoint(
        &mut self,
        dir: &Path,
    ) -> Result<(TrainerState, HashMap<String, tch::Tensor>)> {
        if !verify::check_manifest(dir)? {
            self.reporter.note(&format!(
                "warning: {} has no {}: its files cannot be checked for damage",
                dir.display(),
                verify::MANIFEST
            ));
        }
        let state = checkpoint::read_state(dir)?;
        self.check_same_run(dir, &state)?;
        verify::check_best(dir, &state)?;
        let tensors = checkpoint::read_tensors(dir)?;
        let path = dir.join(checkpoint::TRAINING_STATE);
        let names: Vec<String> = self.updater.optimizer.params().into_iter().map(|(n, _)| n).collect();
        verify::check_optimizer_state(&path, &tensors, &names, state.bertfit_position.scheduled_steps)?;
        let order = self.check_rank_state(&path, &state, &tensors)?;
        let expected = verify::Expected {
            batches_per_epoch: self.batches_per_epoch(),
            accumulation: self.args.recipe.gradient_accumulation_steps,
            rank_rows: self.data.len(Split::Train),
            file_rows: self.data.train_file_rows(),
            permutation: self.ddp.is_none(),
        };
        let order = order.filter(|_| state.bertfit_position.batches_done > 0);
        verify::check_position(&dir.join(checkpoint::TRAINER_STATE), &state, order.as_deref(), &expected)?;
        Ok((state, tensors))
    }

    /// The checkpoint is this run's: its shape first (it knows which differences a new world size
    /// allows), then everything else that makes it this run (the identity).
    fn check_same_run(&mut self, dir: &Path, state: &TrainerState) -> Result<()> {
        let refuse =
            |why: String| Error::usage("--resume-from-checkpoint", format!("{} {why}", dir.display()));
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
        Ok(())
    }

    /// This rank's generator state (present, the size libtorch's is) and data order (present when
    /// the checkpoint is inside an in-memory epoch), as read from `path`.
    fn check_rank_state(
        &self,
        path: &Path,
        state: &TrainerState,
        tensors: &HashMap<String, tch::Tensor>,
    ) -> Result<Option<Vec<i64>>> {
        let key = self.rank_key(state);
        let missing = |key: &str| {
            Error::weights(
                path,
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
                path,
                format!(
                    "'{}' is a {:?} tensor of {} values; libtorch's CPU generator state is {want} bytes",
                    key("rng.cpu"),
                    rng.kind(),
                    rng.numel()
                ),
            ));
        }
        match tensors.get(&key("data.order")) {
            Some(t) => Ok(Some(Vec::<i64>::try_from(t)?)),
            None if state.bertfit_position.batches_done > 0 && !self.args.streaming => {
                Err(missing(&key("data.order")))
            }
            None => Ok(None),
        }
    }

    /// The name of this rank's tensor `name` in a checkpoint: a multi-process checkpoint of this
    /// world size holds each rank's own (`rank<r>.<name>`); across world sizes (allowed only at an
    /// epoch's start, where the order is drawn afresh) rank 0's, under the plain name.
    pub(in crate::train) fn rank_key(&self, state: &TrainerState) -> impl Fn(&str) -> String {
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
    pub(in crate::train) fn best_from(&self, best_dir: &Path, step: usize, value: f64) -> Result<Best> {
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
}

impl Trainer<'_> {
    /// The `checkpoint_load` record of a resume that began at `started`.
    pub(in crate::train) fn report_load(&mut self, dir: &Path, started: std::time::Instant) {
        self.reporter.checkpoint(&CheckpointRecord {
            kind: "checkpoint_load",
            step: self.global_step,
            seconds: started.elapsed().as_secs_f64(),
            bytes: checkpoint::size_of(dir),
            path: dir.to_path_buf(),
        });
    }

    /// A checkpoint's model weights, every one of them (bertfit's checkpoints and HF Trainer's).
    pub(in crate::train) fn load_checkpoint_weights(&mut self, dir: &Path) -> Result<()> {
        // (A path, not a name: a folder whose name is not UTF-8 is still this folder.)
        let files = crate::weights::resolve::model_files(dir)?;
        let report = crate::weights::load_pretrained(&self.vs.variables(), &self.config, &files.weights)?;
        if !report.newly_initialized.is_empty() {
            return Err(Error::weights(
                files.weights.path(),
                format!("the checkpoint lacks {:?}", report.newly_initialized),
            ));
        }
        Ok(())
    }
}
