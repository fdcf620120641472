//! Command-line flags (clap derive; the `///` lines are the --help text), converted once into
//! validated settings: one file per subcommand, the flag groups they share in `flags.rs`, HF's
//! flag spellings in `hf.rs` and `--config` files in `config_file.rs`. The checks on the settings
//! as a whole are `TrainArgs::validate` (src/train/args/validate.rs).
use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::Error;

pub mod bench_peak;
pub mod config_file;
pub mod data;
pub mod flags;
pub mod hf;
pub mod plot;
pub mod predict;
pub mod recipe;
pub mod run_classification;
pub mod selftest;
pub mod train;

pub use bench_peak::BenchPeakFlags;
pub use data::{CheckFlags, DataFlags};
pub use plot::PlotFlags;
pub use predict::{EvaluateFlags, InferenceFlags, PredictFlags};
pub use run_classification::RunClassificationFlags;
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
    /// What replaces `python run_classification.py ARGS`: HF's flags, defaults and files
    /// (`bertfit run-classification --help` lists every flag).
    #[command(disable_help_flag = true)]
    RunClassification(RunClassificationFlags),
    /// Draw a training run's metrics.jsonl (loss, learning rate, validation) as a PNG.
    Plot(PlotFlags),
    /// Measure this machine's GEMM peak per dtype, which training runs report their MFU
    /// against, and replace the cached figures.
    BenchPeak(BenchPeakFlags),
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
    let args: Vec<OsString> = args.into_iter().collect();
    // run-classification's arguments are HfArgumentParser's, read by its own parser: neither
    // hf::normalize nor --config expansion (nor clap) may touch them.
    if args.get(1).is_some_and(|a| a == "run-classification") {
        let flags = RunClassificationFlags { args: args[2..].to_vec() };
        return Ok(Cli { command: Command::RunClassification(flags) });
    }
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

#[cfg(test)]
mod tests {
    use super::flags::DeviceChoice;
    use super::recipe::Optim;
    use super::*;
    use crate::torch_ext::c10d::BackendKind;
    use crate::train::precision::PrecisionChoice;
    use crate::train::schedule::SchedulerType;

    fn train(extra: &[&str]) -> TrainFlags {
        let mut args = vec!["bertfit", "train", "--model", "m", "--data", "d.csv", "--output-dir", "o"];
        args.extend(extra);
        match parse(args.into_iter().map(OsString::from)) {
            Ok(Cli { command: Command::Train(flags) }) => flags,
            _ => panic!("{extra:?} did not parse"),
        }
    }

    #[test]
    fn hf_booleans_take_an_optional_value() {
        let f = train(&["--do-train", "--do-eval", "no", "--bf16=1", "--tf32", "false"]);
        assert_eq!((f.do_train, f.do_eval, f.do_predict), (Some(true), Some(false), None));
        assert_eq!((f.recipe.bf16, f.recipe.tf32, f.recipe.fp16), (Some(true), Some(false), None));
        // Every Option<bool> flag of every subcommand reads so.
        let cli = command();
        let optional = |a: &&clap::Arg| a.get_value_parser().type_id() == std::any::TypeId::of::<bool>();
        let bools: Vec<_> = cli
            .get_subcommands()
            .flat_map(|s| s.get_arguments())
            .filter(optional)
            .filter(|a| matches!(a.get_action(), clap::ArgAction::Set))
            .collect();
        assert_eq!(bools.len(), 13);
        assert!(bools.iter().all(|a| a.get_num_args() == Some((0..=1).into())));
    }

    #[test]
    fn choices_are_typed_with_hf_spellings() {
        let f = train(&[
            "--optim",
            "adamw_torch",
            "--precision",
            "BF16",
            "--lr-scheduler-type",
            "constant_with_warmup",
            "--device",
            "cuda:1",
            "--ddp_backend",
            "gloo",
        ]);
        assert_eq!(f.recipe.optim, Optim::AdamW);
        assert_eq!(f.recipe.precision, PrecisionChoice::Bf16);
        assert_eq!(train(&["--precision", "auto"]).recipe.precision, PrecisionChoice::Auto);
        assert_eq!(f.recipe.lr_scheduler_type, SchedulerType::ConstantWithWarmup);
        assert_eq!(f.device.device, DeviceChoice::Cuda(1));
        assert_eq!(f.dist.ddp_backend, Some(BackendKind::Gloo));
        assert_eq!(train(&["--optim", "adamw-torch-fused"]).recipe.optim, Optim::AdamWTorchFused);
        assert_eq!(train(&["--device", "cuda"]).device.device, DeviceChoice::Cuda(0));
        assert_eq!(train(&[]).device.device, DeviceChoice::Auto);
    }
}
