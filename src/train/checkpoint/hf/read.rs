//! Resuming a bertfit run from an HF Trainer checkpoint: its weights, AdamW moments and steps
//! (optimizer.pt), schedule position (scheduler.pt) and global_step (trainer_state.json), each
//! checked against this run before any is used.
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;
use tch::Tensor;

use super::{hf_groups, OPTIMIZER, SCHEDULER};
use crate::error::{Error, Result};
use crate::train::checkpoint::{verify, Position, TRAINER_STATE};
use crate::train::optim::AdamKind;
use crate::train::trainer::Resume;
use crate::train::Trainer;
use crate::weights::pickle::read_torch_object;
use crate::weights::torch_save::PyObj;

/// What HF's trainer_state.json says of the position.
struct HfState {
    global_step: usize,
    epoch: f64,
    log_history: Vec<Value>,
    /// HF's `total_flos` so far (the run's total goes on from it, as HF's does).
    total_flos: f64,
}

impl Trainer<'_> {
    /// Puts the run where the HF checkpoint in `dir` was taken (weights, optimizer, schedule,
    /// counters) and continues at the same global step, with bertfit's own order for the rest of
    /// that epoch (HF's RandomSampler order and generator states are not reproduced: said in a note).
    pub(in crate::train) fn restore_hf(&mut self, dir: &Path) -> Result<Resume> {
        let started = Instant::now();
        let state = read_state(dir)?;
        // The data position first: another data or batch size changes every other figure too.
        let mut position = self.hf_position(dir, &state)?;
        let steps = self.check_hf_scheduler(&dir.join(SCHEDULER), state.global_step)?;
        let named = self.hf_optimizer_state(&dir.join(OPTIMIZER), steps)?;
        position.scheduled_steps = steps;
        self.reporter.resumed(state.global_step, position.epoch, dir);
        self.load_checkpoint_weights(dir)?;
        self.updater.optimizer.load_state(&named)?;
        self.updater.scheduled_steps = steps;
        self.global_step = state.global_step;
        self.log.resume(state.log_history, state.global_step);
        self.epoch_done = state.epoch;
        self.total_flos = state.total_flos;
        if position.batches_done > 0 {
            self.reporter.note(&format!(
                "{} is an HF Trainer checkpoint taken inside epoch {}: bertfit continues at step {} \
                 with its own example order for the remaining {} batches of that epoch (HF's sampler \
                 order and its rng_state.pth are not reproduced)",
                dir.display(),
                position.epoch,
                state.global_step,
                self.batches_per_epoch() - position.batches_done
            ));
        }
        self.report_load(dir, started);
        Ok(Resume { plan: None, position })
    }

    /// HF's resume position (`Trainer._inner_training_loop`): `global_step // steps_per_epoch`
    /// epochs done and `global_step % steps_per_epoch * accumulation` batches of the next; the
    /// checkpoint's fractional epoch must be that step's in this run's data.
    fn hf_position(&self, dir: &Path, state: &HfState) -> Result<Position> {
        let batches = self.batches_per_epoch().max(1);
        let accumulation = self.args.recipe.gradient_accumulation_steps.max(1);
        let per_epoch = batches.div_ceil(accumulation);
        let (done, within) = (state.global_step / per_epoch, state.global_step % per_epoch);
        let batches_done = (within * accumulation).min(batches);
        let epoch = done as f64 + batches_done as f64 / batches as f64;
        if (epoch - state.epoch).abs() > 1e-6 {
            return Err(Error::config(
                dir.join(TRAINER_STATE),
                format!(
                    "epoch is {}, but step {} of this run ({batches} batches an epoch, {per_epoch} steps) \
                     is epoch {epoch}: the training data, batch size or accumulation differs from the HF run's",
                    state.epoch, state.global_step
                ),
            ));
        }
        Ok(Position { epoch: done + 1, batches_done, ..Default::default() })
    }

    /// scheduler.pt against this run's schedule; gives the steps it counted.
    fn check_hf_scheduler(&self, path: &Path, global_step: usize) -> Result<usize> {
        let bad = |msg: String| Error::weights(path, format!("scheduler state: {msg}"));
        let obj = read_torch_object(path)?;
        let steps =
            obj.get("last_epoch").and_then(PyObj::as_i64).ok_or_else(|| bad("no int last_epoch".into()))?;
        let steps = usize::try_from(steps).map_err(|_| bad(format!("last_epoch is {steps}")))?;
        if steps > global_step {
            return Err(bad(format!(
                "last_epoch {steps} is past trainer_state.json's global_step {global_step}"
            )));
        }
        let floats = |key: &str| -> Vec<f64> {
            obj.get(key)
                .and_then(PyObj::items)
                .map(|v| v.iter().filter_map(PyObj::as_f64).collect())
                .unwrap_or_default()
        };
        let schedule = &self.updater.schedule;
        let base = floats("base_lrs");
        if base.is_empty() || base.iter().any(|&b| b != schedule.base_lr) {
            return Err(Error::usage(
                "--learning-rate",
                format!(
                    "{} has base_lrs {base:?}; this run's learning rate is {}",
                    path.display(),
                    schedule.base_lr
                ),
            ));
        }
        let (theirs, ours) = (floats("_last_lr"), schedule.lr_at(steps));
        let close = |a: f64| (a - ours).abs() <= 1e-12 * ours.abs().max(1e-300);
        if theirs.is_empty() || !theirs.iter().all(|&a| close(a)) {
            return Err(Error::usage(
                "--lr-scheduler-type",
                format!(
                    "{} gives learning rate {theirs:?} after {steps} steps; this run's schedule ({}, {} warmup \
                     steps of {}) gives {ours}: the schedule type, warmup or number of training steps differs",
                    path.display(),
                    schedule.kind,
                    schedule.warmup_steps,
                    schedule.total_steps
                ),
            ));
        }
        Ok(steps)
    }

    /// optimizer.pt as `<param>.<field>` tensors for `Optimizer::load_state`, after checking its
    /// groups, hyper-parameters and state against this run's AdamW.
    fn hf_optimizer_state(&self, path: &Path, steps: usize) -> Result<Vec<(String, Tensor)>> {
        let s = *self.updater.optimizer.settings();
        if s.kind != AdamKind::AdamW {
            return Err(Error::usage(
                "--optim",
                format!(
                    "{} holds torch AdamW state (HF Trainer's optimizer); resume it with --optim adamw",
                    path.display()
                ),
            ));
        }
        let bad = |msg: String| Error::weights(path, format!("optimizer state: {msg}"));
        let obj = read_torch_object(path)?;
        let params = self.updater.optimizer.params();
        let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
        let groups = hf_groups(&names);
        let saved = obj
            .get("param_groups")
            .and_then(PyObj::items)
            .ok_or_else(|| bad("no param_groups list".into()))?;
        let order = hf_order(saved, &groups).map_err(bad)?;
        let base_lr = self.updater.schedule.base_lr;
        let differences: Vec<String> = saved
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group_differences(group, g, &s, base_lr))
            .collect();
        if !differences.is_empty() {
            return Err(Error::usage(
                "--resume-from-checkpoint",
                format!(
                    "{} is from another optimizer setting; it differs in {}",
                    path.display(),
                    differences.join("; ")
                ),
            ));
        }
        let named = state_tensors(&obj, &order, &params).map_err(bad)?;
        let prefixed: HashMap<String, Tensor> =
            named.iter().map(|(n, t)| (format!("optimizer.{n}"), t.shallow_clone())).collect();
        verify::check_optimizer_state(path, &prefixed, &names, steps)?;
        Ok(named)
    }
}

