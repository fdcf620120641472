//! `bertfit train --config FILE.toml` makes the run its flags make on the command line; the command
//! line wins; bad files are refused naming the file and key. And the plain progress lines a run
//! writes when stderr is not a terminal.
use std::path::Path;

use super::common::{assert_refused, read_json, run_bertfit, temp_dir, tiny_model, write_csv};

fn data(dir: &Path) -> String {
    let path = dir.join("data.csv");
    let mut rows: Vec<(String, String, &str)> =
        (0..12).map(|i| (format!("training text number {i}"), (i % 2).to_string(), "train")).collect();
    rows.extend((0..4).map(|i| (format!("validation text {i}"), (i % 2).to_string(), "val")));
    write_csv(&path, &rows);
    path.to_str().unwrap().to_string()
}

/// training_args.json of a finished run, without the output folder (which differs by design).
fn settings(out: &Path) -> serde_json::Value {
    let mut v = read_json(&out.join("training_args.json"));
    v.as_object_mut().unwrap().remove("output_dir");
    v
}

fn train(args: &[&str]) -> String {
    let (code, stdout, stderr) = run_bertfit(args);
    assert_eq!(code, 0, "bertfit {args:?} failed:\n{stdout}\n{stderr}");
    stderr
}

#[test]
fn a_config_file_makes_the_command_line_run_and_the_command_line_wins() {
    let dir = temp_dir("config_file_equal");
    let model = tiny_model(&dir, 2, None, &[]);
    let (m, d) = (model.to_str().unwrap(), data(&dir));
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (cli_out, file_out, win_out) = (out("cli"), out("file"), out("win"));
    // One flag of each kind: strings, an integer, floats, an optional bool, a switch, an HF alias.
    #[rustfmt::skip]
    let flags = [
        "--model", m, "--data", &d, "--num_train_epochs", "2", "--batch-size", "4", "--max-length",
        "16", "--learning-rate", "2e-5", "--optim", "adamw", "--weight-decay", "0.01", "--warmup-steps",
        "2", "--do-train", "--do_eval", "false", "--no-shuffle", "--device", "cpu",
    ];
    let mut args = vec!["train", "--output-dir", &cli_out];
    args.extend(flags);
    train(&args);

    let toml = dir.join("run.toml");
    let text = format!(
        "# every setting of the command line above\nmodel = {m:?}\ndata = {d:?}\nnum_train_epochs = 2\n\
         batch-size = 4\nmax_length = 16\nlearning_rate = 2e-5\noptim = \"adamw\"\nweight_decay = 0.01\n\
         warmup_steps = 2\ndo_train = true\ndo_eval = false\nno_shuffle = true\ndevice = \"cpu\"\n\
         streaming = false\n"
    );
    std::fs::write(&toml, text).unwrap();
    let t = toml.to_str().unwrap();
    train(&["train", "--config", t, "--output-dir", &file_out]);
    let (from_cli, from_file) = (settings(Path::new(&cli_out)), settings(Path::new(&file_out)));
    assert_eq!(from_cli, from_file);
    assert_eq!(from_file["learning_rate"], 2e-5);
    assert_eq!(from_file["do_eval"], false);

    // The command line wins, by name and by alias; the file's other settings stay.
    train(&[
        "train",
        "--output-dir",
        &win_out,
        "--learning-rate=3e-5",
        "--epochs",
        "1",
        &format!("--config={t}"),
    ]);
    let won = settings(Path::new(&win_out));
    assert_eq!((won["learning_rate"].clone(), won["epochs"].clone()), (3e-5.into(), 1.into()));
    assert_eq!(won["recipe"]["weight_decay"], 0.01);
    assert_eq!(won["shuffle"], false);
}

#[test]
fn bad_config_files_are_refused_naming_the_file_and_key() {
    let dir = temp_dir("config_file_refused");
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        ("unknown.toml", "lerning_rate = 1e-5\n", &["key 'lerning_rate'", "is not a flag"]),
        ("hf.toml", "deepspeed = \"ds.json\"\n", &["key 'deepspeed'", "Hugging Face training flag"]),
        ("type.toml", "batch_size = \"four\"\n", &["key 'batch_size'", "invalid value 'four'"]),
        ("float.toml", "batch_size = 16.0\n", &["key 'batch_size'", "invalid value '16.0'"]),
        ("switch.toml", "no_shuffle = 1\n", &["key 'no_shuffle'", "give true or false"]),
        ("syntax.toml", "seed = 42\nlearning_rate = = 1\n", &["line 2"]),
    ];
    for (name, text, needles) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let mut want = vec![p];
        want.extend(needles);
        let args = ["train", "--model", "m", "--data", "d.csv", "--output-dir", o, "--config", p];
        let err = assert_refused(&args, &want);
        assert!(!out.exists(), "{name}: a refused run wrote {}:\n{err}", out.display());
    }
    assert_refused(
        &["train", "--model", "m", "--data", "d.csv", "--output-dir", o, "--config", "absent.toml"],
        &["absent.toml"],
    );
}

/// With stderr not a terminal (captured here), a line every --logging-steps steps with the step,
/// the run's steps, the epoch, loss, learning rate, speed and time left.
#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let dir = temp_dir("config_file_logging");
    let model = tiny_model(&dir, 2, None, &[]);
    let (m, d) = (model.to_str().unwrap(), data(&dir));
    let out = dir.join("out");
    #[rustfmt::skip]
    let stderr = train(&[
        "train", "--model", m, "--data", &d, "--output-dir", out.to_str().unwrap(), "--epochs", "2",
        "--batch-size", "2", "--max-length", "16", "--logging-steps", "4", "--learning-rate", "2e-5",
        "--device", "cpu",
    ]);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("step ")).collect();
    // 6 steps an epoch, 12 in all: lines at steps 4, 8 and 12.
    let heads: Vec<String> = lines.iter().map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(heads, ["step 4/12 (epoch 1)", "step 8/12 (epoch 2)", "step 12/12 (epoch 2)"], "{stderr}");
    for line in &lines {
        let fields: Vec<&str> = line.split(", ").collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert!(fields[1].strip_prefix("loss ").and_then(|v| v.parse::<f64>().ok()).is_some(), "{line}");
        assert_eq!(fields[2], "lr 2.0e-05", "{line}");
        let speed = fields[3].strip_suffix(" samples/s").and_then(|v| v.parse::<f64>().ok());
        assert!(speed.is_some_and(|s| s > 0.0), "{line}");
        assert!(fields[4].starts_with("ETA ") && fields[4].ends_with('s'), "{line}");
    }
    assert!(lines[2].ends_with("ETA 0s"), "{}", lines[2]);
    assert!(!stderr.contains('\r') && !stderr.contains("\x1b["), "no bar drawing in a log:\n{stderr}");
}
