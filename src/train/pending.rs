//! Step losses that are still on the device.
//!
//! Reading a CUDA tensor's value waits for every kernel queued before it, so reading the loss
//! after each step would stop the host from queueing the next step while the GPU works. The
//! trainer keeps each step's loss as a device tensor (f64, so the sums are the same bits as on
//! the host) with its record, and reads them back together every [`READ_EVERY_CUDA`] steps or
//! [`MAX_WAIT`] (and before anything that needs them: an evaluation, a checkpoint, the end of the
//! epoch). On the CPU a read costs nothing, so every step is read at once and a NaN loss stops
//! the run at the step it happened.
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::report::StepRecord;

/// Steps between reads on CUDA.
pub const READ_EVERY_CUDA: usize = 32;
/// Longest time a loss stays unread, so progress lines keep coming on slow steps.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// One step waiting for its loss: the 0-dim f64 loss tensor, the record (its `loss` set when
/// read) and the epoch fraction for trainer_state.json's log_history.
struct Pending {
    loss: Tensor,
    /// The step's gradient norm (HF's logged `grad_norm`), read with the loss.
    grad_norm: Tensor,
    record: StepRecord,
    epoch_fraction: f64,
}

pub struct PendingSteps {
    every: usize,
    max_wait: Duration,
    last_read: Instant,
    steps: Vec<Pending>,
}

impl PendingSteps {
    /// Every step on the CPU, [`READ_EVERY_CUDA`] on CUDA.
    pub fn for_device(device: Device) -> PendingSteps {
        let every = if device.is_cuda() { READ_EVERY_CUDA } else { 1 };
        PendingSteps::new(every, MAX_WAIT)
    }

    pub fn new(every: usize, max_wait: Duration) -> PendingSteps {
        PendingSteps { every: every.max(1), max_wait, last_read: Instant::now(), steps: Vec::new() }
    }

    pub fn push(&mut self, loss: Tensor, grad_norm: Tensor, record: StepRecord, epoch_fraction: f64) {
        self.steps.push(Pending { loss, grad_norm, record, epoch_fraction });
    }

    /// Whether the losses should be read now (enough steps, or waited long enough).
    pub fn due(&self) -> bool {
        self.steps.len() >= self.every
            || (!self.steps.is_empty() && self.last_read.elapsed() >= self.max_wait)
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Every pending step's record with its loss and epoch fraction, in step order, read in one
    /// transfer (a value that cannot be read comes back NaN, which stops an fp32 run).
    pub fn read(&mut self) -> Vec<(StepRecord, f64)> {
        self.last_read = Instant::now();
        if self.steps.is_empty() {
            return Vec::new();
        }
        // Losses then norms, in one transfer (the norms' devices are the losses').
        let losses: Vec<Tensor> = self
            .steps
            .iter()
            .map(|p| p.loss.to_kind(Kind::Double).reshape([1]))
            .chain(
                self.steps
                    .iter()
                    .map(|p| p.grad_norm.to_device(p.loss.device()).to_kind(Kind::Double).reshape([1])),
            )
            .collect();
        let values: Vec<f64> =
            Vec::<f64>::try_from(Tensor::cat(&losses, 0).to_device(Device::Cpu)).unwrap_or_default();
        let n = self.steps.len();
        self.steps
            .drain(..)
            .enumerate()
            .map(|(i, mut p)| {
                p.record.loss = values.get(i).copied().unwrap_or(f64::NAN);
                p.record.grad_norm = values.get(n + i).copied().unwrap_or(f64::NAN);
                (p.record, p.epoch_fraction)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize) -> StepRecord {
        StepRecord {
            kind: "step",
            epoch: 1,
            step,
            loss: 0.0,
            lr: 1e-5,
            skipped: None,
            scale: None,
            rows: vec![step],
            rank_rows: None,
            flops: None,
            grad_norm: 0.0,
        }
    }

    #[test]
    fn reads_in_groups_in_step_order_with_the_exact_values() {
        let mut p = PendingSteps::new(3, Duration::from_secs(3600));
        let values = [std::f64::consts::LN_2, 1.0 / 3.0, f64::INFINITY];
        for (i, v) in values.iter().enumerate() {
            assert!(!p.due());
            p.push(Tensor::from(*v), Tensor::from(2.0 * v), record(i + 1), i as f64 / 3.0);
        }
        assert!(p.due());
        let read = p.read();
        assert!(p.is_empty() && !p.due());
        let got: Vec<(usize, f64)> = read.iter().map(|(r, _)| (r.step, r.loss)).collect();
        assert_eq!(got, vec![(1, values[0]), (2, values[1]), (3, f64::INFINITY)]);
        assert_eq!(read[1].1, 1.0 / 3.0);
        assert_eq!(read[1].0.grad_norm, 2.0 / 3.0);
    }

    #[test]
    fn every_step_on_the_cpu_and_after_the_longest_wait() {
        let mut cpu = PendingSteps::for_device(Device::Cpu);
        cpu.push(Tensor::from(1.0f64), Tensor::from(1.0f32), record(1), 0.0);
        assert!(cpu.due());
        let mut slow = PendingSteps::new(100, Duration::from_millis(10));
        slow.push(Tensor::from(1.0f64), Tensor::from(1.0f32), record(1), 0.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(slow.due());
    }
}
