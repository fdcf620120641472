//! What a subcommand does around the library's parts, as a script does around HF's Trainer:
//! `train` runs the [`crate::train::Trainer`] and writes the run's results files and predictions
//! (run_classification.py's main), and the model card `README.md` (`model_card`).
pub mod bench_peak;
pub mod model_card;
pub mod predict_results;
pub mod run_classification;
pub mod train;
