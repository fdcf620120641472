//! `bertfit run-classification ARGS`: transformers' run_classification.py command line (its
//! HfArgumentParser over ModelArguments, DataTrainingArguments and TrainingArguments), read with
//! argparse's rules and HF's defaults, and converted into the [`TrainArgs`] that run would make.
//!
//! - `table`: every flag, its kind, HF's default and what bertfit does with it;
//! - `parser`, `json_file`, `value`: the command line (or JSON args file) into values;
//! - `checks`: NoEffect notes and Refused flags; `data`, `convert`: values into settings;
//! - `help`: `--help` and the README's table;
//! - `names`: errors said with HF's flag names (the checks shared with `bertfit train` use its).
use std::ffi::OsString;

use crate::error::{Error, Result};
use crate::train::TrainArgs;

pub mod checks;
pub mod convert;
pub mod data;
pub mod help;
pub mod json_file;
pub mod names;
pub mod parser;
pub mod table;
pub mod value;

/// The subcommand's arguments, untouched by clap (HfArgumentParser reads them, not clap).
#[derive(Debug, clap::Args)]
pub struct RunClassificationFlags {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// What the command line asks for.
pub enum Request {
    /// `--help` / `-h`: print [`help::render_help`].
    Help,
    /// `--flag-table`: print the README's table.
    FlagTable,
    /// Train as the script would; say the notes and warnings on stderr first.
    Run { args: Box<TrainArgs>, notes: Vec<String>, warnings: Vec<String> },
}

impl RunClassificationFlags {
    pub fn request(&self) -> Result<Request> {
        let args = self
            .args
            .iter()
            .map(|a| {
                a.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::usage(a.to_string_lossy(), "is not valid UTF-8"))
            })
            .collect::<Result<Vec<_>>>()?;
        if args == ["--flag-table"] {
            return Ok(Request::FlagTable);
        }
        let parsed = match parser::parse(&args)? {
            parser::Parse::Help => return Ok(Request::Help),
            parser::Parse::Run(parsed) => parsed,
        };
        let notes = checks::check(&parsed)?;
        let converted = convert::to_train_args(&parsed)?;
        Ok(Request::Run { args: Box::new(converted.args), notes, warnings: converted.warnings })
    }
}
