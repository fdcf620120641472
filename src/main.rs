//! Thin entry point: parse flags, run, print the error chain and exit non-zero on failure.
use std::process::ExitCode;

use clap::Parser;

use bertfit::cli::{Cli, Command};

fn run(cli: Cli) -> bertfit::Result<()> {
    match cli.command {
        Command::Train(flags) => {
            let args = flags.into_args()?;
            bertfit::train::train(&args)?;
            eprintln!("saved the fine-tuned model to {}", args.output_dir.display());
            Ok(())
        }
        Command::CheckData(flags) => {
            let files = bertfit::weights::resolve(&flags.model)?;
            let tokenizer = bertfit::data::tokenize::BertTokenizer::from_dir(&files.dir)?;
            let report = bertfit::data::check::check(
                &flags.data.source()?,
                &flags.data.columns(),
                &tokenizer,
                flags.num_labels,
            )?;
            print!("{}", bertfit::data::check::render(&report, flags.max_length));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!("\n  caused by: {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
