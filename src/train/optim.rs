//! Adam and AdamW as torch.optim computes them, over HF-named parameters.
//!
//! - Unfused: `torch.optim.adam._single_tensor_adam` (what torch.optim picks on CPU), op for op, so
//!   the parameters match PyTorch's to the last bit where the kernels are the same.
//! - Fused: `_fused_adam_` / `_fused_adamw_` through the shim, as `torch.optim.Adam(fused=True)`;
//!   this is the path that takes a loss scale and an inf flag (fp16).
//!
//! Weight decay goes to the parameters HF Trainer decays (`Trainer.get_decay_parameter_names`): all but
//! biases and normalisation weights. State is created at a parameter's first step, as in torch.optim,
//! so a parameter that never had a gradient has none.
use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::row_grads::{self, RowGradient};
use crate::error::{Error, Result};
use crate::torch_ext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdamKind {
    /// L2 penalty added to the gradient (`torch.optim.Adam(weight_decay=...)`).
    Adam,
    /// Decoupled decay, `param *= 1 - lr * weight_decay` (`torch.optim.AdamW`).
    AdamW,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerSettings {
    pub kind: AdamKind,
    /// Starting learning rate; a schedule changes it with `Optimizer::set_lr`.
    pub lr: f64,
    /// torch.optim's default (0.9, 0.999).
    pub betas: (f64, f64),
    /// torch.optim's default 1e-8.
    pub eps: f64,
    /// Applied to the decay group only (see `hf_decays`).
    pub weight_decay: f64,
    /// `_fused_adam(w)_`: one kernel over all parameters; required for scaled (fp16) steps.
    pub fused: bool,
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        Self {
            kind: AdamKind::Adam,
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            fused: false,
        }
    }
}

/// Whether HF Trainer decays the parameter `name` (transformers 5.24,
/// `Trainer.get_decay_parameter_names` with `trainer_pt_utils.get_parameter_names`): not when the
/// lower-cased name matches `bias`, `layernorm`, `rmsnorm`, `(^|\.)norm($|\.)` or `_norm($|\.)`.
/// HF also exempts every parameter inside an `nn.LayerNorm` by module type; in BERT all of those are
/// named `LayerNorm` (so `bert.embeddings.LayerNorm.weight` is exempt) and the name rule covers them.
/// Embedding matrices are decayed.
pub fn hf_decays(name: &str) -> bool {
    let lower = name.to_lowercase();
    let segment_is_norm = lower.split('.').any(|s| s == "norm");
    let underscore_norm = lower.split('.').any(|s| s.ends_with("_norm"));
    !(lower.contains("bias")
        || lower.contains("layernorm")
        || lower.contains("rmsnorm")
        || segment_is_norm
        || underscore_norm)
}

/// The trainable variables of `vs`, named and in the order of `names` (HF's state-dict order, e.g.
/// from `model::names::parameters`). Every trainable variable must be named exactly once.
pub fn named_trainable(vs: &VarStore, names: &[String]) -> Result<Vec<(String, Tensor)>> {
    let mut vars: HashMap<String, Tensor> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match vars.remove(name) {
            Some(t) => out.push((name.clone(), t)),
            None => return Err(Error::Runtime(format!("optimizer: no trainable variable named {name}"))),
        }
    }
    if let Some(extra) = vars.keys().min() {
        return Err(Error::Runtime(format!(
            "optimizer: trainable variable {extra} is not in the parameter list"
        )));
    }
    Ok(out)
}

