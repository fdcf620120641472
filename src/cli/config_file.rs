//! `bertfit train --config run.toml`: a TOML file of flags, keyed by their long names
//! (`learning_rate = 2e-5`, `do_train = true`, `data = "x.csv"`). The file is turned into command-line
//! flags before clap parses anything, so a setting from the file goes through exactly the parsing and
//! validation the same flag gets on the command line. A flag given on the command line wins over the
//! file, and so does one that clap would refuse beside it (`--train-file` on the command line drops
//! the file's `data`). What each flag takes (a value, an optional `true`/`false`, nothing) is read
//! from clap's own description of it, so a new flag works in a file without a change here.
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use crate::error::{Error, Result};

/// The flag that names the file (a subcommand offers it by declaring an argument with this name).
const FLAG: &str = "config";

/// Larger than any hand-written list of flags; a bound so a wrong path (a dataset) fails fast.
const MAX_BYTES: u64 = 1 << 20;

/// The command line with the file's settings inserted, and which flags came from where.
pub struct Expanded {
    pub args: Vec<OsString>,
    file: Option<PathBuf>,
    /// Long flag name (dash form) -> the file's key that set it.
    from_file: BTreeMap<String, String>,
}

impl Expanded {
    /// clap's error as an error naming the file and key, when a flag from the file caused it.
    pub fn blame(&self, e: &clap::Error) -> Option<Error> {
        let file = self.file.as_ref()?;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            return None;
        }
        let named = [ContextKind::InvalidArg, ContextKind::PriorArg].into_iter().filter_map(|k| e.get(k));
        let key = named
            .flat_map(|v| match v {
                ContextValue::String(s) => vec![s.clone()],
                ContextValue::Strings(v) => v.clone(),
                _ => Vec::new(),
            })
            // clap names an argument as `--batch-size <BATCH_SIZE>`.
            .filter_map(|s| {
                s.split_whitespace().next().and_then(|f| f.strip_prefix("--")).map(str::to_string)
            })
            .find_map(|long| self.from_file.get(&long))?;
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        Some(key_error(file, key, first.strip_prefix("error: ").unwrap_or(first)))
    }
}

fn key_error(file: &Path, key: &str, msg: impl std::fmt::Display) -> Error {
    Error::config(file, format!("key '{key}': {msg}"))
}

/// Inserts the settings of the subcommand's `--config FILE` into `args` (already normalised by
/// `hf::normalize`: flag names in dash form). `cli` must be built (`Command::build`), so each
/// argument's action and value count are known. Without `--config`, `args` is returned unchanged.
pub fn expand(args: Vec<OsString>, cli: &Command) -> Result<Expanded> {
    let unchanged = |args| Ok(Expanded { args, file: None, from_file: BTreeMap::new() });
    // bertfit has no global flags with values: the subcommand is the first argument.
    let Some(sub) = args.get(1).and_then(|a| cli.find_subcommand(a)) else { return unchanged(args) };
    if !sub.get_arguments().any(|a| a.get_long() == Some(FLAG)) {
        return unchanged(args);
    }
    let given = flags_given(&args[2..], sub);
    let Some(file) = config_path(&args[2..]) else { return unchanged(args) };
    let table = read_table(&file)?;

    let mut inserted = Vec::new();
    let mut from_file: BTreeMap<String, String> = BTreeMap::new();
    let mut set_by: BTreeMap<String, String> = BTreeMap::new(); // arg id -> key
    for (key, value) in &table {
        let arg = find_arg(sub, key).ok_or_else(|| unknown_key(&file, key))?;
        if arg.get_long() == Some(FLAG) {
            return Err(key_error(&file, key, "a config file cannot name another config file"));
        }
        let id = arg.get_id().to_string();
        if let Some(other) = set_by.insert(id, key.clone()) {
            return Err(key_error(&file, key, format!("sets the same flag as key '{other}'")));
        }
        if given.contains(arg.get_id().as_str()) || conflicts_with_given(sub, arg, &given) {
            continue; // the command line wins
        }
        let long = arg.get_long().unwrap_or_default().to_string();
        inserted.extend(flag_values(arg, &long, value).map_err(|msg| key_error(&file, key, msg))?);
        from_file.insert(long, key.clone());
    }
    let mut args = args;
    args.splice(2..2, inserted);
    Ok(Expanded { args, file: Some(file), from_file })
}

/// The ids of the arguments `args` (one subcommand's command line) sets, by any name or alias.
fn flags_given(args: &[OsString], sub: &Command) -> BTreeSet<String> {
    let mut given = BTreeSet::new();
    for a in args.iter().map(|a| a.to_string_lossy()) {
        if a == "--" {
            break;
        }
        let Some(name) = a.strip_prefix("--") else { continue };
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        if let Some(arg) = find_arg(sub, name) {
            given.insert(arg.get_id().to_string());
        }
    }
    given
}

