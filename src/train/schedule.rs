//! Learning-rate schedules as pure functions of the optimizer step, mirroring transformers'
//! `optimization.py` (`get_constant_schedule`, `get_constant_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup` with `num_cycles = 0.5`,
//! `get_cosine_with_hard_restarts_schedule_with_warmup` with `num_cycles = 1`,
//! `get_polynomial_decay_schedule_with_warmup` with `lr_end = 1e-7`, `power = 1.0`,
//! `get_inverse_sqrt_schedule` with `timescale = num_warmup_steps or 10_000`: the arguments HF's
//! `get_scheduler` passes when `lr_scheduler_kwargs` is empty).
//!
//! HF wraps each lambda in `torch.optim.lr_scheduler.LambdaLR`, which sets the lr to
//! `base_lr * lambda(last_epoch)`: `last_epoch` is 0 when the scheduler is built and the Trainer calls
//! `scheduler.step()` after every optimizer step. So optimizer step `k` (0-based) runs with
//! `lr_at(k)`, and the first step of a warmup uses lr 0, exactly as in HF.
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

const SCHEDULER_FLAG: &str = "--lr-scheduler-type";

/// HF's `SchedulerType`, limited to the schedules bertfit offers (`--lr-scheduler-type`'s
/// choices, by HF's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerType {
    /// The seed script's: the learning rate throughout.
    Constant,
    /// Linear warmup, then constant.
    #[value(name = "constant_with_warmup")]
    ConstantWithWarmup,
    /// Linear warmup, then linear decay to 0.
    Linear,
    /// Linear warmup, then half a cosine down to 0.
    Cosine,
    /// Linear warmup, then cosine cycles down to 0 with hard restarts (HF's default: one cycle).
    #[value(name = "cosine_with_restarts")]
    CosineWithRestarts,
    /// Linear warmup, then a polynomial decay (power 1) to `lr_end` 1e-7, held there after the run.
    Polynomial,
    /// Linear warmup, then 1/sqrt of the steps over a timescale (the warmup's length, or 10,000
    /// steps without one): no end, whatever the run's length.
    #[value(name = "inverse_sqrt")]
    InverseSqrt,
}

/// HF's `get_polynomial_decay_schedule_with_warmup` defaults (get_scheduler passes neither).
const POLYNOMIAL_LR_END: f64 = 1e-7;
const POLYNOMIAL_POWER: f64 = 1.0;

impl SchedulerType {
    pub const ALL: [SchedulerType; 7] = [
        SchedulerType::Constant,
        SchedulerType::ConstantWithWarmup,
        SchedulerType::Linear,
        SchedulerType::Cosine,
        SchedulerType::CosineWithRestarts,
        SchedulerType::Polynomial,
        SchedulerType::InverseSqrt,
    ];

    /// The name HF's `--lr_scheduler_type` takes.
    pub fn hf_name(self) -> &'static str {
        match self {
            SchedulerType::Constant => "constant",
            SchedulerType::ConstantWithWarmup => "constant_with_warmup",
            SchedulerType::Linear => "linear",
            SchedulerType::Cosine => "cosine",
            SchedulerType::CosineWithRestarts => "cosine_with_restarts",
            SchedulerType::Polynomial => "polynomial",
            SchedulerType::InverseSqrt => "inverse_sqrt",
        }
    }
}

impl fmt::Display for SchedulerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hf_name())
    }
}

impl FromStr for SchedulerType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SchedulerType::ALL.into_iter().find(|t| t.hf_name() == s).ok_or_else(|| {
            let accepted: Vec<&str> = SchedulerType::ALL.iter().map(|t| t.hf_name()).collect();
            Error::usage(SCHEDULER_FLAG, format!("unknown schedule '{s}'; accepted: {}", accepted.join(", ")))
        })
    }
}

/// A learning rate for every optimizer step of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: SchedulerType,
    /// The optimizer's lr (`--learning-rate`): `LambdaLR`'s `base_lr`.
    pub base_lr: f64,
    /// Ignored by `Constant`, as HF's `get_scheduler` ignores it for `constant`.
    pub warmup_steps: usize,
    /// Optimizer steps in the whole run (HF's `num_training_steps`).
    pub total_steps: usize,
}

