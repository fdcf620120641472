//! Training: validated settings, the [`Trainer`], the optimizer, precision and loss scaling,
//! learning-rate schedules, evaluation, and how a run reports.
pub mod args;
pub mod auto_precision;
mod best;
pub mod checkpoint;
pub mod control;
pub mod evaluation;
pub mod fault;
pub mod hf_metric;
pub mod identity;
pub mod interrupt;
pub mod log_history;
pub mod mfu;
pub mod optim;
pub mod output_folder;
pub mod pending;
pub mod precision;
pub mod profile;
pub mod report;
pub mod row_grads;
pub mod schedule;
mod setup;
pub mod startup;
mod step;
pub mod trainer;
mod trainer_state;
pub mod update;

pub use args::TrainArgs;
pub use trainer::{Evaluation, TrainSummary, Trainer};
