//! Training: validated settings, the [`Trainer`], and how a run reports.
pub mod args;
pub mod interrupt;
pub mod report;
pub mod trainer;

pub use args::TrainArgs;
pub use trainer::{train, Evaluation, TrainSummary, Trainer};
