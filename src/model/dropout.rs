//! Which generator draws a forward's dropout masks.
//!
//! The padded layout is the one `--reproduce-pytorch` computes, draw for draw with PyTorch: its
//! masks come from libtorch's own dropout (`bernoulli_` on the default generator). The packed
//! layout never reproduces PyTorch's draws (its tensors have other shapes), so on the CPU it draws
//! its masks with Philox in parallel instead (`csrc/dropout.cpp`): libtorch's CPU `bernoulli_` is
//! serial, and on long texts the attention weights' masks alone took a fifth of a step
//! (BENCHMARKS.md). Each mask's seed is one draw from the default generator, so a run is still a
//! function of `--seed`, and a checkpoint's generator state still resumes it exactly.
use tch::{Device, Tensor};

use crate::{random, torch_ext};

/// Where a forward's dropout masks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draws {
    /// libtorch's dropout: PyTorch's own draws.
    Torch,
    /// Philox masks on the CPU, seeded from the default generator; libtorch's on other devices.
    Philox,
}

impl Draws {
    /// `xs` with dropout `p` in training (`train`), else `xs` itself.
    pub fn dropout(self, xs: &Tensor, p: f64, train: bool) -> Tensor {
        if !train || p == 0.0 {
            return xs.shallow_clone();
        }
        if self == Draws::Philox && xs.device() == Device::Cpu {
            // The shim refuses only what this already rules out (a non-CPU tensor, p outside [0, 1],
            // which the config check refuses): libtorch's dropout is the same function, drawn otherwise.
            if let Ok(dropped) = torch_ext::philox_dropout(xs, p, random::default_generator_int64()) {
                return dropped;
            }
        }
        xs.dropout(p, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn philox_masks_keep_one_minus_p_scaled_and_the_backward_uses_the_same_mask() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(0);
        let x = Tensor::ones([1000, 1000], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = Draws::Philox.dropout(&x, 0.1, true);
        let kept = values(&y).iter().filter(|&&v| v != 0.0).count() as f64 / 1e6;
        // One million Bernoulli(0.9) draws: sd 3e-4.
        assert!((kept - 0.9).abs() < 2e-3, "kept {kept}");
        assert!(values(&y).iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        let g = Tensor::randn([1000, 1000], (Kind::Float, Device::Cpu));
        (&y * &g).sum(Kind::Float).backward();
        let want = &g * (y.ne(0.0).to_kind(Kind::Float) / 0.9);
        assert_eq!(values(&x.grad()), values(&want));
    }

    #[test]
    fn philox_lane_draws_are_the_engines_draws() {
        // Counts around the lanes' stride (64) and a whole block; keep thresholds of p = 0.1, 0.5,
        // 0 (all kept) and 1 (none); blocks past 2^32 (the counter's high word).
        for seed in [0u64, 3, 0x9E37_79B9_7F4A_7C15] {
            for block in [0u64, 1, 77, (1 << 32) + 5] {
                for count in [1i64, 63, 64, 65, 1000, 16384] {
                    for threshold in [3_865_470_566u32, 1 << 31, u32::MAX, 0] {
                        let at = crate::torch_ext::philox_selfcheck(seed, block, count, threshold);
                        assert_eq!(
                            at, None,
                            "seed {seed}, block {block}, count {count}, threshold {threshold}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn philox_masks_follow_the_seed_not_the_thread_count() {
        let _generator = crate::random::generator_lock();
        let x = Tensor::randn([300, 777], (Kind::Float, Device::Cpu));
        let threads = tch::get_num_threads();
        tch::manual_seed(5);
        let first = Draws::Philox.dropout(&x, 0.3, true);
        let second = Draws::Philox.dropout(&x, 0.3, true);
        tch::set_num_threads(1);
        tch::manual_seed(5);
        let one_thread = Draws::Philox.dropout(&x, 0.3, true);
        tch::set_num_threads(threads);
        assert_eq!(values(&first), values(&one_thread));
        assert_ne!(values(&first), values(&second), "each call draws a new seed");
    }

    #[test]
    fn bf16_rounds_once_and_eval_or_p_zero_is_the_identity() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(1);
        // 1 / 0.7 is inexact: each kept element rounds its fp32 product as libtorch's cast does.
        let x = Tensor::randn([256, 256], (Kind::BFloat16, Device::Cpu));
        let y = Draws::Philox.dropout(&x, 0.3, true);
        assert_eq!(y.kind(), Kind::BFloat16);
        let want = (x.to_kind(Kind::Float) * (1.0 / 0.7)).to_kind(Kind::BFloat16);
        let kept = y.ne(0.0);
        assert!(y.masked_select(&kept).equal(&want.masked_select(&kept)));
        let nan = Tensor::full([64], f64::NAN, (Kind::BFloat16, Device::Cpu));
        let dropped = Draws::Philox.dropout(&nan, 0.3, true);
        assert!(dropped.isnan().any().int64_value(&[]) == 1 && dropped.isinf().any().int64_value(&[]) == 0);
        assert!(Draws::Philox.dropout(&x, 0.5, false).equal(&x));
        assert!(Draws::Philox.dropout(&x, 0.0, true).equal(&x));
        let all = Draws::Philox.dropout(&x, 1.0, true);
        assert_eq!(all.count_nonzero(None::<i64>).int64_value(&[]), 0);
    }
}
