//! The one owner of libtorch's default CPU generator, the random stream PyTorch's run draws from.
//!
//! A run is PyTorch's run only if bertfit makes the same draws in the same order: the seed, the new
//! classifier's init, then per epoch each DataLoader pass (its base seed, then its sampler's draws)
//! and the dropout masks of the training forwards, and a base seed for every evaluation pass, even
//! one over no rows (iterating an empty DataLoader still draws it). Every such draw goes through a
//! `RandomStream` method, so the order is visible in the code that calls them, and a pass over data
//! can only be opened by drawing for it.
//!
//! Draws made inside libtorch (the classifier's `normal_`, dropout masks) cannot be routed through
//! Rust; [`RandomStream::init_weights`] and [`RandomStream::dropout`] mark where they happen instead.
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::torch_ext;

/// libtorch's default generator, seeded once per run (`torch.manual_seed`).
#[derive(Debug)]
pub struct RandomStream {
    seed: u64,
}

impl RandomStream {
    /// `torch.manual_seed(seed)`.
    pub fn manual_seed(seed: u64) -> Self {
        tch::manual_seed(seed as i64);
        RandomStream { seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// One draw of `torch.empty((), dtype=torch.int64).random_()`.
    pub fn draw_int64(&mut self) -> i64 {
        default_generator_int64()
    }

    /// One `iter(DataLoader)`: the iterator's base seed (drawn even when nothing is shuffled and
    /// when there are no examples), then `order`, the sampler's draws (`data::sampler` calls it as
    /// `rng.dataloader_pass(|rng| sampler.indices(n, epoch, rng))`; the sampler depends on this
    /// stream, not the other way round).
    pub fn dataloader_pass<T>(&mut self, order: impl FnOnce(&mut Self) -> T) -> T {
        let _base_seed = self.draw_int64();
        order(self)
    }

    /// One streamed pass (an `IterableDataset` DataLoader): its base seed, then, when shuffling,
    /// the seed of the pass's shuffle buffer.
    pub fn stream_pass(&mut self, shuffle: bool) -> Option<u64> {
        let _base_seed = self.draw_int64();
        shuffle.then(|| self.draw_int64() as u64)
    }

    /// `torch.randperm(n)` with no generator of its own: libtorch's, on this stream.
    pub fn randperm(&mut self, n: usize) -> Vec<usize> {
        let perm = Tensor::randperm(n as i64, (Kind::Int64, Device::Cpu));
        Vec::<i64>::try_from(&perm).unwrap_or_default().into_iter().map(|i| i as usize).collect()
    }

    /// The generator's state (`torch.get_rng_state()`), for a checkpoint.
    pub fn state(&self) -> Result<Tensor> {
        torch_ext::cpu_rng_state()
    }

    /// Puts the generator back where `state` was taken: the draws that follow are the same.
    pub fn set_state(&mut self, state: &Tensor) -> Result<()> {
        torch_ext::set_cpu_rng_state(state)
    }

    /// Runs `f`, which draws initial weights (the new classifier's `normal_`) from this stream.
    pub fn init_weights<T>(&mut self, f: impl FnOnce() -> T) -> T {
        f()
    }

    /// Runs `f`, a training-mode forward whose dropout masks are drawn from this stream.
    pub fn dropout<T>(&mut self, f: impl FnOnce() -> T) -> T {
        f()
    }
}

/// One draw of the default CPU generator, `torch.empty((), dtype=torch.int64).random_()`: what
/// [`RandomStream::draw_int64`] draws, and what the Philox dropout masks are seeded with from inside
/// the model's forward, where no stream is at hand (`model::dropout`).
pub fn default_generator_int64() -> i64 {
    let mut t = Tensor::empty([], (Kind::Int64, Device::Cpu));
    let _ = t.random_();
    t.int64_value(&[])
}

/// Held by the lib tests that seed or draw from libtorch's one default generator: tests run in
/// parallel threads, and a draw of one between another's seed and its draws changes what that one
/// sees.
#[cfg(test)]
pub(crate) fn generator_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_state_repeats_the_draws_and_the_dropout_masks() {
        let _generator = generator_lock();
        let mut rng = RandomStream::manual_seed(17);
        let _ = rng.draw_int64();
        let saved = rng.state().unwrap();
        let x = Tensor::ones([4, 64], (Kind::Float, Device::Cpu));
        let (a, mask_a) = (rng.draw_int64(), x.dropout(0.5, true));
        let _ = rng.draw_int64(); // move on, then go back
        rng.set_state(&saved).unwrap();
        let (b, mask_b) = (rng.draw_int64(), x.dropout(0.5, true));
        assert_eq!(a, b);
        assert!(mask_a.equal(&mask_b));
    }
}
