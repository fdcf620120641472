//! Each flag's disposition applied to the parsed values: a NoEffect flag given a value other than
//! HF's default is said once, a Refused one is refused naming it (a value equal to HF's default is
//! always accepted: `--push_to_hub false` asks for nothing).
use std::path::Path;

use super::table::{Disposition, FLAGS};
use super::value::Parsed;
use crate::error::{Error, Result};

/// The notes for NoEffect flags given a non-default value, or the first refused flag.
pub fn check(parsed: &Parsed) -> Result<Vec<String>> {
    hf_refusals(parsed)?;
    let mut notes = Vec::new();
    for f in FLAGS.iter().filter(|f| parsed.differs(f)) {
        match f.disposition {
            Disposition::Same => {}
            Disposition::NoEffect(why) => {
                notes.push(format!("bertfit: --{} has no effect here: {why}", f.name))
            }
            Disposition::Refused(_) if allowed(f.name, parsed) => {}
            Disposition::Refused(why) => {
                return Err(Error::usage(
                    format!("--{}", f.name),
                    format!(
                        "{} would change the run and bertfit does not implement it: {why}",
                        parsed.get(f.name).repr()
                    ),
                ))
            }
        }
    }
    Ok(notes)
}

/// What TrainingArguments (or the DataLoader it builds) refuses of flags that otherwise have no
/// effect here: a command line that fails in HF must not run here as if it were fine.
fn hf_refusals(parsed: &Parsed) -> Result<()> {
    if let Some(n) = parsed.int("torch_empty_cache_steps").filter(|&n| n <= 0) {
        return Err(Error::usage(
            "--torch_empty_cache_steps",
            format!("must be an integer bigger than 0, got {n} (HF refuses it too)"),
        ));
    }
    let workers = parsed.int("dataloader_num_workers").unwrap_or(0);
    if workers < 0 {
        return Err(Error::usage(
            "--dataloader_num_workers",
            format!("must be 0 or more, got {workers} (torch's DataLoader refuses it)"),
        ));
    }
    if workers == 0 && parsed.int("dataloader_prefetch_factor").is_some() {
        return Err(Error::usage(
            "--dataloader_prefetch_factor",
            "can only be set when data is loaded in a different process, i.e. with \
             --dataloader_num_workers above 0 (HF refuses it too)",
        ));
    }
    Ok(())
}

/// Refused flags whose value asks for what bertfit does anyway.
fn allowed(name: &str, parsed: &Parsed) -> bool {
    match name {
        // The model's own config and tokenizer are what bertfit reads.
        "config_name" | "tokenizer_name" => {
            let model = parsed.str("model_name_or_path").unwrap_or_default();
            parsed.str(name).is_some_and(|v| same_folder(v, model))
        }
        _ => false,
    }
}

fn same_folder(a: &str, b: &str) -> bool {
    a == b || matches!((Path::new(a).canonicalize(), Path::new(b).canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run_classification::parser::{parse, Parse};

    fn check_args(extra: &[&str]) -> Result<Vec<String>> {
        let mut args = vec!["--model_name_or_path", "m"];
        args.extend(extra);
        let Parse::Run(p) = parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())? else { panic!() };
        check(&p)
    }

    #[test]
    fn no_effect_flags_are_said_once_and_refused_ones_named() {
        let notes = check_args(&[
            "--report_to",
            "wandb",
            "--report_to",
            "tensorboard",
            "--dataloader_num_workers",
            "0",
        ])
        .unwrap();
        assert_eq!(
            notes,
            ["bertfit: --report_to has no effect here: bertfit writes metrics.jsonl; no integrations"]
        );
        let e = check_args(&["--push_to_hub"]).unwrap_err().to_string();
        assert!(e.starts_with("--push_to_hub: True would change the run"), "{e}");
        assert!(
            check_args(&["--push_to_hub", "false", "--data_seed", "7"]).unwrap().is_empty(),
            "HF's defaults / same seed"
        );
        assert!(check_args(&["--tokenizer_name", "m", "--config_name", "m"]).is_ok());
        assert!(check_args(&["--tokenizer_name", "other"])
            .unwrap_err()
            .to_string()
            .starts_with("--tokenizer_name"));
        assert!(check_args(&["--include_num_input_tokens_seen", "false", "--warmup_steps", "0"])
            .unwrap()
            .is_empty());
        assert!(check_args(&["--include_num_input_tokens_seen"]).is_err());
        assert!(check_args(&["--dataset_name", "glue"]).unwrap_err().to_string().contains("--train_file"));
    }

    #[test]
    fn values_hf_refuses_are_refused_even_where_the_flag_has_no_effect() {
        for (args, flag) in [
            (&["--torch_empty_cache_steps", "0"][..], "--torch_empty_cache_steps"),
            (&["--torch_empty_cache_steps", "-1"], "--torch_empty_cache_steps"),
            (&["--dataloader_num_workers", "-1"], "--dataloader_num_workers"),
            (&["--dataloader_prefetch_factor", "2"], "--dataloader_prefetch_factor"),
            (
                &["--dataloader_num_workers", "0", "--dataloader_prefetch_factor", "2"],
                "--dataloader_prefetch_factor",
            ),
        ] {
            let e = check_args(args).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{args:?}: {e}");
        }
        for args in [
            &["--torch_empty_cache_steps", "10"][..],
            &["--dataloader_num_workers", "2", "--dataloader_prefetch_factor", "2"],
        ] {
            assert!(check_args(args).is_ok(), "{args:?}");
        }
    }
}
