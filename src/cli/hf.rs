//! Hugging Face's flag names on bertfit's command line. Users arrive with command lines written for
//! transformers' `run_classification.py` and `TrainingArguments` (`--num_train_epochs 3`,
//! `--do_train`, ...). bertfit's flags accept those names as aliases; this module makes both
//! spellings work (HfArgumentParser takes `--max_seq_length`, clap takes `--max-seq-length`: every
//! flag name is read with underscores as dashes) and turns an HF flag bertfit does not implement
//! into an error that names it, instead of clap's "unexpected argument", so nothing a user asked
//! for is ever silently dropped.
use std::collections::BTreeSet;
use std::ffi::OsString;

use crate::error::{Error, Result};

/// Every flag of TrainingArguments and run_classification.py (`scripts/hf_flags.py` writes it).
const HF_FLAGS: &str = include_str!("hf_flags.txt");

pub fn hf_flag_names() -> impl Iterator<Item = &'static str> {
    HF_FLAGS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// `--per_device_train_batch_size=8` -> `--per-device-train-batch-size=8`; values are left alone.
/// Then, for the flag names bertfit knows (`known`, dash form, without `--`), nothing else happens;
/// an HF flag bertfit does not know is refused by name.
pub fn normalize(
    args: impl IntoIterator<Item = OsString>,
    known: &BTreeSet<String>,
) -> Result<Vec<OsString>> {
    let hf: BTreeSet<String> = hf_flag_names().map(|n| n.replace('_', "-")).collect();
    let mut out = Vec::new();
    let mut rest = false; // after a bare `--` everything is a value
    for arg in args {
        let Some(s) = arg.to_str().filter(|s| !rest && s.starts_with("--") && s.len() > 2) else {
            rest |= arg == "--";
            out.push(arg);
            continue;
        };
        let (name, value) = match s[2..].split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (&s[2..], None),
        };
        let dashed = name.replace('_', "-");
        if !known.contains(&dashed) && hf.contains(&dashed) {
            return Err(Error::usage(
                format!("--{name}"),
                "is a Hugging Face training flag that bertfit does not implement; remove it \
                 (`bertfit train --help` lists what bertfit supports)",
            ));
        }
        out.push(match value {
            Some(v) => OsString::from(format!("--{dashed}={v}")),
            None => OsString::from(format!("--{dashed}")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["num-train-epochs", "do-train", "output-dir"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn underscores_become_dashes_in_names_only() {
        let args = ["bertfit", "--num_train_epochs", "3", "--output_dir=/a_b", "--do_train", "x_y"]
            .map(OsString::from);
        let out = normalize(args, &known()).unwrap();
        let out: Vec<&str> = out.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(out, ["bertfit", "--num-train-epochs", "3", "--output-dir=/a_b", "--do-train", "x_y"]);
    }

    #[test]
    fn an_unimplemented_hf_flag_is_refused_by_name() {
        let err =
            normalize(["bertfit", "--deepspeed", "cfg.json"].map(OsString::from), &known()).unwrap_err();
        assert!(err.to_string().starts_with("--deepspeed: is a Hugging Face"), "{err}");
        // Flags that are neither bertfit's nor HF's are left for clap to report.
        assert!(normalize(["bertfit", "--bogus"].map(OsString::from), &known()).is_ok());
    }
}
