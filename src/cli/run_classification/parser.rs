//! HfArgumentParser's command line, with argparse's rules: `--name value` and `--name=value`,
//! `--foo_bar` and `--foo-bar`, optional-value booleans (`--do_train`, `--do_train no`) with
//! `--no_<name>` for those whose default is True, the last of a repeated flag wins, a unique prefix
//! of a flag stands for it (`--learning_r`), and HF's refusal of anything it does not use.
use super::table::{Flag, Kind, FLAGS, REMOVED};
use super::value::{Parsed, Value};
use crate::error::{Error, Result};

/// What the command line asks for.
#[derive(Debug)]
pub enum Parse {
    Help,
    Run(Parsed),
}

/// What an option string stands for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Help,
    Set(&'static Flag),
    /// `--no_<name>`: store False.
    Negate(&'static Flag),
}

/// Every option string in argparse's order (each action's strings together): for the ambiguity
/// message, which lists them in that order.
fn options() -> Vec<(String, Target)> {
    let mut out = vec![("-h".to_string(), Target::Help), ("--help".to_string(), Target::Help)];
    let spellings = |name: &str| {
        let dashed = name.replace('_', "-");
        if dashed == name {
            vec![format!("--{name}")]
        } else {
            vec![format!("--{name}"), format!("--{dashed}")]
        }
    };
    for f in FLAGS {
        out.extend(spellings(f.name).into_iter().map(|s| (s, Target::Set(f))));
        if f.kind == Kind::Bool && f.default == "True" {
            out.extend(spellings(&format!("no_{}", f.name)).into_iter().map(|s| (s, Target::Negate(f))));
        }
    }
    out
}

/// argparse's reading of one argument: an option (with its explicit `=value`), or not.
fn lookup(opts: &[(String, Target)], arg: &str) -> Result<Option<(String, Target, Option<String>)>> {
    if !arg.starts_with('-') || arg.len() == 1 {
        return Ok(None);
    }
    if let Some((s, t)) = opts.iter().find(|(s, _)| s == arg) {
        return Ok(Some((s.clone(), *t, None)));
    }
    let (name, explicit) = match arg.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (arg, None),
    };
    if let Some((s, t)) = opts.iter().find(|(s, _)| s == name) {
        return Ok(Some((s.clone(), *t, explicit)));
    }
    if arg.starts_with("--") {
        let matches: Vec<_> = opts.iter().filter(|(s, _)| s.starts_with(name)).collect();
        if matches.len() > 1 {
            let all: Vec<&str> = matches.iter().map(|(s, _)| s.as_str()).collect();
            return Err(Error::usage(
                name,
                format!("ambiguous option: {name} could match {}", all.join(", ")),
            ));
        }
        if let Some((s, t)) = matches.first() {
            return Ok(Some((s.clone(), *t, explicit)));
        }
    }
    if is_negative_number(arg) || arg.contains(' ') {
        return Ok(None);
    }
    Err(unknown(name))
}

/// argparse's `^-\d+$|^-\d*\.\d+$`: such an argument is a value, not an option (`-1e-4` is not).
fn is_negative_number(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else { return false };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    match rest.split_once('.') {
        None => !rest.is_empty() && digits(rest),
        Some((a, b)) => digits(a) && !b.is_empty() && digits(b),
    }
}

/// An option HF's parser does not know: its 4.x name's replacement, or the closest known flag.
fn unknown(name: &str) -> Error {
    let bare = name.trim_start_matches('-').replace('-', "_");
    if let Some((_, why)) = REMOVED.iter().find(|(n, _)| *n == bare) {
        return Error::usage(
            name,
            format!("is not a flag of transformers 5.24's run_classification.py: {why}"),
        );
    }
    let closest = FLAGS.iter().map(|f| (edit_distance(&bare, f.name), f.name)).min();
    let hint = match closest {
        Some((d, n)) if d <= bare.len().max(3) / 2 => format!(" (did you mean --{n}?)"),
        _ => String::new(),
    };
    Error::usage(
        name,
        format!("is not a flag of run_classification.py or TrainingArguments{hint}; `bertfit run-classification --help` lists them"),
    )
}

/// Levenshtein distance, for the suggestion.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// HF's `string_to_bool`.
pub fn string_to_bool(flag: &str, v: &str) -> Result<bool> {
    match v.to_lowercase().as_str() {
        "yes" | "true" | "t" | "y" | "1" => Ok(true),
        "no" | "false" | "f" | "n" | "0" => Ok(false),
        _ => Err(Error::usage(
            flag,
            format!("Truthy value expected: got '{v}' but expected one of yes/no, true/false, t/f, y/n, 1/0 (case insensitive)"),
        )),
    }
}

