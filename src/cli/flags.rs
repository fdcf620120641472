//! Flag groups several subcommands share, each declared once and flattened where it is used
//! (cargo's `arg_*` helpers), and the conversions every subcommand makes from them: a count from
//! a signed flag, a folder the run will make, the device.
use std::path::Path;
use std::str::FromStr;

use clap::builder::BoolishValueParser;
use clap::{Arg, ArgAction, Args, Command};
use tch::Device;

use crate::data::dataset::Columns;
use crate::error::{Error, Result};

/// HF's boolean flags take an optional value: `--do-train`, `--do-train true`, `--do-train no`.
/// Every flag typed `Option<bool>` is one (a plain `bool` is a switch without a value): this gives
/// all of them, in every subcommand, that reading, so each is declared as just `#[arg(long)]`.
pub fn hf_booleans(cli: Command) -> Command {
    let optional_bool = |a: Arg| {
        let bool_typed = a.get_value_parser().type_id() == std::any::TypeId::of::<bool>();
        if bool_typed && matches!(a.get_action(), ArgAction::Set) {
            a.num_args(0..=1).default_missing_value("true").value_parser(BoolishValueParser::new())
        } else {
            a
        }
    };
    cli.mut_subcommands(move |sub| sub.mut_args(optional_bool))
}

/// `--device`: `auto` (CUDA when libtorch sees a device), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(format!("'{s}' is not cpu, cuda, cuda:N or auto")),
            },
        }
    }
}

impl DeviceChoice {
    /// The device, once libtorch is asked whether it exists.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(i) if (i as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(i)),
            DeviceChoice::Cuda(i) => Err(Error::usage(
                "--device",
                format!("cuda:{i} requested but libtorch sees {} CUDA device(s)", tch::Cuda::device_count()),
            )),
        }
    }
}

/// Where the model runs (every subcommand that runs it).
#[derive(Debug, Args)]
pub struct DeviceFlags {
    /// cpu, cuda, cuda:N, or auto (cuda when available; the run's first line says which).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// libtorch CPU threads, 1 to 4 per core (default: one per core).
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<i64>,
}

impl DeviceFlags {
    pub fn device(&self) -> Result<Device> {
        self.device.device()
    }

    pub fn device_auto(&self) -> bool {
        self.device == DeviceChoice::Auto
    }

    pub fn threads(&self) -> Result<Option<i32>> {
        crate::bounds::threads("--threads", self.threads)
    }
}

/// How many tokens of each example the model reads (train, predict, evaluate).
#[derive(Debug, Args)]
pub struct MaxLengthFlag {
    /// Tokens per example, [CLS] and [SEP] included; longer texts are truncated.
    #[arg(long, visible_alias = "max-seq-length", default_value_t = 512, allow_negative_numbers = true)]
    pub max_length: i64,
}

impl MaxLengthFlag {
    pub fn max_length(&self) -> Result<usize> {
        count("--max-length", self.max_length, 2)
    }
}

/// The text columns a model reads (every subcommand that reads rows).
#[derive(Debug, Args)]
pub struct TextColumns {
    /// The text column (HF's text_column_names, with one column).
    #[arg(long, default_value = "text", visible_aliases = ["text-column-names", "text-column-name"])]
    pub text_column: String,
    /// Second text of sentence-pair tasks and models (gets token type 1).
    #[arg(long)]
    pub text_pair_column: Option<String>,
}

/// The columns of labelled rows and how a label cell is read (train, check-data, evaluate).
#[derive(Debug, Args)]
pub struct LabelColumns {
    #[command(flatten)]
    pub text: TextColumns,
    /// Labels: class names (a trained model's id2label) or class ids; for multi-label any number
    /// of them (`a|b`, `[0, 3]`, or empty for none); for regression a number.
    #[arg(long, default_value = "label", visible_alias = "label-column-name")]
    pub label_column: String,
    /// Values: train; val, validation or dev; test.
    #[arg(long, default_value = "split")]
    pub split_column: String,
    /// Separates the label names of a multi-label cell.
    #[arg(long, default_value = "|")]
    pub label_separator: String,
}

impl LabelColumns {
    pub fn columns(&self) -> Columns {
        Columns {
            text: self.text.text_column.clone(),
            text_pair: self.text.text_pair_column.clone(),
            label: self.label_column.clone(),
            split: self.split_column.clone(),
            ..Columns::default()
        }
    }
}

/// A count from a flag: at least `min`, or an error naming the flag.
pub fn count(flag: &str, v: i64, min: i64) -> Result<usize> {
    if v < min {
        return Err(Error::usage(flag, format!("must be at least {min}, got {v}")));
    }
    usize::try_from(v).map_err(|_| Error::usage(flag, format!("{v} is too large")))
}

/// An optional count from a flag (see [`count`]).
pub fn opt_count(flag: &str, v: Option<i64>, min: i64) -> Result<Option<usize>> {
    v.map(|v| count(flag, v, min)).transpose()
}

/// A flag naming a folder that a run makes if missing: neither the path nor a folder above it may
/// be a file. Checked before anything runs, so the message names the path instead of the OS's
/// "File exists" or "Not a directory" at the first write, after the model and data were read.
pub fn folder_flag(flag: &str, path: &Path) -> Result<()> {
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(Error::usage(flag, format!("{} is a file, expected a folder", p.display()))),
            // Missing (it will be made) or unreadable (the write will say why): look further up.
            Err(_) => continue,
        }
    }
    Ok(())
}