impl Schedule {
    /// A checked schedule: `base_lr` finite and not negative, warmup no longer than the run.
    pub fn new(kind: SchedulerType, base_lr: f64, warmup_steps: usize, total_steps: usize) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(Error::usage(
                "--learning-rate",
                format!("must be a finite number >= 0, got {base_lr}"),
            ));
        }
        check_warmup_fits("--warmup-steps", warmup_steps, total_steps)?;
        if kind == SchedulerType::Polynomial && base_lr <= POLYNOMIAL_LR_END {
            // HF's own check, with its words.
            return Err(Error::usage(
                "--learning-rate",
                format!("lr_end ({POLYNOMIAL_LR_END:e}) must be smaller than initial lr ({base_lr:e})"),
            ));
        }
        Ok(Schedule { kind, base_lr, warmup_steps, total_steps })
    }

    /// The lr of optimizer step `step` (0-based): `base_lr * lambda(step)`.
    pub fn lr_at(&self, step: usize) -> f64 {
        self.base_lr * self.lambda(step)
    }

    /// HF's `lr_lambda`, term by term in the same order so the floating-point results are identical.
    pub fn lambda(&self, step: usize) -> f64 {
        let (step, warmup, total) = (step as i64, self.warmup_steps as i64, self.total_steps as i64);
        match self.kind {
            SchedulerType::Constant => 1.0,
            // `float(max(1.0, num_warmup_steps))`: the same value as `max(1, ...)` for integers.
            SchedulerType::ConstantWithWarmup if step < warmup => step as f64 / warmup.max(1) as f64,
            SchedulerType::ConstantWithWarmup => 1.0,
            SchedulerType::Linear
            | SchedulerType::Cosine
            | SchedulerType::CosineWithRestarts
            | SchedulerType::Polynomial
            | SchedulerType::InverseSqrt
                if step < warmup =>
            {
                step as f64 / warmup.max(1) as f64
            }
            SchedulerType::Linear => 0f64.max((total - step) as f64 / (total - warmup).max(1) as f64),
            SchedulerType::Cosine => {
                let num_cycles = 0.5;
                let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                // `math.pi * float(num_cycles) * 2.0 * progress`, evaluated left to right. Past
                // `total_steps` the cosine rises again, as it does in HF.
                0f64.max(0.5 * (1.0 + (std::f64::consts::PI * num_cycles * 2.0 * progress).cos()))
            }
            SchedulerType::CosineWithRestarts => {
                let num_cycles = 1.0;
                let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                if progress >= 1.0 {
                    return 0.0;
                }
                // `(float(num_cycles) * progress) % 1.0`: Python's float modulo equals `%` (fmod)
                // for the non-negative values it sees here.
                0f64.max(0.5 * (1.0 + (std::f64::consts::PI * ((num_cycles * progress) % 1.0)).cos()))
            }
            SchedulerType::Polynomial => self.polynomial(step, warmup, total),
            SchedulerType::InverseSqrt => {
                let timescale = if warmup > 0 { warmup } else { 10_000 };
                let shift = timescale - warmup;
                // `1.0 / math.sqrt((current_step + shift) / timescale)`: int / int is a float.
                1.0 / ((step + shift) as f64 / timescale as f64).sqrt()
            }
        }
    }

    /// HF's polynomial lambda past the warmup: `lr_end / lr_init` after the run, else
    /// `(lr_range * pct_remaining ** power + lr_end) / lr_init`. A run whose warmup is all of it
    /// divides by zero decay steps at its last step, where Python raises ZeroDivisionError; bertfit
    /// gives `lr_end` there.
    fn polynomial(&self, step: i64, warmup: i64, total: i64) -> f64 {
        let lr_init = self.base_lr;
        if step > total || total == warmup {
            return POLYNOMIAL_LR_END / lr_init;
        }
        let lr_range = lr_init - POLYNOMIAL_LR_END;
        let decay_steps = total - warmup;
        let pct_remaining = 1.0 - (step - warmup) as f64 / decay_steps as f64;
        let decay = lr_range * pct_remaining.powf(POLYNOMIAL_POWER) + POLYNOMIAL_LR_END;
        decay / lr_init
    }
}

/// Warmup steps from `--warmup-steps` or `--warmup-ratio` (at most one of them), by transformers'
/// `TrainingArguments.get_warmup_steps` rule: a ratio becomes `ceil(total_steps * ratio)`.
///
/// transformers 5.x folds both into one float `warmup_steps` (>= 1: steps, < 1: ratio); bertfit keeps
/// two flags so that `--warmup-ratio 1` means the whole run rather than one step. Neither given: 0.
pub fn warmup_steps(
    warmup_steps: Option<usize>,
    warmup_ratio: Option<f64>,
    total_steps: usize,
) -> Result<usize> {
    match (warmup_steps, warmup_ratio) {
        (Some(_), Some(_)) => {
            Err(Error::usage("--warmup-steps", "give either --warmup-steps or --warmup-ratio, not both"))
        }
        (Some(steps), None) => {
            check_warmup_fits("--warmup-steps", steps, total_steps)?;
            Ok(steps)
        }
        (None, Some(ratio)) => {
            if !(0.0..=1.0).contains(&ratio) {
                // NaN fails `contains` too.
                return Err(Error::usage("--warmup-ratio", format!("must be in [0, 1], got {ratio}")));
            }
            // Python's `math.ceil(num_training_steps * warmup)`: the same f64 product, rounded up.
            let steps = (total_steps as f64 * ratio).ceil() as usize;
            check_warmup_fits("--warmup-ratio", steps, total_steps)?;
            Ok(steps)
        }
        (None, None) => Ok(0),
    }
}

