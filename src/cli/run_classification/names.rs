//! bertfit's flag names in run-classification's errors, put back as the HF flags the user typed.
//! The converted settings are checked (and trained) by the same code as `bertfit train`'s, whose
//! messages name `--learning-rate`; a run_classification.py command line said `--learning_rate`.
use super::table::FLAGS;
use crate::error::Error;

/// bertfit flags whose HF flag is not their own name with underscores.
const RENAMED: &[(&str, &str)] = &[
    ("--model", "--model_name_or_path"),
    ("--epochs", "--num_train_epochs"),
    ("--batch-size", "--per_device_train_batch_size"),
    ("--eval-batch-size", "--per_device_eval_batch_size"),
    ("--max-length", "--max_seq_length"),
    ("--label-smoothing", "--label_smoothing_factor"),
    ("--text-column", "--text_column_names"),
    ("--label-column", "--label_column_name"),
    // transformers 5 reads a --warmup_steps below 1 as the ratio.
    ("--warmup-ratio", "--warmup_steps"),
    ("--padding", "--pad_to_max_length"),
];

/// The HF flag behind a bertfit flag (or an HF flag itself), if run_classification.py has one.
pub fn hf_flag(flag: &str) -> Option<String> {
    if let Some((_, hf)) = RENAMED.iter().find(|(ours, _)| *ours == flag) {
        return Some(hf.to_string());
    }
    let name = flag.strip_prefix("--")?.replace('-', "_");
    FLAGS.iter().any(|f| f.name == name).then(|| format!("--{name}"))
}

/// A usage error with its flag, and the flags its message mentions, in HF's names; any other
/// error as it is.
pub fn in_hf_terms(e: Error) -> Error {
    match e {
        Error::Usage { flag, msg } => {
            Error::Usage { flag: hf_flag(&flag).unwrap_or(flag), msg: mentions_in_hf_terms(&msg) }
        }
        other => other,
    }
}

/// Every `--flag` token of `msg` that has an HF name, renamed; the rest of the text as it is.
fn mentions_in_hf_terms(msg: &str) -> String {
    let is_flag_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail[2..].find(|c: char| !is_flag_char(c)).map_or(tail.len(), |n| n + 2);
        let token = &tail[..end];
        out.push_str(&hf_flag(token).unwrap_or_else(|| token.to_string()));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bertfit_flags_become_the_hf_flags_a_user_typed() {
        assert_eq!(hf_flag("--learning-rate").as_deref(), Some("--learning_rate"));
        assert_eq!(hf_flag("--max-length").as_deref(), Some("--max_seq_length"));
        assert_eq!(hf_flag("--learning_rate").as_deref(), Some("--learning_rate"));
        assert_eq!(hf_flag("--precision"), None, "no HF flag of that name");
    }

    #[test]
    fn a_usage_error_is_said_in_hf_terms() {
        let e =
            in_hf_terms(Error::usage("--adam-epsilon", "must be positive; see --max-length, --device cpu"));
        assert_eq!(e.to_string(), "--adam_epsilon: must be positive; see --max_seq_length, --device cpu");
        let e = in_hf_terms(Error::usage(
            "--do-train",
            "nothing to do: give --do-train, --do-eval or --do-predict",
        ));
        assert_eq!(e.to_string(), "--do_train: nothing to do: give --do_train, --do_eval or --do_predict");
        // A trailing `--` and text around are kept.
        assert_eq!(mentions_in_hf_terms("a -- b --"), "a -- b --");
        let other = in_hf_terms(Error::Runtime("--learning-rate".into()));
        assert!(other.to_string().contains("--learning-rate"), "{other}");
    }
}
