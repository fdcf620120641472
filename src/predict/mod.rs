//! Using a fine-tuned model: `predict` writes each row of a data file back with the model's
//! answer, `evaluate` measures the model on labelled rows.
//!
//! - `saved`: a fine-tuned model folder loaded for inference (its classifier must be trained).
//! - `head`: what the logits mean (`problem_type`, `id2label`) and the columns they become.
//! - `input` / `output`: every column of a data file streamed in, the output written atomically.
//! - `run`: `bertfit predict`; `evaluate`: `bertfit evaluate`; `settings`: what both share.
pub mod evaluate;
pub mod head;
pub mod input;
pub mod output;
pub mod run;
pub mod saved;
pub mod settings;

pub use evaluate::{evaluate, EvalData, EvaluateArgs};
pub use head::Head;
pub use run::{predict, PredictArgs, PredictSummary};
pub use saved::SavedModel;
pub use settings::InferenceArgs;