fn check_warmup_fits(flag: &str, warmup: usize, total_steps: usize) -> Result<()> {
    if warmup > total_steps {
        return Err(Error::usage(
            flag,
            format!("{warmup} warmup steps are more than the run's {total_steps} optimizer steps"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: SchedulerType, warmup: usize, total: usize) -> Schedule {
        Schedule::new(kind, 1e-3, warmup, total).unwrap()
    }

    #[test]
    fn parses_hf_names_and_names_the_flag_otherwise() {
        for t in SchedulerType::ALL {
            assert_eq!(t.hf_name().parse::<SchedulerType>().unwrap(), t);
            // --lr-scheduler-type takes the same names.
            let flag_name = clap::ValueEnum::to_possible_value(&t).unwrap();
            assert_eq!(flag_name.get_name(), t.hf_name());
        }
        let err = "reduce_lr_on_plateau".parse::<SchedulerType>().unwrap_err().to_string();
        assert!(err.contains("--lr-scheduler-type"), "{err}");
        assert!(
            err.contains("constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt"),
            "{err}"
        );
    }

    #[test]
    fn inverse_sqrt_decays_over_its_timescale() {
        let s = sched(SchedulerType::InverseSqrt, 4, 10);
        assert_eq!((s.lr_at(0), s.lr_at(2), s.lr_at(4)), (0.0, 0.5e-3, 1e-3));
        assert_eq!(s.lambda(16), 0.5, "1/sqrt(16/4)");
        // No warmup: the timescale is 10,000 steps and step 0 already has the base lr.
        let s = sched(SchedulerType::InverseSqrt, 0, 10);
        assert_eq!((s.lambda(0), s.lambda(30_000)), (1.0, 0.5));
    }

    #[test]
    fn warmup_starts_at_zero_and_reaches_base_lr() {
        for kind in [SchedulerType::ConstantWithWarmup, SchedulerType::Linear, SchedulerType::Cosine] {
            let s = sched(kind, 4, 10);
            assert_eq!(s.lr_at(0), 0.0);
            assert_eq!(s.lr_at(2), 0.5e-3);
            assert_eq!(s.lr_at(4), 1e-3);
        }
    }

    #[test]
    fn linear_and_cosine_decay_to_zero_at_total() {
        let lin = sched(SchedulerType::Linear, 2, 10);
        assert_eq!(lin.lr_at(6), 1e-3 * 0.5);
        assert_eq!(lin.lr_at(10), 0.0);
        assert_eq!(lin.lr_at(12), 0.0);
        let cos = sched(SchedulerType::Cosine, 2, 10);
        assert!((cos.lr_at(6) - 0.5e-3).abs() < 1e-18);
        assert!(cos.lr_at(10).abs() < 1e-18);
    }

    #[test]
    fn constant_ignores_warmup() {
        let s = sched(SchedulerType::Constant, 3, 10);
        assert_eq!(s.lr_at(0), 1e-3);
        assert_eq!(s.lr_at(99), 1e-3);
    }

    #[test]
    fn zero_total_steps_does_not_divide_by_zero() {
        let s = sched(SchedulerType::Linear, 0, 0);
        assert_eq!(s.lr_at(0), 0.0);
        assert!(sched(SchedulerType::Cosine, 0, 0).lr_at(0).is_finite());
    }

    #[test]
    fn warmup_ratio_rounds_up_like_hf() {
        assert_eq!(warmup_steps(None, Some(0.1), 95).unwrap(), 10);
        assert_eq!(warmup_steps(None, Some(0.0), 95).unwrap(), 0);
        assert_eq!(warmup_steps(None, Some(1.0), 95).unwrap(), 95);
        assert_eq!(warmup_steps(Some(7), None, 95).unwrap(), 7);
        assert_eq!(warmup_steps(None, None, 95).unwrap(), 0);
    }

    #[test]
    fn bad_warmup_names_its_flag() {
        for ratio in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let err = warmup_steps(None, Some(ratio), 10).unwrap_err().to_string();
            assert!(err.starts_with("--warmup-ratio"), "{err}");
        }
        let err = warmup_steps(Some(11), None, 10).unwrap_err().to_string();
        assert!(err.starts_with("--warmup-steps") && err.contains("11"), "{err}");
        assert!(warmup_steps(Some(1), Some(0.1), 10).is_err());
        assert!(Schedule::new(SchedulerType::Linear, f64::NAN, 0, 10).is_err());
        assert!(Schedule::new(SchedulerType::Linear, 1e-3, 11, 10).is_err());
        let err = Schedule::new(SchedulerType::Polynomial, 1e-7, 0, 10).unwrap_err().to_string();
        assert!(err.contains("lr_end (1e-7) must be smaller than initial lr (1e-7)"), "{err}");
    }

    #[test]
    fn restarts_and_polynomial_end_where_hf_ends_them() {
        let r = sched(SchedulerType::CosineWithRestarts, 2, 10);
        assert_eq!(r.lr_at(2), 1e-3);
        assert_eq!(r.lr_at(10), 0.0);
        let p = sched(SchedulerType::Polynomial, 0, 10);
        assert_eq!(p.lr_at(0), 1e-3);
        // Past the run: lr_end / lr_init, times lr_init.
        assert!((p.lr_at(11) - 1e-7).abs() < 1e-20);
    }
}