/// For each HF optimizer index, the bertfit parameter it stands for: the saved groups must list
/// as many parameters as HF's `groups` of this model, numbered in order.
fn hf_order(saved: &[PyObj], groups: &[Vec<usize>; 2]) -> std::result::Result<Vec<usize>, String> {
    fn listed(group: &PyObj) -> &[PyObj] {
        group.get("params").and_then(PyObj::items).unwrap_or_default()
    }
    let counts: Vec<usize> = saved.iter().map(|g| listed(g).len()).collect();
    let want: Vec<usize> = groups.iter().map(Vec::len).collect();
    if counts != want {
        return Err(format!(
            "its parameter groups hold {counts:?} parameters; HF Trainer groups this model's as {want:?} \
             (weight decay, then none): another model or another optimizer grouping"
        ));
    }
    let mut order = Vec::new();
    for (g, (group, members)) in saved.iter().zip(groups).enumerate() {
        for (&member, index) in members.iter().zip(listed(group)) {
            if index.as_i64() != Some(order.len() as i64) {
                return Err(format!("group {g} lists parameter {index:?} out of HF's order"));
            }
            order.push(member);
        }
    }
    Ok(order)
}

/// A parameter group's hyper-parameters that differ from this run's, as `name: checkpoint vs run`.
fn group_differences(
    group: &PyObj,
    g: usize,
    s: &crate::train::optim::OptimizerSettings,
    base_lr: f64,
) -> Vec<String> {
    let decay = if g == 0 { s.weight_decay } else { 0.0 };
    let betas = group
        .get("betas")
        .and_then(PyObj::items)
        .map(|b| b.iter().filter_map(PyObj::as_f64).collect::<Vec<_>>());
    let mut out = Vec::new();
    let mut float = |key: &str, flag: &str, want: f64| {
        let got = group.get(key).and_then(PyObj::as_f64);
        if got != Some(want) {
            out.push(format!("group {g} {key} ({flag}): {got:?} vs {want}"));
        }
    };
    float("weight_decay", "--weight-decay", decay);
    float("eps", "--adam-epsilon", s.eps);
    float("initial_lr", "--learning-rate", base_lr);
    if betas != Some(vec![s.betas.0, s.betas.1]) {
        out.push(format!("group {g} betas (--adam-beta1, --adam-beta2): {betas:?} vs {:?}", s.betas));
    }
    for key in ["amsgrad", "maximize"] {
        if matches!(group.get(key), Some(PyObj::Bool(true))) {
            out.push(format!("group {g} {key}: True (bertfit's AdamW has it off)"));
        }
    }
    if matches!(group.get("decoupled_weight_decay"), Some(PyObj::Bool(false))) {
        out.push(format!("group {g} decoupled_weight_decay: False (torch Adam, not AdamW)"));
    }
    out
}