/// `--config FILE` or `--config=FILE` (the first one: clap refuses a second).
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{FLAG}");
    let mut it = args.iter().take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        if *a == *flag {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.to_str().and_then(|s| s.strip_prefix(&flag)).and_then(|s| s.strip_prefix('=')) {
            return Some(PathBuf::from(path));
        }
    }
    None
}

fn read_table(file: &Path) -> Result<toml::Table> {
    let meta = std::fs::metadata(file).map_err(|e| Error::io(file, e))?;
    if meta.len() > MAX_BYTES {
        return Err(Error::config(file, format!("{} bytes is too large for a file of flags", meta.len())));
    }
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    // toml's message says "TOML parse error at line L, column C" and shows the line.
    toml::from_str(&text).map_err(|e| Error::config(file, e.to_string().trim_end().to_string()))
}

/// The subcommand's argument that `key` names (long name or alias; underscores read as dashes).
fn find_arg<'a>(sub: &'a Command, key: &str) -> Option<&'a Arg> {
    let name = key.replace('_', "-");
    sub.get_arguments().find(|a| {
        a.get_long() == Some(name.as_str()) || a.get_all_aliases().is_some_and(|v| v.contains(&name.as_str()))
    })
}

fn unknown_key(file: &Path, key: &str) -> Error {
    let dashed = key.replace('_', "-");
    let msg = if super::hf::hf_flag_names().any(|n| n.replace('_', "-") == dashed) {
        "is a Hugging Face training flag that bertfit does not implement; remove it \
         (`bertfit train --help` lists what bertfit supports)"
    } else {
        "is not a flag of `bertfit train` (`bertfit train --help` lists them; write them as \
         `learning_rate = 2e-5` or `learning-rate = 2e-5`)"
    };
    key_error(file, key, msg)
}

/// Whether clap would refuse `arg` beside a flag the command line gives (conflicts are declared on
/// one side only, so both are asked).
fn conflicts_with_given(sub: &Command, arg: &Arg, given: &BTreeSet<String>) -> bool {
    let id = arg.get_id().as_str();
    sub.get_arg_conflicts_with(arg).iter().any(|a| given.contains(a.get_id().as_str()))
        || sub
            .get_arguments()
            .filter(|a| given.contains(a.get_id().as_str()))
            .any(|a| sub.get_arg_conflicts_with(a).iter().any(|c| c.get_id() == id))
}

/// The command-line words for one setting, chosen by what clap says the flag takes. Values go in
/// `--flag=value` form, so a value that starts with `-` is never read as a flag.
fn flag_values(arg: &Arg, long: &str, value: &toml::Value) -> std::result::Result<Vec<OsString>, String> {
    use toml::Value as V;
    let switch = |on_when: bool| match value {
        V::Boolean(b) if *b == on_when => Ok(vec![OsString::from(format!("--{long}"))]),
        V::Boolean(_) => Ok(Vec::new()),
        _ => Err(format!("--{long} is a switch: give true or false, not {value}")),
    };
    match arg.get_action() {
        ArgAction::SetTrue => return switch(true),
        ArgAction::SetFalse => return switch(false),
        ArgAction::Set | ArgAction::Append => {}
        _ => return Err(format!("--{long} is not a setting")),
    }
    let many = matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1);
    let takes = Takes::of(arg);
    let typed = |v: &toml::Value| takes.check(long, v).and_then(|()| scalar(v));
    let words = match value {
        V::Array(items) if many => items.iter().map(typed).collect::<std::result::Result<Vec<_>, _>>()?,
        V::Array(_) => return Err(format!("--{long} takes one value, not an array")),
        v => vec![typed(v)?],
    };
    Ok(words.into_iter().map(|w| OsString::from(format!("--{long}={w}"))).collect())
}

/// What a flag's value is, from the type clap parses it into. A TOML file says its values' types,
/// so the type must match: `learning_rate = "1e-3"` or `do_train = "true"` is refused (a quoted
/// value is a string), as the README says. Hugging Face is the guide only in part: its
/// `HfArgumentParser.parse_dict` (a JSON/YAML config) passes values to the dataclass unchecked, so
/// a YAML `learning_rate: 1e-3` (a string to PyYAML) fails later inside the optimizer; refusing it
/// here, naming the key, is that failure told at once.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Takes {
    /// `true` or `false` (HF's optional booleans: `--do-train`, `--bf16`, ...).
    Bool,
    /// An integer or, when `float`, any number.
    Number { float: bool },
    /// Text: paths, names, choices.
    Text,
}

