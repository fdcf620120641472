//! One optimizer update, as HF Trainer makes it after each accumulation window: unscale (fp16),
//! clip the global gradient norm, step (skipped by the loss scaler after an inf), update the scale,
//! advance the learning-rate schedule (not after a skipped step), free the gradients.
use tch::Tensor;

use super::optim::Optimizer;
use super::precision::LossScaler;
use super::schedule::Schedule;
use crate::error::Result;

/// What one update did.
#[derive(Debug)]
pub struct UpdateOutcome {
    /// The global gradient norm before clipping, a device scalar (HF's logged `grad_norm`: it
    /// computes it with or without clipping).
    pub grad_norm: Tensor,
    /// The learning rate the step used.
    pub lr: f64,
    /// fp16: the loss scaler found an inf or NaN gradient and skipped the step.
    pub skipped: bool,
    /// fp16: the loss scale after this update.
    pub scale: Option<f64>,
}

pub struct Updater {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// fp16 only.
    pub scaler: Option<LossScaler>,
    pub max_grad_norm: Option<f64>,
    /// Updates taken (skipped ones not counted): the schedule's position.
    pub scheduled_steps: usize,
}

impl Updater {
    /// The model's trainable tensors in state-dict order (the optimizer's parameters).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.optimizer.params().into_iter().map(|(_, t)| t).collect()
    }

    /// The loss to call backward on: scaled by the loss scaler under fp16, as it is otherwise.
    pub fn backward_loss(&self, loss: &Tensor) -> Result<Tensor> {
        match &self.scaler {
            Some(s) => s.scale(loss),
            None => Ok(loss.shallow_clone()),
        }
    }

    /// Applies the gradients accumulated since the last update.
    pub fn apply(&mut self) -> Result<UpdateOutcome> {
        let lr = self.schedule.lr_at(self.scheduled_steps);
        self.optimizer.set_lr(lr);
        let grad_norm;
        let skipped = match self.scaler.as_mut() {
            Some(scaler) => {
                if let Some(max_norm) = self.max_grad_norm {
                    // Clipping needs true gradients: unscale first (GradScaler.unscale_).
                    let _found_inf = scaler.unscale_(&self.optimizer.grads())?;
                    grad_norm = Some(self.optimizer.clip_grad_norm(max_norm)?);
                } else {
                    // The scaled gradients' norm over the scale: the step still unscales inside
                    // the optimizer, as it did before norms were logged (HF unscales first: the
                    // logged norm may differ from its in the last bits, the training does not).
                    let scaled = self.optimizer.grad_norm()?;
                    grad_norm = Some(scaled.f_div(&scaler.scale_tensor().f_to_device(scaled.device())?)?);
                }
                scaler.step(&mut self.optimizer)?;
                // HF's optimizer_was_run: a skipped step backs the scale off.
                let found_inf = scaler.found_inf().map(|t| t.double_value(&[]) != 0.0).unwrap_or(false);
                scaler.update()?;
                found_inf
            }
            None => {
                grad_norm = Some(match self.max_grad_norm {
                    Some(max_norm) => self.optimizer.clip_grad_norm(max_norm)?,
                    None => self.optimizer.grad_norm()?,
                });
                self.optimizer.step()?;
                false
            }
        };
        if !skipped {
            self.scheduled_steps += 1;
        }
        self.optimizer.zero_grad()?;
        let scale = self.scaler.as_ref().map(|s| s.scale_tensor().double_value(&[]));
        let grad_norm = grad_norm.unwrap_or_else(|| Tensor::from(f64::NAN));
        Ok(UpdateOutcome { grad_norm, lr, skipped, scale })
    }
}
