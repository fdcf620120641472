//! When to evaluate, save and stop: HF Trainer's `TrainerControl` idea, as a pure function of the
//! step count and the settings, so the training loop only asks and acts.
use super::args::{SaveStrategy, TrainArgs};

/// What the settings ask for after an optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Evaluate on the validation rows (`--eval-steps`, with `do_eval`).
    pub evaluate: bool,
    /// Write `checkpoint-<step>` (`--save-strategy steps`).
    pub save: bool,
}

/// Why an epoch's loop ended before its last batch (any number of reasons at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stop {
    /// `--max-steps` was reached.
    pub max_steps: bool,
    /// A stop was requested (a signal, agreed by every rank): save and end the run.
    pub interrupted: bool,
    /// Early stopping's patience ran out.
    pub early: bool,
}

impl Stop {
    pub fn any(&self) -> bool {
        self.max_steps || self.interrupted || self.early
    }

    /// The run ends after this epoch (an interrupt ends it at once, before the epoch's report).
    pub fn ends_run(&self) -> bool {
        self.max_steps || self.early
    }
}

/// The settings the decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    pub do_eval: bool,
    pub eval_steps: Option<usize>,
    pub save_strategy: SaveStrategy,
    pub save_steps: usize,
    pub max_steps: Option<usize>,
    /// HF's eval_delay: steps before which eval steps do not evaluate.
    pub eval_delay: f64,
    /// The run's last optimizer step (`max_steps`, or every epoch's steps).
    pub last_step: usize,
    /// The run's last epoch: as many as `max_steps` needs when it is given (HF's
    /// `set_initial_training_values`: max_steps overrides num_train_epochs), else `--epochs`.
    pub last_epoch: usize,
    /// HF's end of training (`DefaultFlowCallback.on_step_end` at `max_steps`): save under
    /// `--save-strategy steps` (`Conventions::final_checkpoint`), and evaluate under eval steps
    /// without per-epoch evaluations (`Conventions::hf_trainer`), whatever the step's multiple.
    pub final_save: bool,
    pub final_eval: bool,
}

impl Control {
    /// `max_steps`: where the run stops ([`super::setup::max_steps`]); `steps_per_epoch`:
    /// optimizer steps of one epoch.
    pub fn new(args: &TrainArgs, max_steps: Option<usize>, steps_per_epoch: usize) -> Control {
        let c = &args.conventions;
        Control {
            last_step: max_steps.unwrap_or(steps_per_epoch * args.epochs),
            last_epoch: last_epoch(args.epochs, max_steps, steps_per_epoch),
            final_save: c.final_checkpoint,
            final_eval: c.hf_trainer && !c.eval_each_epoch,
            do_eval: args.do_eval,
            eval_steps: args.recipe.eval_steps,
            save_strategy: args.save_strategy,
            save_steps: args.save_steps,
            max_steps,
            eval_delay: c.eval_delay,
        }
    }

    /// After optimizer step `global_step` (counted from 1).
    pub fn after_step(&self, global_step: usize) -> Due {
        let last = global_step >= self.last_step;
        let steps = self.save_strategy == SaveStrategy::Steps;
        let eval_steps = |n: usize| global_step.is_multiple_of(n) || (last && self.final_eval);
        Due {
            evaluate: self.do_eval
                && self.eval_steps.is_some_and(eval_steps)
                && self.eval_delay <= global_step as f64,
            save: steps && (global_step.is_multiple_of(self.save_steps) || (last && self.final_save)),
        }
    }

    pub fn reached_max_steps(&self, global_step: usize) -> bool {
        self.max_steps.is_some_and(|m| global_step >= m)
    }

    /// After an epoch the run goes on from: `--save-strategy epoch` saves the next epoch's start.
    pub fn save_after_epoch(&self) -> bool {
        self.save_strategy == SaveStrategy::Epoch
    }
}

