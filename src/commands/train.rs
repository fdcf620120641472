//! `bertfit train` as run_classification.py's main drives HF's Trainer: train (`do_train`) and
//! save the training metrics, evaluate on the validation rows (`do_eval`), predict on the test rows
//! (`do_predict`) and write `predict_results.txt`; every `*_results.json` through one
//! [`Results`] writer; last, the model card (`README.md`, `Trainer.create_model_card`). Only the
//! main process (rank 0) writes.
use serde_json::{json, Map, Value};

use super::model_card::{base_license, model_card, CardFacts, MODEL_CARD_FILE};
use crate::data::dataset::Split;
use crate::data::labels::ProblemType;
use crate::error::Result;
use crate::output::{write_atomic, Results};
use crate::train::report::Reporter;
use crate::train::{interrupt, Evaluation, TrainArgs, TrainSummary, Trainer};

/// Fine-tunes `args.model` on `args.data` as the settings say, telling `reporter` everything.
pub fn train(args: &TrainArgs, reporter: &mut dyn Reporter) -> Result<TrainSummary> {
    interrupt::clear();
    let mut trainer = Trainer::new(args, reporter)?;
    let mut results = Results::for_run(&trainer.args().output_dir);
    let write = trainer.is_main();
    let mut summary = TrainSummary::default();
    if trainer.args().do_train {
        summary = trainer.train()?;
        if summary.already_finished {
            return Ok(summary);
        }
        if write && (!summary.epochs.is_empty() || !results.path("train").exists()) {
            results.save("train", &train_metrics(&summary, trainer.started().elapsed().as_secs_f64()))?;
        }
    } else if trainer.args().do_eval {
        summary.eval = Some(trainer.evaluate(Split::Validation)?);
    }
    let epochs = trainer.args().do_train.then_some(summary.epochs.len() as f64);
    let mut eval_metrics = None;
    if let Some(eval) = summary.eval.as_ref().filter(|_| trainer.args().do_eval) {
        if write {
            eval_metrics = Some(save_split(&mut trainer, &mut results, "eval", eval, epochs)?);
        }
    }
    if trainer.args().do_predict {
        let test = trainer.evaluate(Split::Test)?;
        if write {
            write_predictions(&trainer, &test)?;
            if test.labels.is_some() {
                save_split(&mut trainer, &mut results, "test", &test, epochs)?;
            }
        }
    }
    if write && trainer.args().do_train {
        write_model_card(&trainer, eval_metrics.as_ref())?;
    }
    trainer.finish()?;
    Ok(summary)
}

/// `README.md` in the output folder beside the final model, as run_classification.py's
/// `trainer.create_model_card(finetuned_from=model_name_or_path, ...)` writes it.
fn write_model_card(trainer: &Trainer, eval: Option<&Map<String, Value>>) -> Result<()> {
    let args = trainer.args();
    let license = base_license(trainer.model_dir());
    let facts = CardFacts { world_size: trainer.world_size(), eval, license };
    write_atomic(&args.output_dir.join(MODEL_CARD_FILE), model_card(args, &facts).as_bytes())
}

/// train_results.json with HF's keys and units.
fn train_metrics(summary: &TrainSummary, runtime: f64) -> Map<String, Value> {
    let samples: f64 = summary.epochs.iter().map(|e| e.train_samples_per_second * e.train_seconds).sum();
    let loss = (!summary.epochs.is_empty())
        .then(|| summary.epochs.iter().map(|e| e.loss).sum::<f64>() / summary.epochs.len() as f64);
    let results = json!({
        "epoch": summary.epochs.len() as f64,
        "train_loss": loss,
        "train_runtime": runtime,
        "train_samples_per_second": samples / runtime.max(1e-9),
        "train_steps_per_second": summary.global_step as f64 / runtime.max(1e-9),
        "total_steps": summary.global_step,
    });
    results.as_object().cloned().unwrap_or_default()
}

/// `eval_results.json` / `test_results.json` with HF Trainer's keys (`eval_accuracy` a fraction,
/// `eval_loss`, `eval_runtime`, ...) and every metric of the problem type; the classification
/// report goes to the console.
fn save_split(
    trainer: &mut Trainer,
    results: &mut Results,
    prefix: &str,
    e: &Evaluation,
    epoch: Option<f64>,
) -> Result<Map<String, Value>> {
    let names = trainer.label_names().to_vec();
    let n = e.rows.len();
    let mut metrics = Map::new();
    if let Some(epoch) = epoch {
        metrics.insert("epoch".into(), json!(epoch));
    }
    if let Some(acc) = e.accuracy() {
        metrics.insert(format!("{prefix}_accuracy"), json!(acc));
    }
    metrics.extend(e.metrics(prefix, &names)?);
    metrics.insert(format!("{prefix}_runtime"), json!(e.seconds));
    metrics.insert(format!("{prefix}_samples"), json!(n));
    metrics.insert(format!("{prefix}_samples_per_second"), json!(n as f64 / e.seconds.max(1e-9)));
    results.save(prefix, &metrics)?;
    let summary = e.summary(&names)?;
    if !summary.is_empty() {
        trainer.reporter().note(&format!("{} rows ({prefix}_results.json):\n{summary}", e.split.name()));
    }
    Ok(metrics)
}

/// `predict_results.txt` as HF's run_classification.py writes it: `index<TAB>prediction`, one
/// line per test row in file order: the label name (single-label), the names joined by commas
/// (multi-label, as HF does), or the value (regression).
fn write_predictions(trainer: &Trainer, e: &Evaluation) -> Result<()> {
    let names = trainer.label_names();
    let name = |i: usize| names.get(i).map_or("?", String::as_str).to_string();
    let items: Vec<String> = match e.problem {
        ProblemType::SingleLabelClassification => {
            e.predicted_classes().iter().map(|&p| name(p as usize)).collect()
        }
        ProblemType::MultiLabelClassification => {
            let width = names.len().max(1);
            e.predicted_sets()
                .chunks(width)
                .map(|row| {
                    let set: Vec<String> =
                        row.iter().enumerate().filter(|(_, &v)| v == 1).map(|(i, _)| name(i)).collect();
                    format!("[{}]", set.join(", "))
                })
                .collect()
        }
        ProblemType::Regression => Vec::<f32>::try_from(e.logits.flatten(0, -1))
            .unwrap_or_default()
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect(),
    };
    let mut out = String::from("index\tprediction\n");
    for (i, item) in items.iter().enumerate() {
        out.push_str(&format!("{i}\t{item}\n"));
    }
    write_atomic(&trainer.args().output_dir.join("predict_results.txt"), out.as_bytes())
}
