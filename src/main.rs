//! Thin entry point: parse flags, run, print the error chain and exit non-zero on failure.
use std::process::ExitCode;

use bertfit::cli::run_classification::{self, Request};
use bertfit::cli::{Cli, Command, ParseFailure};
use bertfit::train::report::{Console, JsonLines, Tee};

fn run(cli: Cli) -> bertfit::Result<()> {
    match cli.command {
        Command::Train(flags) => {
            // Not a training setting (nothing saved depends on it): the console's alone.
            let logging_steps = usize::try_from(flags.logging_steps).unwrap_or(usize::MAX);
            let args = flags.into_args()?;
            stop_on_signal();
            let rank = bertfit::dist::env::DistEnv::from_env()?.map_or(0, |e| e.rank);
            let mut reporter = reporter(&args, logging_steps)?;
            bertfit::commands::train::train(&args, reporter.as_mut())?;
            if args.do_train && rank == 0 {
                eprintln!("saved the fine-tuned model to {}", args.output_dir.display());
            }
            Ok(())
        }
        Command::RunClassification(flags) => match flags.request()? {
            Request::Help => {
                print!("{}", run_classification::help::render_help());
                Ok(())
            }
            Request::FlagTable => {
                print!("{}", run_classification::help::render_table());
                Ok(())
            }
            Request::Run { args, notes, warnings } => {
                for line in notes.iter().chain(&warnings) {
                    eprintln!("{line}");
                }
                let run = || {
                    let args = bertfit::commands::run_classification::prepare(*args)?;
                    stop_on_signal();
                    let mut reporter = reporter(&args, 50)?;
                    bertfit::commands::run_classification::run(&args, reporter.as_mut()).map(drop)
                };
                run().map_err(run_classification::names::in_hf_terms)
            }
        },
        Command::CheckData(flags) => {
            // Only the tokenizer's files: check-data never reads the weights.
            let dir = bertfit::weights::resolve::resolve_dir(&flags.model)?;
            let tokenizer = bertfit::data::tokenize::Tokenizer::from_dir(&dir)?;
            let report = bertfit::data::check::check(
                &flags.data.source()?,
                &flags.data.columns(),
                &tokenizer,
                flags.num_labels,
                &flags.data.label_format()?,
            )?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", bertfit::data::check::render(&report, flags.max_length));
            Ok(())
        }
        Command::Predict(flags) => {
            let args = flags.into_args()?;
            let s = bertfit::predict::predict(&args, &mut Console::default())?;
            println!(
                "predicted {} rows in {:.1} s ({:.1} rows/s): {}",
                s.rows,
                s.seconds,
                s.rows_per_second(),
                s.output.display()
            );
            Ok(())
        }
        Command::Evaluate(flags) => {
            let json = flags.json;
            let args = flags.into_args()?;
            let (_, metrics) = bertfit::predict::evaluate(&args, &mut Console::default())?;
            if json {
                println!("{}", serde_json::Value::Object(metrics));
            } else {
                print!("{}", bertfit::predict::evaluate::render(&metrics));
            }
            Ok(())
        }
        Command::Plot(flags) => {
            let output = flags.output.unwrap_or_else(|| bertfit::plot::default_output(&flags.dir));
            let metrics = bertfit::plot::read_metrics(&flags.dir.join("metrics.jsonl"))?;
            bertfit::plot::plot(&metrics, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::BenchPeak(flags) => {
            bertfit::commands::bench_peak::run(&flags)?.iter().for_each(|l| println!("{l}"));
            Ok(())
        }
        Command::DistSelftest(flags) => {
            bertfit::dist::selftest::run(flags.options(), |line| println!("{line}"))
        }
    }
}

/// The terminal gets the seed's lines and progress; metrics.jsonl gets every record. In a
/// multi-process run only rank 0 reports (the others compute the same numbers).
fn reporter(
    args: &bertfit::train::TrainArgs,
    logging_steps: usize,
) -> bertfit::Result<Box<dyn bertfit::train::report::Reporter>> {
    let rank = bertfit::dist::env::DistEnv::from_env()?.map_or(0, |e| e.rank);
    let mut reporter: Box<dyn bertfit::train::report::Reporter> = if rank == 0 {
        Box::new(Tee(vec![
            Box::new(Console::new(logging_steps).with_run_length(args.epochs, args.max_steps)),
            Box::new(JsonLines::new(&args.output_dir.join("metrics.jsonl"))),
        ]))
    } else {
        Box::new(bertfit::train::report::Silent)
    };
    if let Some(pause) = bertfit::train::fault::StepPause::from_env() {
        reporter = Box::new(Tee(vec![reporter, Box::new(pause)]));
    }
    Ok(reporter)
}

/// Exit status after a stop signal: the step finished, a checkpoint and the model were saved.
const STOPPED: u8 = 130;
/// A second stop signal within this long of the first is taken as the same stop, delivered twice.
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// Exit status after a second stop signal: quit at once, nothing more written (every earlier save
/// is complete: saves are swapped in whole).
const QUIT_AT_ONCE: i32 = 131;

/// The first Ctrl-C (or SIGTERM) asks the loop to stop after the current step and save; a second
/// one, a second or more later, ends the process at once. The handler runs on ctrlc's own thread
/// and must not panic (a panic there would end that thread, and every later signal would go
/// unanswered): its messages go out with `write!`, whose errors (stderr closed, a broken pipe)
/// are ignored.
fn stop_on_signal() {
    use std::io::Write;
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let handler = || {
        if bertfit::train::interrupt::stop_requested() {
            // A cluster's one stop often arrives twice within moments (the scheduler signals the
            // job's processes, and the batch script passes its own signal on): that is still one
            // stop, and quitting at once would lose the save it asked for.
            if FIRST.get().is_some_and(|t| t.elapsed() < REPEAT_WINDOW) {
                let _ = writeln!(
                    std::io::stderr(),
                    "
(the same stop signal again, within a second: still saving)"
                );
                return;
            }
            let _ =
                writeln!(std::io::stderr(), "\nsecond stop signal: quitting at once (exit {QUIT_AT_ONCE})");
            // _exit: no destructors or atexit handlers run on this thread while the main thread
            // may be inside libtorch or a save; nothing half-written is taken for finished (saves
            // are staged and swapped in whole; the next run clears the staging leftovers).
            // The output folder's lock file goes with the process (the kernel drops the lock).
            bertfit::output::remove_held_lock_files();
            // SAFETY: _exit only ends the process.
            unsafe { libc::_exit(QUIT_AT_ONCE) };
        }
        let _ = writeln!(
            std::io::stderr(),
            "\nstopping after the current step (press Ctrl-C again to quit at once)"
        );
        let _ = FIRST.set(std::time::Instant::now());
        bertfit::train::interrupt::request_stop();
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("warning: cannot install the Ctrl-C handler ({e}); Ctrl-C will end the run at once");
    }
}

fn report(e: &bertfit::Error) -> ExitCode {
    eprintln!("error: {}", bertfit::error::chain(e));
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    bertfit::train::startup::mark_launch();
    bertfit::machine::malloc::keep_freed_memory();
    let cli = match bertfit::cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ParseFailure::Refused(e)) => return report(&e),
        Err(ParseFailure::Clap(e)) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ bertfit::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            ExitCode::from(STOPPED)
        }
        Err(e) => report(&e),
    }
}
