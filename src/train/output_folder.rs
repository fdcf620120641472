//! The run's output folder before anything is read: taken for this run alone (a lock), and either
//! fresh, or continued from a checkpoint (`--resume-from-checkpoint PATH|latest|auto`), or this
//! very run already finished (`auto`: nothing to do), or refused because it holds another run
//! (unless `--overwrite`, which sets the old run's checkpoints aside).
use std::path::{Path, PathBuf};

use serde_json::json;

use super::args::TrainArgs;
use super::checkpoint;
use super::identity::RunIdentity;
use crate::error::{Error, Result};
use crate::output::RunLock;

/// What [`OutputFolder::claim`] found.
pub struct OutputFolder {
    /// Held for the run's lifetime (rank 0 of a training run).
    pub lock: Option<RunLock>,
    /// The checkpoint folder this run continues from.
    pub resume: Option<PathBuf>,
    /// `auto` found this very run finished in the folder, at this step.
    pub finished_at: Option<usize>,
}

impl OutputFolder {
    /// Locks the folder (rank 0 of a training run), picks the checkpoint to resume from, and
    /// refuses a folder that holds a previous run unless told to replace it.
    pub fn claim(args: &TrainArgs, identity: &RunIdentity, is_main: bool) -> Result<OutputFolder> {
        let dir = &args.output_dir;
        // Taken before anything in the folder is looked at.
        let lock = (args.do_train && is_main).then(|| RunLock::acquire(dir)).transpose()?;
        let auto = args.resume_from_checkpoint.as_deref() == Some("auto");
        let finished_at = if auto && args.do_train { finished_run(dir, identity)? } else { None };
        let resume = if finished_at.is_some() {
            None
        } else {
            resume_folder(args.resume_from_checkpoint.as_deref(), dir)?
        };
        if args.do_train && resume.is_none() && finished_at.is_none() {
            check_output(dir, args.overwrite, auto)?;
        }
        Ok(OutputFolder { lock, resume, finished_at })
    }
}

/// `--overwrite`: the previous run's checkpoints moved aside (its model stays until this run's
/// save replaces it; its checkpoints would be taken for this run's by `latest`). The note to
/// give, if any were moved.
pub fn set_aside_old_checkpoints(dir: &Path) -> Result<Option<String>> {
    let old: Vec<PathBuf> = checkpoint::list(dir).into_iter().map(|(_, p)| p).collect();
    crate::output::set_aside(dir, &old)?;
    Ok((!old.is_empty()).then(|| {
        format!(
            "--overwrite: the previous run's {} checkpoints are set aside in {} until this run saves its model",
            old.len(),
            dir.join(crate::output::SET_ASIDE).display()
        )
    }))
}

/// Refuses to write into a folder that holds anything of a previous run, unless told to: a
/// finished run must not be lost to a typo. Checked before anything is read, so the refusal comes
/// at once; leftovers of a save that crashed are put right first. `logs_only_ok`
/// (`--resume-from-checkpoint auto` with no checkpoint): a run killed before its first checkpoint
/// left only its metrics log, which the fresh start replaces.
fn check_output(dir: &Path, overwrite: bool, logs_only_ok: bool) -> Result<()> {
    crate::output::recover(dir)?;
    let previous = crate::output::previous_run_files(dir);
    let names: Vec<String> =
        previous.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    let logs_only = names.iter().all(|n| n.starts_with("metrics.jsonl"));
    let may_write = previous.is_empty() || overwrite || (logs_only_ok && logs_only);
    if !may_write {
        return Err(Error::usage(
            "--output-dir",
            format!(
                "{} holds a previous run ({}); pass --overwrite to replace it",
                dir.display(),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Where `--resume-from-checkpoint` (a folder, `latest`, or `auto`: the newest checkpoint if
/// there is one, else a fresh start) continues from, if anywhere.
fn resume_folder(spec: Option<&str>, output_dir: &Path) -> Result<Option<PathBuf>> {
    match spec {
        None => Ok(None),
        Some("auto") => Ok(checkpoint::list(output_dir).pop().map(|(_, p)| p)),
        Some(spec) => checkpoint::resolve(spec, output_dir).map(Some),
    }
}

/// `--resume-from-checkpoint auto` over a folder whose run already finished (its final
/// trainer_state.json says so): that run's step if it is this run, an error naming the
/// differences if it is another, `None` if the folder holds no finished run.
fn finished_run(output_dir: &Path, identity: &RunIdentity) -> Result<Option<usize>> {
    let path = output_dir.join(checkpoint::TRAINER_STATE);
    if !path.is_file() {
        return Ok(None);
    }
    // bertfit_state.json beside it (older runs kept these fields in trainer_state.json).
    let mut state = checkpoint::read_json_object(&path)?;
    let own = output_dir.join(checkpoint::BERTFIT_STATE);
    if own.is_file() {
        state.extend(checkpoint::read_json_object(&own)?);
    }
    if state.get("bertfit_finished") != Some(&json!(true)) {
        return Ok(None);
    }
    let theirs: RunIdentity = state
        .get("bertfit_identity")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let differences = theirs.differences(identity);
    if !differences.is_empty() {
        return Err(Error::usage(
            "--resume-from-checkpoint",
            format!(
                "auto: {} holds another run, finished; it differs in {}. Pass --overwrite to replace it",
                output_dir.display(),
                differences.join("; ")
            ),
        ));
    }
    Ok(state.get("global_step").and_then(|v| v.as_u64()).map(|v| v as usize))
}
