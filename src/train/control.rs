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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub do_eval: bool,
    pub eval_steps: Option<usize>,
    pub save_strategy: SaveStrategy,
    pub save_steps: usize,
    pub max_steps: Option<usize>,
}

impl Control {
    pub fn new(args: &TrainArgs) -> Control {
        Control {
            do_eval: args.do_eval,
            eval_steps: args.recipe.eval_steps,
            save_strategy: args.save_strategy,
            save_steps: args.save_steps,
            max_steps: args.max_steps,
        }
    }

    /// After optimizer step `global_step` (counted from 1).
    pub fn after_step(&self, global_step: usize) -> Due {
        Due {
            evaluate: self.do_eval && self.eval_steps.is_some_and(|n| global_step.is_multiple_of(n)),
            save: self.save_strategy == SaveStrategy::Steps && global_step.is_multiple_of(self.save_steps),
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
    fn max_steps_is_reached_at_and_after_it() {
        let c = control();
        assert!(!c.reached_max_steps(9));
        assert!(c.reached_max_steps(10) && c.reached_max_steps(11));
        assert!(!Control { max_steps: None, ..c }.reached_max_steps(usize::MAX));
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
