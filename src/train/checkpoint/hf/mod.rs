//! Checkpoints that cross over with transformers' Trainer (5.24, torch 2.11).
//!
//! - Writing ([`write`]): a bertfit AdamW checkpoint also holds HF's `optimizer.pt` (the
//!   `torch.optim.AdamW.state_dict()` HF Trainer would save: its two parameter groups, decay then
//!   no decay, with the state indexed in that order) and `scheduler.pt` (`LambdaLR.state_dict()`),
//!   so `Trainer.train(resume_from_checkpoint=...)` continues it with bertfit's moments and
//!   schedule position. `rng_state.pth` is not written: its Python and NumPy generator states have
//!   no bertfit counterpart, and HF resumes without it (`_load_rng_state` only logs). Nor is
//!   `training_args.bin`: HF writes it but never reads it on resume. Plain Adam (the seed
//!   script's) has no HF optimizer name, so its checkpoints get neither file.
//! - Reading ([`read`]): an HF Trainer checkpoint (optimizer.pt, scheduler.pt, trainer_state.json,
//!   the model; no training_state.safetensors) resumes a bertfit AdamW run: weights, moments and
//!   step counts, the schedule's position, global_step. Every difference from this run that would
//!   make the next steps another run's is refused by name.
use std::path::Path;

use super::{TRAINER_STATE, TRAINING_STATE};
use crate::train::optim::hf_decays;

mod read;
mod write;

pub use write::files as write_files;

pub const OPTIMIZER: &str = "optimizer.pt";
pub const SCHEDULER: &str = "scheduler.pt";

/// Whether `dir` is an HF Trainer checkpoint rather than bertfit's own: HF's optimizer, scheduler
/// and trainer state, and no bertfit training state.
pub fn is_hf_checkpoint(dir: &Path) -> bool {
    !dir.join(TRAINING_STATE).is_file()
        && [OPTIMIZER, SCHEDULER, TRAINER_STATE].iter().all(|f| dir.join(f).is_file())
}

/// HF's optimizer parameter order: `Trainer.create_optimizer` makes a decay group and a no-decay
/// group, each in `model.named_parameters()` order, and `Optimizer.state_dict()` numbers the
/// parameters group after group. Returns, for the decay group and the no-decay group, the indices
/// into `names` (bertfit's parameters, in named_parameters order).
pub fn hf_groups(names: &[String]) -> [Vec<usize>; 2] {
    let (decay, no_decay): (Vec<usize>, Vec<usize>) = (0..names.len()).partition(|&i| hf_decays(&names[i]));
    [decay, no_decay]
}