impl Takes {
    fn of(arg: &Arg) -> Takes {
        use std::any::TypeId;
        let t = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<isize>(),
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
        ];
        if t == TypeId::of::<bool>() {
            Takes::Bool
        } else if t == TypeId::of::<f64>() || t == TypeId::of::<f32>() {
            Takes::Number { float: true }
        } else if integers.iter().any(|i| t == *i) {
            Takes::Number { float: false }
        } else {
            Takes::Text
        }
    }

    /// Refuses a value of another TOML type than the flag's. A float for an integer flag passes
    /// on to clap, whose message (`invalid value '16.0'`) says what is wrong.
    fn check(self, long: &str, value: &toml::Value) -> std::result::Result<(), String> {
        use toml::Value as V;
        let shown = match value {
            V::String(s) => format!("'{s}'"),
            v => v.to_string(),
        };
        let (ok, wanted) = match self {
            Takes::Bool => (matches!(value, V::Boolean(_)), "true or false, written without quotes"),
            Takes::Number { float: true } => {
                (matches!(value, V::Integer(_) | V::Float(_)), "a number, written without quotes")
            }
            Takes::Number { float: false } => {
                (matches!(value, V::Integer(_) | V::Float(_)), "a whole number, written without quotes")
            }
            Takes::Text => (matches!(value, V::String(_)), "text, written in quotes"),
        };
        if ok {
            return Ok(());
        }
        let what = match value {
            V::String(_) => "a string (a quoted value is text in TOML)",
            V::Integer(_) | V::Float(_) => "a number",
            V::Boolean(_) => "a boolean",
            V::Datetime(_) => "a date",
            V::Array(_) | V::Table(_) => value.type_str(),
        };
        Err(format!("invalid value {shown}: --{long} takes {wanted}, not {what}"))
    }
}

/// One TOML value as the text a user would type; clap then parses it as it parses a typed value.
fn scalar(value: &toml::Value) -> std::result::Result<String, String> {
    use toml::Value as V;
    match value {
        V::String(s) => Ok(s.clone()),
        V::Integer(i) => Ok(i.to_string()),
        // Debug keeps `3.0` a float (an integer flag refuses it) and writes 2e-5 as `2e-5`.
        V::Float(f) => Ok(format!("{f:?}")),
        V::Boolean(b) => Ok(b.to_string()),
        V::Datetime(d) => Ok(d.to_string()),
        V::Array(_) | V::Table(_) => Err(format!("expects a value, not {}", value.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_with(toml: &str, cmdline: &[&str]) -> Result<Vec<String>> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bertfit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{n}.toml"));
        std::fs::write(&file, toml).unwrap();
        let mut args =
            vec!["bertfit".to_string(), "train".into(), "--config".into(), file.display().to_string()];
        args.extend(cmdline.iter().map(|s| s.to_string()));
        let cli = crate::cli::command();
        let out = expand(args.into_iter().map(OsString::from).collect(), &cli)?;
        Ok(out.args.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn each_kind_of_flag_becomes_its_command_line_form() {
        let args = expand_with(
            "learning_rate = 2e-5\ndo_train = true\ndo-eval = false\nno_shuffle = true\nstreaming = false\n\
             num_train_epochs = 3\nlabel_separator = \"-\"\n",
            &[],
        )
        .unwrap();
        for want in [
            "--learning-rate=2e-5",
            "--do-train=true",
            "--do-eval=false",
            "--no-shuffle",
            "--epochs=3",
            "--label-separator=-",
        ] {
            assert!(args.contains(&want.to_string()), "{want} not in {args:?}");
        }
        assert!(!args.iter().any(|a| a.starts_with("--streaming")), "{args:?}");
    }

    #[test]
    fn the_command_line_wins_by_name_alias_and_conflict() {
        let args = expand_with(
            "epochs = 5\ndata = \"a.csv\"\nseed = 1\n",
            &["--num-train-epochs", "2", "--train-file=b.csv"],
        )
        .unwrap();
        assert!(!args.iter().any(|a| a.starts_with("--epochs") || a.starts_with("--data")), "{args:?}");
        assert!(args.contains(&"--seed=1".to_string()), "{args:?}");
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        let cases = [
            ("lerning_rate = 1.0", "key 'lerning_rate': is not a flag"),
            ("deepspeed = \"x.json\"", "key 'deepspeed': is a Hugging Face"),
            ("no_shuffle = \"yes\"", "key 'no_shuffle': --no-shuffle is a switch"),
            ("seed = [1, 2]", "key 'seed': --seed takes one value"),
            ("config = \"other.toml\"", "key 'config': a config file cannot"),
            ("epochs = 3\nnum_train_epochs = 4", "sets the same flag as key"),
            ("seed = \n", "TOML parse error at line 1"),
            (
                "learning_rate = \"1e-3\"",
                "key 'learning_rate': invalid value '1e-3': --learning-rate takes a number",
            ),
            ("do_train = \"true\"", "key 'do_train': invalid value 'true': --do-train takes true or false"),
            (
                "num_train_epochs = \"3\"",
                "key 'num_train_epochs': invalid value '3': --epochs takes a number",
            ),
            ("seed = true", "key 'seed': invalid value true: --seed takes a whole number"),
            ("device = 0", "key 'device': invalid value 0: --device takes text"),
        ];
        for (toml, want) in cases {
            let err = expand_with(toml, &[]).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(".toml: "), "{toml:?}: {err}");
        }
    }
}