/// torch.optim's per-parameter state: `step` is a float32 scalar (on the CPU for the unfused path, on
/// the parameter's device for the fused one, as torch.optim keeps it), the moments are like the param.
#[derive(Debug)]
pub struct ParamState {
    pub step: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

struct Param {
    name: String,
    tensor: Tensor,
    decay: bool,
    state: Option<ParamState>,
    /// Set at the first gradient that comes back as rows (`row_grads`).
    rows: Option<RowGradient>,
}

pub struct Optimizer {
    settings: OptimizerSettings,
    params: Vec<Param>,
}

/// Suffixes of the names `state()` gives: `<parameter name>.<field>`.
const STATE_FIELDS: [&str; 3] = ["step", "exp_avg", "exp_avg_sq"];

impl Optimizer {
    /// An optimizer over `params` (HF name, variable), with HF's decay groups.
    pub fn new(params: Vec<(String, Tensor)>, settings: OptimizerSettings) -> Result<Self> {
        let (b1, b2) = settings.betas;
        // torch.optim.Adam's own argument checks.
        // Written so that NaN fails, as it does torch's checks.
        let non_negative = [settings.lr, settings.eps, settings.weight_decay].iter().all(|&x| x >= 0.0);
        if !non_negative {
            return Err(Error::usage("optimizer", format!("invalid settings {settings:?}")));
        }
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(Error::usage("optimizer", format!("betas must be in [0, 1): {:?}", settings.betas)));
        }
        let params = params
            .into_iter()
            .map(|(name, tensor)| Param { decay: hf_decays(&name), name, tensor, state: None, rows: None })
            .collect();
        Ok(Self { settings, params })
    }

    pub fn settings(&self) -> &OptimizerSettings {
        &self.settings
    }

    pub fn lr(&self) -> f64 {
        self.settings.lr
    }

    /// The learning rate of the next steps (a schedule sets it before every step).
    pub fn set_lr(&mut self, lr: f64) {
        self.settings.lr = lr;
    }

    /// Names of the parameters in the decay group, in parameter order.
    pub fn decay_names(&self) -> Vec<String> {
        self.params.iter().filter(|p| p.decay).map(|p| p.name.clone()).collect()
    }