/// One value converted as the field's type (argparse's `type=` and `choices=`).
pub fn convert(flag: &Flag, option: &str, v: &str) -> Result<Value> {
    let bad = |what: &str| Error::usage(option, format!("invalid {what} value: '{v}'"));
    Ok(match flag.kind {
        Kind::Bool | Kind::BoolValue => Value::Bool(string_to_bool(option, v)?),
        Kind::Int => Value::Int(v.trim().parse().map_err(|_| bad("int"))?),
        Kind::Float => Value::Float(v.trim().parse().map_err(|_| bad("float"))?),
        Kind::Str => Value::Str(v.to_string()),
        Kind::StrList => Value::List(vec![v.to_string()]),
        Kind::Choice(choices) if choices.contains(&v) => Value::Str(v.to_string()),
        Kind::Choice(choices) => {
            let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
            return Err(Error::usage(
                option,
                format!("invalid choice: '{v}' (choose from {})", list.join(", ")),
            ));
        }
    })
}

/// Parses the arguments after `run-classification` (a single `*.json` argument is the JSON args
/// file, as the script reads it).
pub fn parse(args: &[String]) -> Result<Parse> {
    if let [one] = args {
        if one.ends_with(".json") {
            return super::json_file::read(std::path::Path::new(one)).map(Parse::Run);
        }
    }
    let opts = options();
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some((option, target, explicit)) = lookup(&opts, arg)? else {
            return Err(unused(&args[i..]));
        };
        i += 1;
        let flag = match target {
            Target::Help => return Ok(Parse::Help),
            Target::Negate(flag) => {
                if let Some(v) = explicit {
                    return Err(Error::usage(option, format!("ignored explicit argument '{v}'")));
                }
                parsed.set(flag, Value::Bool(false));
                continue;
            }
            Target::Set(flag) => flag,
        };
        let is_value = |a: &String| a != "--" && matches!(lookup(&opts, a), Ok(None));
        let value = match (explicit, flag.kind) {
            (Some(v), Kind::StrList) => Value::List(vec![v]),
            (Some(v), _) => convert(flag, &option, &v)?,
            (None, Kind::Bool) if !args.get(i).is_some_and(is_value) => Value::Bool(true),
            (None, Kind::StrList) => {
                let n = args[i..].iter().take_while(|a| is_value(a)).count();
                if n == 0 {
                    return Err(Error::usage(option, "expected at least one argument"));
                }
                i += n;
                Value::List(args[i - n..i].to_vec())
            }
            (None, _) => match args.get(i).filter(|a| is_value(a)) {
                Some(v) => {
                    i += 1;
                    convert(flag, &option, v)?
                }
                None => return Err(Error::usage(option, "expected one argument")),
            },
        };
        parsed.set(flag, value);
    }
    required(&parsed)?;
    Ok(Parse::Run(parsed))
}

/// HF's refusal of arguments no dataclass takes (a stray value, or anything after `--`).
fn unused(rest: &[String]) -> Error {
    Error::usage(
        rest[0].clone(),
        format!("Some specified arguments are not used by the HfArgumentParser: {rest:?}"),
    )
}

