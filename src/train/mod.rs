//! Training: validated settings, the loop, and what it records.
pub mod args;
pub mod interrupt;
pub mod metrics;
pub mod optim;
pub mod precision;
pub mod trainer;

pub use args::TrainArgs;
pub use trainer::{train, TrainSummary};
