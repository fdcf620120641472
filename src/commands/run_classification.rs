//! `bertfit run-classification`: run_classification.py's run, on the settings its command line
//! converts into (`crate::cli::run_classification`), through the same driver as `bertfit train`.
use crate::error::Result;
use crate::train::report::Reporter;
use crate::train::{TrainArgs, TrainSummary};

/// The settings once the model is known: max_seq_length capped at the tokenizer's
/// model_max_length, with the script's warning.
pub fn prepare(mut args: TrainArgs) -> Result<TrainArgs> {
    let dir = crate::weights::resolve::resolve_dir(&args.model)?;
    let tokenizer = crate::data::tokenize::Tokenizer::from_dir(&dir)?;
    if let Some(limit) = tokenizer.model_max_length().filter(|&m| args.max_length > m) {
        eprintln!(
            "warning: The max_seq_length passed ({}) is larger than the maximum length for the model ({limit}). Using max_seq_length={limit}.",
            args.max_length
        );
        args.max_length = limit;
    }
    Ok(args)
}

/// Trains, evaluates and predicts as the script does (`commands::train::train`).
pub fn run(args: &TrainArgs, reporter: &mut dyn Reporter) -> Result<TrainSummary> {
    super::train::train(args, reporter)
}