    /// The parameters (shallow handles), in order.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|p| (p.name.clone(), p.tensor.shallow_clone())).collect()
    }

    /// The gradients that exist (a parameter without a gradient is skipped, as torch.optim does).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.tensor.grad()).filter(|g| g.defined()).collect()
    }

    /// Whether `step_scaled` works: the fused kernel unscales and skips on its own, as torch.optim's
    /// `_step_supports_amp_scaling`.
    pub fn supports_amp_scaling(&self) -> bool {
        self.settings.fused
    }

    /// `optimizer.zero_grad()` with PyTorch's default `set_to_none=True`: gradients are freed
    /// (a row-gathered table is zeroed where it was written and kept).
    pub fn zero_grad(&mut self) -> Result<()> {
        for p in &mut self.params {
            match p.rows.as_mut() {
                Some(rows) => rows.clear(&p.tensor)?,
                None => torch_ext::set_grad_none(&p.tensor)?,
            }
        }
        Ok(())
    }

    /// After each micro-step's backward: gradients that came back as rows are summed into their
    /// dense tables (`row_grads`), the parameters left without a gradient.
    pub fn gather_row_grads(&mut self) -> Result<()> {
        for p in &mut self.params {
            let grad = p.tensor.grad();
            if row_grads::is_rows(&grad) {
                let rows = match p.rows.as_mut() {
                    Some(rows) => rows,
                    None => p.rows.insert(RowGradient::new(&p.tensor)?),
                };
                rows.gather(&p.tensor, &grad)?;
            }
        }
        Ok(())
    }

    /// At the end of an accumulation window, before anything reads the gradients: each gathered
    /// table becomes its parameter's gradient. `written_elsewhere`: something other than this
    /// optimizer writes the gradients in place (DDP's average), so `zero_grad` clears whole tables.
    pub fn attach_row_grads(&mut self, written_elsewhere: bool) -> Result<()> {
        for p in &mut self.params {
            if let Some(rows) = p.rows.as_mut() {
                rows.attach(&p.tensor, written_elsewhere)?;
            }
        }
        Ok(())
    }

    /// One optimizer step over the parameters that have a gradient.
    pub fn step(&mut self) -> Result<()> {
        if self.settings.fused {
            self.fused_step(None, None)
        } else {
            tch::no_grad(|| self.single_tensor_step())
        }
    }

    /// A fused step on gradients that may still carry `grad_scale` (the kernel divides by it) and that
    /// is skipped when `found_inf` is non-zero (then the step counters are left as they were), with
    /// no host read: what `GradScaler.step` gives an optimizer with `_step_supports_amp_scaling`.
    pub fn step_scaled(&mut self, grad_scale: Option<&Tensor>, found_inf: &Tensor) -> Result<()> {
        if !self.settings.fused {
            return Err(Error::Runtime(
                "optimizer: scaled steps need the fused optimizer; the unfused one takes unscaled gradients"
                    .into(),
            ));
        }
        self.fused_step(grad_scale, Some(found_inf))
    }

    /// Creates a parameter's state at its first step: `torch.optim.Adam._init_group`.
    fn ensure_state(p: &mut Param, fused: bool) -> Result<()> {
        if p.state.is_none() {
            let step_device = if fused { p.tensor.device() } else { Device::Cpu };
            p.state = Some(ParamState {
                step: Tensor::f_zeros([0i64; 0], (Kind::Float, step_device))?,
                exp_avg: p.tensor.f_zeros_like()?,
                exp_avg_sq: p.tensor.f_zeros_like()?,
            });
        }
        Ok(())
    }

    /// `_single_tensor_adam` with `capturable=False, differentiable=False, maximize=False,
    /// amsgrad=False`, line by line (torch/optim/adam.py).
    fn single_tensor_step(&mut self) -> Result<()> {
        let s = self.settings;
        let (beta1, beta2) = s.betas;
        let decoupled = s.kind == AdamKind::AdamW;
        for p in &mut self.params {
            let grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            Self::ensure_state(p, false)?;
            let weight_decay = if p.decay { s.weight_decay } else { 0.0 };
            let param = &mut p.tensor;
            let Some(st) = p.state.as_mut() else { continue };
            // step_t += 1
            let _ = st.step.f_add_scalar_(1.0)?;
            let mut grad = grad;
            if weight_decay != 0.0 {
                if decoupled {
                    let _ = param.f_mul_scalar_(1.0 - s.lr * weight_decay)?;
                } else {
                    grad = torch_ext::add_alpha(&grad, param, weight_decay)?;
                }
            }
            // exp_avg.lerp_(grad, 1 - beta1)
            let _ = st.exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
            // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            let _ = st.exp_avg_sq.f_mul_scalar_(beta2)?;
            torch_ext::addcmul_(&st.exp_avg_sq, &grad, &grad, 1.0 - beta2)?;
            // step = _get_value(step_t): a Python float from the CPU step tensor.
            let step = st.step.f_double_value(&[])?;
            let bias_correction1 = 1.0 - beta1.powf(step);
            let bias_correction2 = 1.0 - beta2.powf(step);
            let step_size = s.lr / bias_correction1;
            // Python's `bias_correction2**0.5` is C pow(x, 0.5); kept as pow, not sqrt.
            let bias_correction2_sqrt = bias_correction2.powf(0.5);
            // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            let mut denom = st.exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?;
            let _ = denom.f_add_scalar_(s.eps)?;
            // param.addcdiv_(exp_avg, denom, value=-step_size)
            torch_ext::addcdiv_(param, &st.exp_avg, &denom, -step_size)?;
        }
        Ok(())
    }

    /// `torch.optim.adam._fused_adam`: per decay group and (device, dtype), steps += 1, the kernel,
    /// then steps -= found_inf.
    fn fused_step(&mut self, grad_scale: Option<&Tensor>, found_inf: Option<&Tensor>) -> Result<()> {
        let s = self.settings;
        let mut groups: Vec<((bool, Device, Kind), Vec<usize>)> = Vec::new();
        for (i, p) in self.params.iter_mut().enumerate() {
            if !p.tensor.grad().defined() {
                continue;
            }
            Self::ensure_state(p, true)?;
            let key = (p.decay, p.tensor.device(), p.tensor.kind());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for ((decay, device, _), members) in groups {
            let mut lists: [Vec<Tensor>; 5] = Default::default();
            for &i in &members {
                let p = &self.params[i];
                let Some(st) = p.state.as_ref() else { continue };
                lists[0].push(p.tensor.shallow_clone());
                lists[1].push(p.tensor.grad());
                lists[2].push(st.exp_avg.shallow_clone());
                lists[3].push(st.exp_avg_sq.shallow_clone());
                lists[4].push(st.step.shallow_clone());
            }
            let [params, grads, exp_avgs, exp_avg_sqs, steps] = &lists;
            let on_device = |t: Option<&Tensor>| t.map(|t| t.to_device(device));
            let (grad_scale, found_inf) = (on_device(grad_scale), on_device(found_inf));
            torch_ext::foreach_add_scalar_(steps, 1.0)?;
            let args = torch_ext::FusedAdamArgs {
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                max_exp_avg_sqs: &[],
                state_steps: steps,
                lr: s.lr,
                beta1: s.betas.0,
                beta2: s.betas.1,
                weight_decay: if decay { s.weight_decay } else { 0.0 },
                eps: s.eps,
                amsgrad: false,
                maximize: false,
                grad_scale: grad_scale.as_ref(),
                found_inf: found_inf.as_ref(),
            };
            tch::no_grad(|| torch_ext::fused_adam_(&args, s.kind == AdamKind::AdamW))?;
            if let Some(found_inf) = &found_inf {
                torch_ext::foreach_sub_same_(steps, found_inf)?;
            }
        }
        Ok(())
    }

    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)` (norm 2, foreach): the total norm as a
    /// device scalar (no host read); gradients are multiplied by min(max_norm / (norm + 1e-6), 1).
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<Tensor> {
        self.grad_norm_then(Some(max_norm))
    }

    /// The global 2-norm of the gradients as `clip_grad_norm_` computes it, the gradients left as
    /// they are (HF's `_get_grad_norm` clips at inf, whose factor is 1: the same values).
    pub fn grad_norm(&mut self) -> Result<Tensor> {
        self.grad_norm_then(None)
    }

    fn grad_norm_then(&mut self, max_norm: Option<f64>) -> Result<Tensor> {
        // Row-gathered tables (`row_grads`) give their norm from their written rows and are scaled
        // there; every other gradient goes through the foreach kernels, as clip_grad_norm_'s.
        let mut dense = Vec::new();
        let mut norms = Vec::new();
        for p in &self.params {
            let grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            match p.rows.as_ref().filter(|r| r.rows_known()) {
                Some(rows) => norms.push(rows.norm()?),
                None => dense.push(grad),
            }
        }
        let Some(first) = dense.first().or(norms.first()) else {
            return Ok(Tensor::f_zeros([0i64; 0], (Kind::Float, Device::Cpu))?);
        };
        let first_device = first.device();
        tch::no_grad(|| {
            let groups = group_by_device_and_kind(&dense);
            let mut all = Vec::with_capacity(dense.len() + norms.len());
            for group in &groups {
                for n in torch_ext::foreach_norm(group, 2.0)? {
                    all.push(n.f_to_device(first_device)?);
                }
            }
            for n in norms {
                all.push(n.f_to_device(first_device)?);
            }
            let total_norm = torch_ext::linalg_vector_norm(&Tensor::f_stack(&all, 0)?, 2.0)?;
            let Some(max_norm) = max_norm else { return Ok(total_norm) };
            // `max_norm / (total_norm + 1e-6)` is Tensor.__rtruediv__: reciprocal() * max_norm.
            let clip_coef = total_norm.f_add_scalar(1e-6)?.f_reciprocal()?.f_mul_scalar(max_norm)?;
            let clip_coef_clamped = clip_coef.f_clamp_max(1.0)?;
            for group in &groups {
                let device = group[0].device();
                torch_ext::foreach_mul_tensor_(group, &clip_coef_clamped.f_to_device(device)?)?;
            }
            for p in &mut self.params {
                if let Some(rows) = p.rows.as_mut().filter(|r| r.rows_known()) {
                    rows.scale(&clip_coef_clamped.f_to_device(p.tensor.device())?)?;
                }
            }
            Ok(total_norm)
        })
    }

    /// Copies of the optimizer state, named `<parameter>.step`, `<parameter>.exp_avg`,
    /// `<parameter>.exp_avg_sq`, for parameters that have stepped (ready for `write_safetensors`).
    /// Copies, because the live tensors keep changing.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for p in &self.params {
            if let Some(st) = &p.state {
                for (field, t) in STATE_FIELDS.iter().zip([&st.step, &st.exp_avg, &st.exp_avg_sq]) {
                    out.push((format!("{}.{field}", p.name), t.f_detach_copy()?));
                }
            }
        }
        Ok(out)
    }

    /// Restores what `state()` gave (by name; order does not matter): each parameter gets all three
    /// fields or none. Values are copied onto the devices and dtypes this optimizer uses, so the next
    /// steps are bitwise those the saved optimizer would have made.
    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let mut by_name: HashMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let bad = |msg: String| Error::Runtime(format!("optimizer state: {msg}"));
        let fused = self.settings.fused;
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let keys = STATE_FIELDS.map(|f| format!("{}.{f}", p.name));
            let found: Vec<Option<&Tensor>> = keys.iter().map(|k| by_name.remove(k.as_str())).collect();
            let state = match (found[0], found[1], found[2]) {
                (None, None, None) => None,
                (Some(step), Some(m), Some(v)) => {
                    if step.numel() != 1 {
                        return Err(bad(format!("{} is not a scalar", keys[0])));
                    }
                    for (k, t) in [(&keys[1], m), (&keys[2], v)] {
                        if t.size() != p.tensor.size() {
                            return Err(bad(format!(
                                "{k} has shape {:?}, the parameter {:?}",
                                t.size(),
                                p.tensor.size()
                            )));
                        }
                    }
                    let step_device = if fused { p.tensor.device() } else { Device::Cpu };
                    let like = (p.tensor.kind(), p.tensor.device());
                    Some(ParamState {
                        step: step
                            .f_reshape([0i64; 0])?
                            .f_to_device(step_device)?
                            .f_to_kind(Kind::Float)?
                            .f_detach_copy()?,
                        exp_avg: m.f_to_device(like.1)?.f_to_kind(like.0)?.f_detach_copy()?,
                        exp_avg_sq: v.f_to_device(like.1)?.f_to_kind(like.0)?.f_detach_copy()?,
                    })
                }
                _ => return Err(bad(format!("{} needs all of step, exp_avg and exp_avg_sq", p.name))),
            };
            restored.push(state);
        }
        if let Some(extra) = by_name.keys().min() {
            return Err(bad(format!("{extra} belongs to no parameter of this optimizer")));
        }
        for (p, st) in self.params.iter_mut().zip(restored) {
            p.state = st;
        }
        Ok(())
    }
}

/// Splits tensors into lists of one device and dtype (foreach kernels need that), keeping order.
fn group_by_device_and_kind(ts: &[Tensor]) -> Vec<Vec<Tensor>> {
    let mut groups: Vec<((Device, Kind), Vec<Tensor>)> = Vec::new();
    for t in ts {
        let key = (t.device(), t.kind());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(t.shallow_clone()),
            None => groups.push((key, vec![t.shallow_clone()])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::{hf_decays, Optimizer, OptimizerSettings};

    #[test]
    fn settings_torch_refuses_are_refused_nan_included() {
        let base = OptimizerSettings::default();
        for bad in [
            OptimizerSettings { lr: -1e-5, ..base },
            OptimizerSettings { lr: f64::NAN, ..base },
            OptimizerSettings { eps: f64::NAN, ..base },
            OptimizerSettings { weight_decay: -0.01, ..base },
            OptimizerSettings { betas: (1.0, 0.999), ..base },
            OptimizerSettings { betas: (0.9, f64::NAN), ..base },
        ] {
            assert!(Optimizer::new(Vec::new(), bad).is_err(), "{bad:?}");
        }
        assert!(Optimizer::new(Vec::new(), base).is_ok());
    }

    #[test]
    fn decay_rule_by_name() {
        for name in [
            "bert.embeddings.word_embeddings.weight",
            "bert.encoder.layer.0.attention.self.query.weight",
            "classifier.weight",
            "bert.normalizer.weight",
        ] {
            assert!(hf_decays(name), "{name}");
        }
        for name in [
            "bert.embeddings.LayerNorm.weight",
            "bert.encoder.layer.0.output.LayerNorm.bias",
            "classifier.bias",
            "model.norm.weight",
            "norm.weight",
            "layers.0.input_layernorm.weight",
            "q_norm.weight",
            "x.rmsnorm.scale",
        ] {
            assert!(!hf_decays(name), "{name}");
        }
    }
}
