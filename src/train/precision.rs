//! Mixed precision: which dtype the forward pass autocasts to, and fp16's dynamic loss scaling with
//! `torch.amp.GradScaler`'s rules and state.
use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use super::optim::Optimizer;
use crate::error::{Error, Result};
use crate::torch_ext::{self, AutocastGuard};

/// The precision of the forward and backward passes. Parameters and optimizer state stay float32.
/// Also `--precision`'s choices (clap's names: fp32, bf16, fp16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// float32 throughout (the seed script's).
    #[default]
    Fp32,
    /// bfloat16 autocast: fp32's range, no loss scaling needed.
    Bf16,
    /// float16 autocast with a `LossScaler` (fp16 gradients underflow without one).
    Fp16,
}

/// `--precision`'s choices: a precision, or `auto` (the trainer decides, see
/// [`super::auto_precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PrecisionChoice {
    #[default]
    Fp32,
    Bf16,
    Fp16,
    /// bf16 where the device is measured to compute it fast, else fp32.
    Auto,
}

impl PrecisionChoice {
    /// The precision named, `None` for auto.
    pub fn fixed(self) -> Option<Precision> {
        match self {
            PrecisionChoice::Fp32 => Some(Precision::Fp32),
            PrecisionChoice::Bf16 => Some(Precision::Bf16),
            PrecisionChoice::Fp16 => Some(Precision::Fp16),
            PrecisionChoice::Auto => None,
        }
    }
}

impl Precision {
    /// The autocast dtype, `None` for fp32.
    pub fn autocast_kind(self) -> Option<Kind> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
            Precision::Fp16 => Some(Kind::Half),
        }
    }

    /// Whether the loss must be scaled (fp16 only, as with HF Trainer's `fp16=True`).
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::Fp16
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = Error;
    /// Case-insensitive, as `--precision` reads it.
    fn from_str(s: &str) -> Result<Self> {
        <Precision as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| Error::usage("--precision", format!("'{s}' is not one of fp32, bf16, fp16")))
    }
}

/// Autocast for `precision` on `device` until the guard drops; `None` (nothing to do) for fp32.
pub fn autocast(device: Device, precision: Precision) -> Result<Option<AutocastGuard>> {
    precision.autocast_kind().map(|kind| AutocastGuard::new(device, kind)).transpose()
}

/// `torch.amp.GradScaler`'s constructor arguments (its defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalerSettings {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    /// Consecutive unskipped steps before the scale grows.
    pub growth_interval: i64,
}