/// argparse's required fields (only model_name_or_path).
pub fn required(parsed: &Parsed) -> Result<()> {
    for f in FLAGS.iter().filter(|f| f.default == "MISSING") {
        if !parsed.given.contains(f.name) {
            return Err(Error::usage(format!("--{}", f.name), "the following arguments are required"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Parsed> {
        let mut all = vec!["--model_name_or_path", "m"];
        all.extend(args);
        match parse(&all.iter().map(|s| s.to_string()).collect::<Vec<_>>())? {
            Parse::Run(p) => Ok(p),
            Parse::Help => panic!("help"),
        }
    }

    fn err(args: &[&str]) -> String {
        run(args).unwrap_err().to_string()
    }

    #[test]
    fn both_spellings_and_equals_and_last_one_wins() {
        let p = run(&["--learning_rate", "1e-4", "--per-device-train-batch-size=4", "--learning-rate=2e-4"])
            .unwrap();
        assert_eq!(p.float("learning_rate"), Some(2e-4));
        assert_eq!(p.int("per_device_train_batch_size"), Some(4));
        assert_eq!(p.float("num_train_epochs"), Some(3.0), "HF's default");
    }

    #[test]
    fn booleans_take_an_optional_value_and_no_forms() {
        let p =
            run(&["--do_train", "--do_eval", "No", "--do_predict=T", "--no-dataloader-pin-memory"]).unwrap();
        assert_eq!(
            (p.bool("do_train"), p.bool("do_eval"), p.bool("do_predict")),
            (Some(true), Some(false), Some(true))
        );
        assert_eq!(p.bool("dataloader_pin_memory"), Some(false));
        assert_eq!(run(&["--no_pad_to_max_length"]).unwrap().bool("pad_to_max_length"), Some(false));
        // A boolean followed by another flag takes no value.
        assert_eq!(run(&["--do_train", "--seed", "1"]).unwrap().bool("do_train"), Some(true));
        assert!(err(&["--do_train", "maybe"]).contains("Truthy value expected"));
        assert!(
            err(&["--no_do_train"]).contains("is not a flag"),
            "do_train defaults to False: no --no_ form"
        );
        assert!(err(&["--tf32"]).contains("expected one argument"), "bool | None needs a value");
        assert!(err(&["--no_pad_to_max_length=1"]).contains("ignored explicit argument"));
    }

    #[test]
    fn unique_prefixes_abbreviate_and_ambiguous_ones_are_refused() {
        assert_eq!(run(&["--learning_r", "1e-4"]).unwrap().float("learning_rate"), Some(1e-4));
        assert_eq!(run(&["--max_grad=0.5"]).unwrap().float("max_grad_norm"), Some(0.5));
        let e = err(&["--output", "x"]);
        assert!(e.contains("ambiguous option: --output could match --output_dir, --output-dir"), "{e}");
        assert!(err(&["--do", "1"]).contains("could match --do_regression, --do-regression, --do_train"));
    }

    #[test]
    fn unknown_and_removed_flags_are_refused_by_name() {
        let e = err(&["--learnin_rate", "1"]);
        assert!(e.starts_with("--learnin_rate:") && e.contains("did you mean --learning_rate?"), "{e}");
        assert!(err(&["--warmup_ratio", "0.1"]).contains("--warmup_steps 0.1"));
        assert!(err(&["--overwrite_output_dir"]).starts_with("--overwrite_output_dir:"));
        assert!(err(&["--seed", "1", "stray"]).contains("not used by the HfArgumentParser"));
    }

    #[test]
    fn values_are_typed_and_choices_checked() {
        assert!(err(&["--seed", "x"]).contains("invalid int value: 'x'"));
        assert!(err(&["--learning_rate", "fast"]).contains("--learning_rate: invalid float value: 'fast'"));
        let e = err(&["--lr_scheduler_type", "bogus"]);
        assert!(e.contains("invalid choice: 'bogus' (choose from 'linear', 'cosine'"), "{e}");
        assert!(err(&["--seed"]).contains("--seed: expected one argument"));
        // argparse reads -1 as a value, -1e-4 as an option.
        assert_eq!(run(&["--max_steps", "-1"]).unwrap().int("max_steps"), Some(-1));
        assert!(err(&["--learning_rate", "-1e-4"]).contains("expected one argument"));
        let p = run(&["--include_for_metrics", "inputs", "loss", "--seed", "3"]).unwrap();
        assert_eq!(p.get("include_for_metrics"), &Value::List(vec!["inputs".into(), "loss".into()]));
    }

    #[test]
    fn model_name_or_path_is_required_and_help_is_help() {
        let e = parse(&["--seed".into(), "1".into()]).unwrap_err().to_string();
        assert!(e.contains("--model_name_or_path: the following arguments are required"), "{e}");
        assert!(matches!(parse(&["-h".into()]), Ok(Parse::Help)));
        assert!(matches!(parse(&["--seed".into(), "1".into(), "--help".into()]), Ok(Parse::Help)));
    }

    #[test]
    fn a_single_json_argument_is_the_args_file() {
        let dir = std::env::temp_dir().join(format!("bertfit-rc-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("args.json");
        std::fs::write(
            &path,
            r#"{"model_name_or_path": "m", "do_train": true, "learning_rate": 1e-4, "seed": 7}"#,
        )
        .unwrap();
        let Parse::Run(p) = parse(&[path.display().to_string()]).unwrap() else { panic!() };
        assert_eq!(
            (p.bool("do_train"), p.float("learning_rate"), p.int("seed")),
            (Some(true), Some(1e-4), Some(7))
        );
        std::fs::write(&path, r#"{"model_name_or_path": "m", "warmup_ratio": 0.1}"#).unwrap();
        let e = parse(&[path.display().to_string()]).unwrap_err().to_string();
        assert!(e.contains("Some keys are not used by the HfArgumentParser: [\"warmup_ratio\"]"), "{e}");
        std::fs::write(&path, r#"{"model_name_or_path": "m", "seed": "7"}"#).unwrap();
        assert!(parse(&[path.display().to_string()]).unwrap_err().to_string().contains("seed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
