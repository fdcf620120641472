//! Training: validated settings, the [`Trainer`], the optimizer, precision and loss scaling,
//! learning-rate schedules, evaluation, and how a run reports.
pub mod args;
pub mod checkpoint;
pub mod evaluation;
pub mod identity;
pub mod interrupt;
pub mod optim;
pub mod output_folder;
pub mod pending;
pub mod precision;
pub mod report;
pub mod schedule;
pub mod startup;
pub mod trainer;
pub mod update;
pub mod verify;

pub use args::TrainArgs;
pub use trainer::{train, Evaluation, TrainSummary, Trainer};
