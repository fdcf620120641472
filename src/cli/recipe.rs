//! `bertfit train`'s recipe flags (HF TrainingArguments' names): optimizer, schedule,
//! accumulation, clipping, precision, evaluation during the run and early stopping.
use clap::{Args, ValueEnum};

use super::flags::{count, opt_count};
use crate::error::{Error, Result};
use crate::train::args::Recipe;
use crate::train::optim::AdamKind;
use crate::train::precision::{Precision, PrecisionChoice};
use crate::train::schedule::SchedulerType;

/// `--optim`: bertfit's names and HF's `OptimizerNames` for the same two optimizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Optim {
    /// torch.optim.Adam: L2 decay in the gradient (the seed script's).
    Adam,
    /// torch.optim.AdamW, HF's: decoupled decay on all but biases and LayerNorm weights.
    #[value(name = "adamw", aliases = ["adamw_torch", "adamw-torch"])]
    AdamW,
    /// AdamW's fused kernel (bertfit's default kernel; refused with --no-fused).
    #[value(name = "adamw_torch_fused", alias = "adamw-torch-fused")]
    AdamWTorchFused,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Recipe")]
pub struct RecipeFlags {
    /// adam (the seed script's torch.optim.Adam: L2 decay in the gradient) or adamw (HF's:
    /// decoupled decay on all but biases and LayerNorm weights). HF's adamw_torch and
    /// adamw_torch_fused are accepted.
    #[arg(long, value_enum, default_value_t = Optim::Adam)]
    pub optim: Optim,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub adam_beta1: f64,
    #[arg(long, default_value_t = 0.999, allow_negative_numbers = true)]
    pub adam_beta2: f64,
    #[arg(long, default_value_t = 1e-8, allow_negative_numbers = true)]
    pub adam_epsilon: f64,
    /// Use the unfused optimizer (a kernel per parameter); the fused one gives equal results.
    #[arg(long)]
    pub no_fused: bool,
    /// The learning-rate schedule, as HF names it (constant is the seed script's).
    #[arg(long, value_enum, default_value_t = SchedulerType::Constant)]
    pub lr_scheduler_type: SchedulerType,
    /// Optimizer steps of linear warmup from 0 to --learning-rate.
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_steps: Option<i64>,
    /// Warmup as a fraction of all optimizer steps (rounded up).
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_ratio: Option<f64>,
    /// Batches whose gradients are summed (each loss divided by the window) before one optimizer
    /// step; an epoch's last window may be shorter, as in HF Trainer.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub gradient_accumulation_steps: i64,
    /// Clip the global gradient norm to this before each step (default: no clipping).
    #[arg(long, allow_negative_numbers = true)]
    pub max_grad_norm: Option<f64>,
    /// Cross-entropy label smoothing (HF's label_smoothing_factor).
    #[arg(
        long,
        visible_alias = "label-smoothing-factor",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub label_smoothing: f64,
    /// Autocast for forward and loss (fp32 master weights); fp16 adds a loss scaler with
    /// torch.amp.GradScaler's rules. auto: bf16 where the device computes bf16 products in
    /// hardware and its measured bf16 GEMM is at least 1.3x its fp32 GEMM, else fp32; the run
    /// says which and why (fp32 under --reproduce-pytorch).
    #[arg(long, value_enum, ignore_case = true, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// HF's switch: the same as --precision bf16.
    #[arg(long)]
    pub bf16: Option<bool>,
    /// HF's switch: the same as --precision fp16.
    #[arg(long)]
    pub fp16: Option<bool>,
    /// TF32 tensor-core matmuls on CUDA.
    #[arg(long)]
    pub tf32: Option<bool>,
    /// Also evaluate on the validation rows every N optimizer steps.
    #[arg(long, allow_negative_numbers = true)]
    pub eval_steps: Option<i64>,
    /// The metric that picks the best model: accuracy, f1_macro, f1_weighted, loss, ... (eval_
    /// prefix optional). The best model is the one saved.
    #[arg(long)]
    pub metric_for_best_model: Option<String>,
    /// Default: true unless the metric is a loss.
    #[arg(long)]
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without improvement (HF's EarlyStoppingCallback); the
    /// best model is saved.
    #[arg(long, allow_negative_numbers = true)]
    pub early_stopping_patience: Option<i64>,
    /// Save the best model seen at an evaluation rather than the last one.
    #[arg(long)]
    pub load_best_model_at_end: Option<bool>,
}

impl RecipeFlags {
    /// The recipe flags, converted (values are range-checked in `Recipe::validate`).
    pub fn recipe(&self) -> Result<Recipe> {
        let (optim, fused) = self.optimizer()?;
        let precision = self.precision()?;
        let precision_auto = self.precision == PrecisionChoice::Auto && precision == Precision::Fp32;
        Ok(Recipe {
            optim,
            weight_decay: self.weight_decay,
            adam_beta1: self.adam_beta1,
            adam_beta2: self.adam_beta2,
            adam_epsilon: self.adam_epsilon,
            fused,
            lr_scheduler_type: self.lr_scheduler_type,
            warmup_steps: opt_count("--warmup-steps", self.warmup_steps, 0)?,
            warmup_ratio: self.warmup_ratio,
            gradient_accumulation_steps: count(
                "--gradient-accumulation-steps",
                self.gradient_accumulation_steps,
                1,
            )?,
            max_grad_norm: self.max_grad_norm,
            label_smoothing: self.label_smoothing,
            precision,
            precision_auto,
            tf32: self.tf32.unwrap_or(false),
            eval_steps: opt_count("--eval-steps", self.eval_steps, 1)?,
            metric_for_best_model: self.metric_for_best_model.clone(),
            greater_is_better: self.greater_is_better,
            early_stopping_patience: opt_count("--early-stopping-patience", self.early_stopping_patience, 1)?,
            load_best_model_at_end: self.load_best_model_at_end.unwrap_or(false),
        })
    }

    /// The optimizer and whether its kernel is fused.
    fn optimizer(&self) -> Result<(AdamKind, bool)> {
        match self.optim {
            Optim::Adam => Ok((AdamKind::Adam, !self.no_fused)),
            Optim::AdamW => Ok((AdamKind::AdamW, !self.no_fused)),
            Optim::AdamWTorchFused if !self.no_fused => Ok((AdamKind::AdamW, true)),
            Optim::AdamWTorchFused => Err(Error::usage(
                "--optim",
                "'adamw_torch_fused' is not adam, adamw, adamw_torch or adamw_torch_fused (without --no-fused)",
            )),
        }
    }

    /// `--precision`, or HF's `--bf16` / `--fp16` switches (which must not name another).
    /// Under `--precision auto`, Fp32 until the trainer chooses (HF's switches settle it first).
    fn precision(&self) -> Result<Precision> {
        let mut precision = self.precision.fixed().unwrap_or(Precision::Fp32);
        for (flag, on, p) in [("--bf16", self.bf16, Precision::Bf16), ("--fp16", self.fp16, Precision::Fp16)]
        {
            if on == Some(true) {
                if precision != Precision::Fp32 && precision != p {
                    return Err(Error::usage(flag, format!("conflicts with --precision {precision}")));
                }
                if self.precision == PrecisionChoice::Auto {
                    return Err(Error::usage(flag, "conflicts with --precision auto"));
                }
                precision = p;
            }
        }
        Ok(precision)
    }
}