/// The `state` dict of optimizer.pt as `<param>.<field>` tensors; `order[i]` is HF index i's
/// parameter in `params`.
fn state_tensors(
    obj: &PyObj,
    order: &[usize],
    params: &[(String, Tensor)],
) -> std::result::Result<Vec<(String, Tensor)>, String> {
    let Some(PyObj::Dict(state)) = obj.get("state") else { return Err("no state dict".into()) };
    let mut out = Vec::new();
    for (key, entry) in state {
        let index = key.as_i64().filter(|&i| i >= 0 && (i as usize) < order.len());
        let Some(index) = index else {
            return Err(format!("state for parameter {key:?}, which the groups do not list"));
        };
        let (name, param) = &params[order[index as usize]];
        for field in ["step", "exp_avg", "exp_avg_sq"] {
            match entry.get(field) {
                Some(PyObj::Tensor(t)) if field != "step" && t.size() != param.size() => {
                    return Err(format!(
                        "'{field}' of parameter {index} ({name}) has shape {:?}, the parameter {:?}",
                        t.size(),
                        param.size()
                    ))
                }
                Some(PyObj::Tensor(t)) => out.push((format!("{name}.{field}"), t.shallow_clone())),
                _ => return Err(format!("parameter {index} ({name}) has no tensor '{field}'")),
            }
        }
    }
    Ok(out)
}

