//! Data-parallel training over PyTorch's own c10d (Gloo on CPU, NCCL on GPU).
//!
//! - `env`: rank, world size, local rank and rendezvous address from torchrun's or SLURM's variables.
//! - `group`: the process group (TCPStore rendezvous, bucketed all-reduce and broadcast, barrier),
//!   every collective bounded by one timeout, failures naming the lost rank.
//! - `sampler`: `DistributedSampler`'s exact assignment of examples to ranks.
//! - `ddp`: what the Trainer calls (parameter broadcast, gradient averaging, a step's loss, stop
//!   flag and rows summed over the ranks, all-gather for checkpoints).
//! - `selftest`: what `bertfit dist-selftest` runs (a check of a launch setup, and the tests' probe).
pub mod ddp;
pub mod env;
pub mod group;
pub mod sampler;
pub mod selftest;

pub use ddp::Ddp;
pub use env::DistEnv;
pub use group::{GroupOptions, ProcessGroup};
pub use sampler::DistributedSampler;
