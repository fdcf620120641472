//! Saving a run: `checkpoint-<step>/` folders for an exact resume, and the final model folder.
//! Both are HF folders (config, weights, tokenizer) written beside their place and swapped in
//! whole, with `trainer_state.json` and `training_args.json`; a checkpoint adds
//! `training_state.safetensors` and, last, its manifest.
use std::time::Instant;

use super::verify;
use super::{Fingerprint, Position};
use crate::data::dataset::Split;
use crate::data::training_data::PassPlan;
use crate::dist::ddp::Ddp;
use crate::error::Result;
use crate::train::checkpoint;
use crate::train::report::CheckpointRecord;
use crate::train::trainer_state::to_hf_json;
use crate::train::Trainer;
use crate::weights::save_pretrained;

impl Trainer<'_> {
    /// What a checkpoint must share with this run to continue it.
    pub(in crate::train) fn fingerprint(&self) -> Fingerprint {
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
    pub(in crate::train) fn gather_rank_state(
        &mut self,
        order: Option<&[i64]>,
    ) -> Result<Vec<(String, tch::Tensor)>> {
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
    pub(in crate::train) fn save_checkpoint(
        &mut self,
        plan: Option<&PassPlan>,
        position: &Position,
    ) -> Result<()> {
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
        let tensors = self.training_state(per_rank, order.as_deref())?;
        let best_dir = self.best.as_ref().map(|b| checkpoint::folder(&self.args.output_dir, b.step));
        let best_checkpoint =
            best_dir.as_ref().filter(|d| d.exists() || *d == &dir).map(|d| d.display().to_string());
        let mut hf = self.hf_trainer_state(best_checkpoint, true);
        // HF's epoch is the position's (a checkpoint at an epoch's end is at the next one's start).
        hf["epoch"] = serde_json::json!(
            (position.epoch - 1) as f64
                + position.batches_done as f64 / self.batches_per_epoch().max(1) as f64
        );
        let own = serde_json::json!({
            "bertfit_position": position,
            "bertfit_run": self.fingerprint(),
            "bertfit_identity": self.identity,
        });
        let state_json = to_hf_json(&hf);
        let own_json = serde_json::to_string_pretty(&own).unwrap_or_default();
        let args_json = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        let training_state = checkpoint::tensors_to_bytes(&tensors)?;
        let hf_files = checkpoint::hf::write_files(
            &self.updater.optimizer,
            &self.updater.schedule,
            self.updater.scheduled_steps,
        )?;
        let mut files: Vec<(&str, &[u8])> = vec![
            ("training_args.json", args_json.as_bytes()),
            (checkpoint::TRAINER_STATE, state_json.as_bytes()),
            (checkpoint::BERTFIT_STATE, own_json.as_bytes()),
            (checkpoint::TRAINING_STATE, &training_state),
        ];
        files.extend(hf_files.iter().map(|(name, bytes)| (*name, bytes.as_slice())));
        save_pretrained(&dir, &self.config, &self.vs.variables(), &self.tokenizer, &files)?;
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

    /// training_state.safetensors' tensors: this process's generator state, every rank's
    /// (`per_rank`), the optimizer's and the loss scaler's state, the epoch's data order.
    fn training_state(
        &self,
        per_rank: Vec<(String, tch::Tensor)>,
        order: Option<&[i64]>,
    ) -> Result<Vec<(String, tch::Tensor)>> {
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
        if let Some(order) = order {
            tensors.push(("data.order".into(), tch::Tensor::from_slice(order)));
        }
        Ok(tensors)
    }

    /// The model as an HF folder (config.json, model.safetensors, tokenizer files) with
    /// training_args.json, written beside the output folder and swapped in at once: the folder is
    /// at every instant the complete previous one or the complete new one. `finished`: the run
    /// is complete (not stopped by a signal), so `--resume-from-checkpoint auto` leaves it be.
    pub(in crate::train) fn save(&self, finished: bool) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let args_json = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        // HF Trainer leaves its trainer_state.json beside the final model too.
        let best_checkpoint = self
            .best
            .as_ref()
            .map(|b| checkpoint::folder(&self.args.output_dir, b.step))
            .filter(|d| d.exists())
            .map(|d| d.display().to_string());
        let state_json = to_hf_json(&self.hf_trainer_state(best_checkpoint, false));
        let own = serde_json::json!({
            "bertfit_finished": finished,
            "bertfit_run": self.fingerprint(),
            "bertfit_identity": self.identity,
        });
        let own_json = serde_json::to_string_pretty(&own).unwrap_or_default();
        save_pretrained(
            &self.args.output_dir,
            &self.config,
            &self.vs.variables(),
            &self.tokenizer,
            &[
                ("training_args.json", args_json.as_bytes()),
                (checkpoint::TRAINER_STATE, state_json.as_bytes()),
                (checkpoint::BERTFIT_STATE, own_json.as_bytes()),
            ],
        )?;
        // What --overwrite set aside is no longer needed: this run has its model.
        crate::output::remove_set_aside(&self.args.output_dir)
    }
}
