//! `bertfit run-classification --help` and the README's flag table, both rendered from the table.
use super::table::{counts, Disposition, Flag, Kind, FLAGS};

pub const ABOUT: &str = "What replaces `python run_classification.py ARGS`: HF's flags, defaults and files";

fn takes(f: &Flag) -> String {
    match f.kind {
        Kind::Bool => "[BOOL]".into(),
        Kind::BoolValue => "BOOL".into(),
        Kind::Int => "INT".into(),
        Kind::Float => "FLOAT".into(),
        Kind::Str => "STR".into(),
        Kind::StrList => "STR [STR ...]".into(),
        Kind::Choice(c) => format!("{{{}}}", c.join(",")),
    }
}

/// What bertfit does with the flag, in words.
pub fn disposition(d: &Disposition) -> String {
    match d {
        Disposition::Same => "same".into(),
        Disposition::NoEffect(why) => format!("accepted, no effect here ({why})"),
        Disposition::Refused(why) => format!("refused: {why}"),
    }
}

pub fn render_help() -> String {
    let (same, no_effect, refused) = counts();
    let mut out = format!(
        "{ABOUT}\n\nUsage: bertfit run-classification [--FLAG VALUE ...] | ARGS.json\n\n\
         Every flag of run_classification.py (ModelArguments, DataTrainingArguments) and of transformers\n\
         5.24's TrainingArguments, with HfArgumentParser's rules (--foo_bar or --foo-bar, --name=value,\n\
         unique prefixes, --no_<flag> for booleans that default to true). {same} do the same, {no_effect} are\n\
         accepted with no effect here (said once when given another value), {refused} are refused with\n\
         another value than HF's default.\n\nFlags (HF's default; what bertfit does):\n"
    );
    for f in FLAGS {
        let default = if f.default == "MISSING" { "(required)" } else { f.default };
        out.push_str(&format!(
            "  --{} {}\n      default {default}; {}\n",
            f.name,
            takes(f),
            disposition(&f.disposition)
        ));
    }
    out
}

/// The README's table: flag | HF default | what bertfit does.
pub fn render_table() -> String {
    let mut out = String::from("| flag | HF default | bertfit |\n|---|---|---|\n");
    for f in FLAGS {
        let default = if f.default == "MISSING" { "(required)" } else { f.default };
        out.push_str(&format!(
            "| `--{}` | `{}` | {} |\n",
            f.name,
            default,
            disposition(&f.disposition).replace('|', "\\|")
        ));
    }
    let (same, no_effect, refused) = counts();
    out.push_str(&format!("\n{same} same, {no_effect} accepted with no effect, {refused} refused.\n"));
    out
}
