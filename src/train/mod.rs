//! Training: validated settings, the [`Trainer`], learning-rate schedules, and how a run reports.
pub mod args;
pub mod evaluation;
pub mod interrupt;
pub mod report;
pub mod schedule;
pub mod trainer;

pub use args::TrainArgs;
pub use trainer::{train, Evaluation, TrainSummary, Trainer};