/// The epochs `max_steps` optimizer steps take at `steps_per_epoch` (HF's
/// `max_steps // per_epoch + int(max_steps % per_epoch > 0)`), or `epochs` without it.
fn last_epoch(epochs: usize, max_steps: Option<usize>, steps_per_epoch: usize) -> usize {
    max_steps.map_or(epochs, |m| m.div_ceil(steps_per_epoch.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> Control {
        Control {
            do_eval: true,
            eval_steps: Some(3),
            save_strategy: SaveStrategy::Steps,
            save_steps: 4,
            max_steps: Some(10),
            eval_delay: 0.0,
            last_step: 10,
            last_epoch: 4,
            final_save: false,
            final_eval: false,
        }
    }

    #[test]
    fn evaluates_and_saves_on_their_multiples() {
        let c = control();
        let due: Vec<Due> = (1..=12).map(|s| c.after_step(s)).collect();
        let evals: Vec<usize> = (1..=12).filter(|&s| due[s - 1].evaluate).collect();
        let saves: Vec<usize> = (1..=12).filter(|&s| due[s - 1].save).collect();
        assert_eq!(evals, [3, 6, 9, 12]);
        assert_eq!(saves, [4, 8, 12]);
    }

    #[test]
    fn no_evaluation_without_do_eval_and_no_step_saves_by_epoch() {
        let c = Control { do_eval: false, save_strategy: SaveStrategy::Epoch, ..control() };
        assert!((1..=12).all(|s| c.after_step(s) == Due::default()));
        assert!(c.save_after_epoch());
        assert!(!control().save_after_epoch());
        let never = Control { save_strategy: SaveStrategy::No, ..control() };
        assert!((1..=12).all(|s| !never.after_step(s).save) && !never.save_after_epoch());
    }

    #[test]
    fn hf_saves_and_evaluates_at_the_last_step_too() {
        let hf = Control { final_save: true, final_eval: true, last_step: 7, ..control() };
        let due = hf.after_step(7);
        assert!(due.save && due.evaluate, "{due:?}");
        assert!(!control().after_step(7).save && !control().after_step(7).evaluate);
        assert_eq!(hf.after_step(5), Due::default());
        let by_epoch = Control { save_strategy: SaveStrategy::Epoch, ..hf };
        assert!(!by_epoch.after_step(7).save, "epoch saves come at the epoch's end");
    }

    #[test]
    fn max_steps_is_reached_at_and_after_it() {
        let c = control();
        assert!(!c.reached_max_steps(9));
        assert!(c.reached_max_steps(10) && c.reached_max_steps(11));
        assert!(!Control { max_steps: None, ..c }.reached_max_steps(usize::MAX));
    }

    #[test]
    fn eval_delay_holds_evaluations_back_until_its_step() {
        let c = Control { eval_delay: 6.0, final_eval: true, ..control() };
        let evals: Vec<usize> = (1..=10).filter(|&s| c.after_step(s).evaluate).collect();
        assert_eq!(evals, [6, 9, 10], "HF: eval_delay <= global_step, the last step included");
        let never = Control { eval_delay: f64::NAN, ..control() };
        assert!((1..=12).all(|s| !never.after_step(s).evaluate), "NaN compares false, as in Python");
    }

    #[test]
    fn max_steps_sets_the_epochs_whatever_epochs_says() {
        assert_eq!(last_epoch(1, Some(30), 8), 4, "30 steps of 8 an epoch take 4 epochs, not 1");
        assert_eq!(last_epoch(20, Some(3), 8), 1);
        assert_eq!(last_epoch(3, Some(16), 8), 2);
        assert_eq!(last_epoch(3, None, 8), 3);
    }

    #[test]
    fn an_interrupt_stops_the_epoch_but_is_not_an_end_of_run_by_itself() {
        let interrupted = Stop { interrupted: true, ..Stop::default() };
        assert!(interrupted.any() && !interrupted.ends_run());
        assert!(Stop { early: true, ..Stop::default() }.ends_run());
        assert!(Stop { max_steps: true, ..Stop::default() }.ends_run());
        assert!(!Stop::default().any());
    }
}
