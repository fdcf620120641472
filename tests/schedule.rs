//! The learning-rate schedules equal transformers' `get_scheduler` (driven by a real PyTorch optimizer
//! through `scripts/parity/schedule_reference.py`) at every step, and the warmup rule equals
//! `TrainingArguments.get_warmup_steps`.
use bertfit::train::schedule::{warmup_steps, Schedule, SchedulerType};
use serde_json::{json, Value};

use crate::common::{run_python, temp_dir};

fn reference(cases: &Value, dir: &str) -> Value {
    let dir = temp_dir(dir);
    let input = dir.join("cases.json");
    std::fs::write(&input, cases.to_string()).unwrap();
    let out = run_python("parity/schedule_reference.py", &["--input", input.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("schedule_reference.py output: {e}\n{out}"))
}

fn rel_diff(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

#[test]
fn schedules_match_transformers_at_every_step() {
    // (total steps, warmup steps): no warmup, a short and a long warmup, warmup = the whole run, a
    // one-step run. Each run is followed 3 steps past its end, where HF keeps evaluating the lambda.
    let shapes = [(97, 0), (97, 7), (40, 39), (12, 12), (1, 0), (1, 1)];
    let mut cases = Vec::new();
    for kind in SchedulerType::ALL {
        for (i, &(total, warmup)) in shapes.iter().enumerate() {
            if kind == SchedulerType::Polynomial && warmup == total {
                // transformers divides by zero decay steps there (ZeroDivisionError).
                continue;
            }
            let base_lr = if i % 2 == 0 { 5e-5 } else { 2e-3 };
            cases.push(Schedule::new(kind, base_lr, warmup, total).unwrap());
        }
    }
    let input: Vec<Value> = cases
        .iter()
        .map(|s| {
            json!({"type": s.kind.hf_name(), "base_lr": s.base_lr, "warmup_steps": s.warmup_steps,
                   "total_steps": s.total_steps, "steps": s.total_steps + 3})
        })
        .collect();
    let want = reference(&json!({ "schedules": input }), "schedule_parity");
    let want = want["schedules"].as_array().unwrap();
    assert_eq!(want.len(), cases.len());

    let (mut worst, mut compared) = (0f64, 0usize);
    for (s, lrs) in cases.iter().zip(want) {
        let lrs = lrs.as_array().unwrap();
        assert_eq!(lrs.len(), s.total_steps + 3);
        for (step, lr) in lrs.iter().enumerate() {
            let (got, want) = (s.lr_at(step), lr.as_f64().unwrap());
            let d = rel_diff(got, want);
            assert!(d <= 1e-12, "{s:?} step {step}: bertfit {got:e}, transformers {want:e} (rel diff {d:e})");
            worst = worst.max(d);
            compared += 1;
        }
    }
    assert!(
        compared > 0 && worst <= 1e-12,
        "schedule parity: {compared} learning rates over {} schedules, worst relative diff {worst:e}",
        cases.len()
    );
}

#[test]
fn warmup_ratio_matches_transformers() {
    // transformers 5 reads a float warmup_steps < 1 as a ratio; bertfit's --warmup-ratio is that case.
    let ratios = [0.0, 0.01, 0.06, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.7, 0.999];
    let totals = [1usize, 7, 95, 1000, 12_345];
    let mut cases = Vec::new();
    for &r in &ratios {
        for &t in &totals {
            cases.push((r, t));
        }
    }
    let input: Vec<Value> = cases.iter().map(|&(r, t)| json!({"warmup": r, "total_steps": t})).collect();
    let want = reference(&json!({ "warmup": input }), "schedule_warmup_parity");
    let want = want["warmup"].as_array().unwrap();
    assert_eq!(want.len(), cases.len());
    for (&(ratio, total), want) in cases.iter().zip(want) {
        let got = warmup_steps(None, Some(ratio), total).unwrap();
        assert_eq!(got as u64, want.as_u64().unwrap(), "ratio {ratio}, total {total}");
    }
}