impl Default for ScalerSettings {
    fn default() -> Self {
        Self { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

/// GradScaler's per-iteration stage (its `OptState`): one unscale and one step per update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ready,
    Unscaled,
    Stepped,
}

/// Dynamic loss scaling for one optimizer, as `torch.amp.GradScaler` with one device: the scale
/// (float32) and growth tracker (int32) live on the device and are only read on the host where
/// GradScaler itself reads them (stepping an unfused optimizer).
pub struct LossScaler {
    settings: ScalerSettings,
    scale: Tensor,
    growth_tracker: Tensor,
    found_inf: Option<Tensor>,
    stage: Stage,
}

const STATE_NAMES: [&str; 2] = ["scale", "growth_tracker"];

impl LossScaler {
    pub fn new(settings: ScalerSettings, device: Device) -> Result<Self> {
        // Written so that NaN fails.
        let valid =
            settings.growth_factor > 1.0 && settings.backoff_factor < 1.0 && settings.growth_interval >= 1;
        if !valid {
            return Err(Error::usage(
                "loss scaler",
                format!("growth factor must be > 1, backoff factor < 1, growth interval >= 1: {settings:?}"),
            ));
        }
        Ok(Self {
            settings,
            scale: Tensor::f_full([0i64; 0], settings.init_scale, (Kind::Float, device))?,
            growth_tracker: Tensor::f_zeros([0i64; 0], (Kind::Int, device))?,
            found_inf: None,
            stage: Stage::Ready,
        })
    }

    pub fn settings(&self) -> &ScalerSettings {
        &self.settings
    }

    /// The current scale (a device scalar; reading it is a host sync).
    pub fn scale_tensor(&self) -> &Tensor {
        &self.scale
    }

    /// The inf flag of this iteration's unscale (float32 device scalar), once there was one.
    pub fn found_inf(&self) -> Option<&Tensor> {
        self.found_inf.as_ref()
    }

    /// `scaler.scale(loss)`: the loss times the scale, to call backward on.
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor> {
        Ok(loss.f_mul(&self.scale.f_to_device(loss.device())?)?)
    }

    /// `scaler.unscale_(optimizer)` on these gradients: divides them by the scale and returns the
    /// found-inf flag (1.0 if any gradient holds an inf/NaN). At most once per iteration, before `step`;
    /// call it to clip unscaled gradients.
    pub fn unscale_(&mut self, grads: &[Tensor]) -> Result<Tensor> {
        match self.stage {
            Stage::Unscaled => {
                return Err(Error::Runtime(
                    "unscale_() has already been called since the last update()".into(),
                ))
            }
            Stage::Stepped => return Err(Error::Runtime("unscale_() is being called after step()".into())),
            Stage::Ready => {}
        }
        // GradScaler: self._scale.double().reciprocal().float()
        let inv_scale = self.scale.f_to_kind(Kind::Double)?.f_reciprocal()?.f_to_kind(Kind::Float)?;
        let found_inf = self.check_and_unscale(grads, &inv_scale, false)?;
        self.stage = Stage::Unscaled;
        Ok(found_inf)
    }

    /// `_unscale_grads_`: one `_amp_foreach_non_finite_check_and_unscale_` per dtype into a fresh flag.
    fn check_and_unscale(
        &mut self,
        grads: &[Tensor],
        inv_scale: &Tensor,
        allow_fp16: bool,
    ) -> Result<Tensor> {
        let device = self.scale.device();
        let found_inf = Tensor::f_zeros([0i64; 0], (Kind::Float, device))?;
        let mut by_kind: Vec<(Kind, Vec<Tensor>)> = Vec::new();
        for g in grads {
            if g.device() != device {
                return Err(Error::Runtime(format!(
                    "loss scaler: a gradient is on {:?}, the scale on {device:?}",
                    g.device()
                )));
            }
            if !allow_fp16 && g.kind() == Kind::Half {
                return Err(Error::Runtime("Attempting to unscale FP16 gradients.".into()));
            }
            match by_kind.iter_mut().find(|(k, _)| *k == g.kind()) {
                Some((_, list)) => list.push(g.shallow_clone()),
                None => by_kind.push((g.kind(), vec![g.shallow_clone()])),
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (_, list) in &by_kind {
                torch_ext::amp_foreach_non_finite_check_and_unscale_(list, &found_inf, inv_scale)?;
            }
            Ok(())
        })?;
        self.found_inf = Some(found_inf.shallow_clone());
        Ok(found_inf)
    }

    /// `scaler.step(optimizer)`. A fused optimizer gets the scale and the inf flag and skips on its own
    /// (no host read); an unfused one is unscaled here and stepped only if no inf was found, which
    /// reads the flag on the host, as GradScaler does.
    pub fn step(&mut self, opt: &mut Optimizer) -> Result<()> {
        if self.stage == Stage::Stepped {
            return Err(Error::Runtime("step() has already been called since the last update()".into()));
        }
        if opt.supports_amp_scaling() {
            if self.stage == Stage::Ready {
                // _check_inf_per_device: unscale by 1.0 only to find infs; the kernel unscales.
                let one = Tensor::f_full([0i64; 0], 1.0, (Kind::Float, self.scale.device()))?;
                let _ = self.check_and_unscale(&opt.grads(), &one, true)?;
            }
            let Some(found_inf) = self.found_inf.as_ref().map(Tensor::shallow_clone) else {
                return Err(Error::Runtime("no inf checks were recorded for this optimizer".into()));
            };
            // Unscaled gradients carry no scale any more; otherwise the kernel divides by it.
            let grad_scale = (self.stage == Stage::Ready).then(|| self.scale.shallow_clone());
            opt.step_scaled(grad_scale.as_ref(), &found_inf)?;
        } else {
            if self.stage == Stage::Ready {
                let _ = self.unscale_(&opt.grads())?;
            }
            let Some(found_inf) = &self.found_inf else {
                return Err(Error::Runtime("no inf checks were recorded for this optimizer".into()));
            };
            if found_inf.f_double_value(&[])? == 0.0 {
                opt.step()?;
            }
        }
        self.stage = Stage::Stepped;
        Ok(())
    }

    /// `scaler.update()`: backs off after an inf, grows after `growth_interval` clean steps
    /// (`_amp_update_scale_`), and starts the next iteration.
    pub fn update(&mut self) -> Result<()> {
        let Some(found_inf) = self.found_inf.take() else {
            return Err(Error::Runtime("no inf checks were recorded prior to update()".into()));
        };
        let s = self.settings;
        // In place: `scale` is a handle on this scaler's scale tensor.
        let mut scale = self.scale.shallow_clone();
        let _ = scale.f_internal_amp_update_scale_(
            &self.growth_tracker,
            &found_inf.f_to_device(self.scale.device())?,
            s.growth_factor,
            s.backoff_factor,
            s.growth_interval,
        )?;
        self.stage = Stage::Ready;
        Ok(())
    }

    /// Copies of the state GradScaler's `state_dict` holds as numbers: `scale`, `growth_tracker`.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            (STATE_NAMES[0].to_string(), self.scale.f_detach_copy()?),
            (STATE_NAMES[1].to_string(), self.growth_tracker.f_detach_copy()?),
        ])
    }

    /// Restores `state()`'s tensors (both required, scalars) onto this scaler's device.
    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let get = |name: &str| {
            named
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .filter(|t| t.numel() == 1)
                .ok_or_else(|| Error::Runtime(format!("loss scaler state: no scalar '{name}'")))
        };
        let (scale, tracker) = (get(STATE_NAMES[0])?, get(STATE_NAMES[1])?);
        let device = self.scale.device();
        self.scale =
            scale.f_reshape([0i64; 0])?.f_to_device(device)?.f_to_kind(Kind::Float)?.f_detach_copy()?;
        self.growth_tracker =
            tracker.f_reshape([0i64; 0])?.f_to_device(device)?.f_to_kind(Kind::Int)?.f_detach_copy()?;
        self.found_inf = None;
        self.stage = Stage::Ready;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LossScaler, ScalerSettings};
    use tch::Device;

    #[test]
    fn scaler_settings_that_cannot_scale_are_refused_nan_included() {
        let base = ScalerSettings::default();
        for bad in [
            ScalerSettings { growth_factor: 1.0, ..base },
            ScalerSettings { growth_factor: f64::NAN, ..base },
            ScalerSettings { backoff_factor: f64::NAN, ..base },
            ScalerSettings { backoff_factor: 1.0, ..base },
            ScalerSettings { growth_interval: 0, ..base },
        ] {
            assert!(LossScaler::new(bad, Device::Cpu).is_err(), "{bad:?}");
        }
        assert!(LossScaler::new(base, Device::Cpu).is_ok());
    }
}
