//! Command-line flags (clap derive; the `///` lines are the --help text), converted once into
//! validated settings: one file per subcommand, the flag groups they share in `flags.rs`, HF's
//! flag spellings in `hf.rs` and `--config` files in `config_file.rs`. The checks on the settings
//! as a whole are `TrainArgs::validate` (src/train/args/validate.rs).
use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::Error;

pub mod config_file;
pub mod data;
pub mod flags;
pub mod hf;
pub mod plot;
pub mod predict;
pub mod recipe;
pub mod selftest;
pub mod train;

pub use data::{CheckFlags, DataFlags};
pub use plot::PlotFlags;
pub use predict::{EvaluateFlags, InferenceFlags, PredictFlags};
pub use selftest::DistSelftestFlags;
pub use train::TrainFlags;

#[derive(Debug, Parser)]
#[command(
    name = "bertfit",
    version,
    about = "Fine-tune Hugging Face BERT checkpoints for text classification, computing what PyTorch computes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fine-tune a BertForSequenceClassification and save it as an HF model folder.
    Train(TrainFlags),
    /// Read a dataset as training would (streaming) and report rows, labels, token lengths and
    /// truncation, or the first problem training would stop on.
    CheckData(CheckFlags),
    /// Predict every row of a data file with a fine-tuned model: the rows are written out with
    /// all their columns plus the model's label and class probabilities.
    Predict(PredictFlags),
    /// Loss and metrics of a fine-tuned model on labelled rows (HF's eval_* metrics), for its
    /// problem_type: single-label, multi-label or regression.
    Evaluate(EvaluateFlags),
    /// Draw a training run's metrics.jsonl (loss, learning rate, validation) as a PNG.
    Plot(PlotFlags),
    /// Join the process group from torchrun's or SLURM's variables and check every collective.
    #[command(hide = true)]
    DistSelftest(DistSelftestFlags),
}

/// The command-line interface clap parses: the derived one, with HF's optional-value booleans
/// (`flags::hf_booleans`), built (each argument's action and value count known, for config_file).
pub fn command() -> clap::Command {
    let mut command = flags::hf_booleans(Cli::command());
    command.build();
    command
}

/// Parses the command line, HF's flag names and spellings included (see `hf.rs`), with the
/// settings of a `--config` file (see `config_file.rs`).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> std::result::Result<Cli, ParseFailure> {
    let mut known = BTreeSet::new();
    let mut command = command();
    for sub in std::iter::once(&command).chain(command.get_subcommands()) {
        for arg in sub.get_arguments() {
            known.extend(arg.get_long().map(str::to_string));
            known.extend(arg.get_all_aliases().into_iter().flatten().map(str::to_string));
        }
    }
    let args = hf::normalize(args, &known).map_err(ParseFailure::Refused)?;
    let expanded = config_file::expand(args, &command).map_err(ParseFailure::Refused)?;
    let blame = |e: clap::Error| match expanded.blame(&e) {
        Some(named) => ParseFailure::Refused(named),
        None => ParseFailure::Clap(e),
    };
    let matches = command.try_get_matches_from_mut(&expanded.args).map_err(blame)?;
    Cli::from_arg_matches(&matches).map_err(|e| blame(e.format(&mut command)))
}

/// Why the command line was not accepted.
pub enum ParseFailure {
    /// An HF flag bertfit does not implement.
    Refused(Error),
    /// clap's own error (or --help / --version, which clap prints and exits 0 for).
    Clap(clap::Error),
}
