//! optimizer.pt and scheduler.pt as HF Trainer saves them, from bertfit's optimizer and schedule.
use std::collections::HashMap;

use tch::Tensor;

use super::{hf_groups, OPTIMIZER, SCHEDULER};
use crate::error::Result;
use crate::train::optim::{AdamKind, Optimizer};
use crate::train::schedule::Schedule;
use crate::weights::torch_save::{to_bytes, PyObj};

/// The files (name, bytes) that let HF Trainer resume this AdamW run after `scheduled_steps`
/// updates; none for plain Adam, which HF has no optimizer for.
pub fn files(
    optimizer: &Optimizer,
    schedule: &Schedule,
    scheduled_steps: usize,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    if optimizer.settings().kind != AdamKind::AdamW {
        return Ok(Vec::new());
    }
    // What LambdaLR set after the last scheduler.step(): the next step's rate.
    let lr = schedule.lr_at(scheduled_steps);
    let optimizer_state = optimizer_state_dict(optimizer, schedule.base_lr, lr)?;
    let scheduler_state = scheduler_state_dict(schedule.base_lr, lr, scheduled_steps);
    Ok(vec![
        (OPTIMIZER, to_bytes(&optimizer_state, "optimizer")?),
        (SCHEDULER, to_bytes(&scheduler_state, "scheduler")?),
    ])
}

/// `torch.optim.AdamW.state_dict()` over HF's two groups.
fn optimizer_state_dict(optimizer: &Optimizer, base_lr: f64, lr: f64) -> Result<PyObj> {
    let names: Vec<String> = optimizer.params().into_iter().map(|(n, _)| n).collect();
    let mut saved: HashMap<String, Tensor> = optimizer.state()?.into_iter().collect();
    let groups = hf_groups(&names);
    let mut state = Vec::new();
    let mut param_groups = Vec::new();
    let mut index = 0i64;
    let s = optimizer.settings();
    for (members, weight_decay) in groups.iter().zip([s.weight_decay, 0.0]) {
        let mut params = Vec::new();
        for &i in members {
            let fields =
                ["step", "exp_avg", "exp_avg_sq"].map(|f| saved.remove(&format!("{}.{f}", names[i])));
            if let [Some(step), Some(m), Some(v)] = fields {
                let entry = vec![
                    (PyObj::str("step"), PyObj::Tensor(step)),
                    (PyObj::str("exp_avg"), PyObj::Tensor(m)),
                    (PyObj::str("exp_avg_sq"), PyObj::Tensor(v)),
                ];
                state.push((PyObj::Int(index), PyObj::Dict(entry)));
            }
            params.push(PyObj::Int(index));
            index += 1;
        }
        let group = vec![
            ("weight_decay", PyObj::Float(weight_decay)),
            ("lr", PyObj::Float(lr)),
            ("betas", PyObj::Tuple(vec![PyObj::Float(s.betas.0), PyObj::Float(s.betas.1)])),
            ("eps", PyObj::Float(s.eps)),
            ("amsgrad", PyObj::Bool(false)),
            ("maximize", PyObj::Bool(false)),
            ("foreach", PyObj::None),
            ("capturable", PyObj::Bool(false)),
            ("differentiable", PyObj::Bool(false)),
            // HF's adamw_torch_fused passes fused=True; adamw_torch leaves torch's None.
            ("fused", if s.fused { PyObj::Bool(true) } else { PyObj::None }),
            ("decoupled_weight_decay", PyObj::Bool(true)),
            ("initial_lr", PyObj::Float(base_lr)),
            ("params", PyObj::List(params)),
        ];
        param_groups.push(PyObj::Dict(group.into_iter().map(|(k, v)| (PyObj::str(k), v)).collect()));
    }
    Ok(PyObj::Dict(vec![
        (PyObj::str("state"), PyObj::Dict(state)),
        (PyObj::str("param_groups"), PyObj::List(param_groups)),
    ]))
}

/// `LambdaLR.state_dict()` of HF's schedules (torch 2.11's keys) after `steps` scheduler steps:
/// HF's lambdas are `functools.partial`s, saved as their (empty) `__dict__`.
fn scheduler_state_dict(base_lr: f64, lr: f64, steps: usize) -> PyObj {
    let both = |v: f64| PyObj::List(vec![PyObj::Float(v), PyObj::Float(v)]);
    let items = vec![
        ("base_lrs", both(base_lr)),
        ("last_epoch", PyObj::Int(steps as i64)),
        ("_step_count", PyObj::Int(steps as i64 + 1)),
        ("_is_initial", PyObj::Bool(false)),
        ("_get_lr_called_within_step", PyObj::Bool(false)),
        ("_last_lr", both(lr)),
        ("lr_lambdas", PyObj::List(vec![PyObj::Dict(Vec::new()), PyObj::Dict(Vec::new())])),
    ];
    PyObj::Dict(items.into_iter().map(|(k, v)| (PyObj::str(k), v)).collect())
}