/// trainer_state.json's global_step, epoch and log history.
fn read_state(dir: &Path) -> Result<HfState> {
    let path = dir.join(TRAINER_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| Error::config(&path, format!("not a trainer state: {e}")))?;
    let bad = |what: &str| Error::config(&path, format!("{what} is missing or not a number"));
    let global_step =
        json.get("global_step").and_then(Value::as_u64).ok_or_else(|| bad("global_step"))? as usize;
    let epoch = json.get("epoch").and_then(Value::as_f64).ok_or_else(|| bad("epoch"))?;
    let log_history = json.get("log_history").and_then(Value::as_array).cloned().unwrap_or_default();
    let total_flos = json.get("total_flos").and_then(Value::as_f64).unwrap_or(0.0);
    Ok(HfState { global_step, epoch, log_history, total_flos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::OptimizerSettings;

    fn group(params: &[i64], weight_decay: f64) -> PyObj {
        let s = PyObj::str;
        PyObj::Dict(vec![
            (s("weight_decay"), PyObj::Float(weight_decay)),
            (s("betas"), PyObj::Tuple(vec![PyObj::Float(0.9), PyObj::Float(0.999)])),
            (s("eps"), PyObj::Float(1e-8)),
            (s("initial_lr"), PyObj::Float(1e-3)),
            (s("amsgrad"), PyObj::Bool(false)),
            (s("params"), PyObj::List(params.iter().map(|&i| PyObj::Int(i)).collect())),
        ])
    }

    #[test]
    fn hf_indices_map_to_the_decay_group_then_the_rest() {
        let names: Vec<String> =
            ["a.weight", "a.bias", "LayerNorm.weight", "b.weight"].iter().map(|s| s.to_string()).collect();
        let groups = super::super::hf_groups(&names);
        assert_eq!(groups, [vec![0, 3], vec![1, 2]]);
        let saved = [group(&[0, 1], 0.01), group(&[2, 3], 0.0)];
        assert_eq!(hf_order(&saved, &groups).unwrap(), [0, 3, 1, 2]);
        let e = hf_order(&[group(&[0, 1, 2], 0.01), group(&[3], 0.0)], &groups).unwrap_err();
        assert!(e.contains("hold [3, 1] parameters") && e.contains("[2, 2]"), "{e}");
        let e = hf_order(&[group(&[1, 0], 0.01), group(&[2, 3], 0.0)], &groups).unwrap_err();
        assert!(e.contains("group 0 lists parameter Int(1) out of HF's order"), "{e}");
    }

    #[test]
    fn hyper_parameters_that_differ_are_named_with_their_flags() {
        let s =
            OptimizerSettings { kind: AdamKind::AdamW, lr: 1e-3, weight_decay: 0.01, ..Default::default() };
        assert!(group_differences(&group(&[], 0.01), 0, &s, 1e-3).is_empty());
        assert!(group_differences(&group(&[], 0.0), 1, &s, 1e-3).is_empty());
        let d = group_differences(&group(&[], 0.02), 0, &s, 2e-3).join("; ");
        assert!(d.contains("group 0 weight_decay (--weight-decay): Some(0.02) vs 0.01"), "{d}");
        assert!(d.contains("initial_lr (--learning-rate): Some(0.001) vs 0.002"), "{d}");
        let s = OptimizerSettings { eps: 1e-6, betas: (0.8, 0.999), ..s };
        let d = group_differences(&group(&[], 0.01), 0, &s, 1e-3).join("; ");
        assert!(
            d.contains("eps (--adam-epsilon)") && d.contains("betas (--adam-beta1, --adam-beta2)"),
            "{d}"
        );
    }
}
