//! `bertfit train` as run_classification.py's main drives HF's Trainer: train (`do_train`) and
//! save the training metrics, evaluate on the validation rows (`do_eval`), predict on the test rows
//! (`do_predict`) and write `predict_results.txt`; every `*_results.json` through one
//! [`Results`] writer; last, the model card (`README.md`, `Trainer.create_model_card`). Only the
//! main process (rank 0) writes.
use serde_json::{json, Map, Value};

use super::model_card::{base_license, model_card, CardFacts, MODEL_CARD_FILE};
use super::predict_results::predict_results;
use crate::data::dataset::Split;
use crate::error::Result;
use crate::output::{write_atomic, Results};
use crate::train::log_history::speed_metrics;
use crate::train::report::Reporter;
use crate::train::{interrupt, Evaluation, TrainArgs, TrainSummary, Trainer};

/// Fine-tunes `args.model` on `args.data` as the settings say, telling `reporter` everything.
pub fn train(args: &TrainArgs, reporter: &mut dyn Reporter) -> Result<TrainSummary> {
    interrupt::clear();
    let mut trainer = Trainer::new(args, reporter)?;
    let mut results =
        Results::for_run(&trainer.args().output_dir).hf_format(trainer.args().conventions.hf_trainer);
    let write = trainer.is_main();
    let mut summary = TrainSummary::default();
    if trainer.args().do_train {
        summary = trainer.train()?;
        if summary.already_finished {
            return Ok(summary);
        }
        if write && (!summary.epochs.is_empty() || !results.path("train").exists()) {
            let runtime = trainer.started().elapsed().as_secs_f64();
            results.save("train", &train_metrics(&trainer, &summary, runtime))?;
        }
    }
    if trainer.args().do_eval && summary.eval.is_none() {
        // Not trained, or trained without per-epoch evaluations: run_classification.py's
        // `trainer.evaluate()` after training.
        summary.eval = Some(trainer.evaluate(Split::Validation)?);
    }
    let hf = trainer.args().conventions.hf_trainer;
    let epochs =
        trainer.args().do_train.then_some(if hf { summary.epoch } else { summary.epochs.len() as f64 });
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
            // run_classification.py writes predictions only (its `trainer.predict` metrics are
            // not saved); bertfit's own runs also write test_results.json.
            if test.labels.is_some() && !hf {
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

/// train_results.json: HF's keys (`train_runtime`, `train_samples_per_second`,
/// `train_steps_per_second`, `total_flos`, `train_loss`, `epoch`, `train_samples`). With the seed
/// script's conventions `train_loss` is the mean of the epochs' losses and `epoch` the epochs
/// trained, as bertfit always wrote them, and bertfit's `total_steps` stays; with HF's, every
/// value is HF's (`Conventions::hf_trainer`).
fn train_metrics(trainer: &Trainer, summary: &TrainSummary, runtime: f64) -> Map<String, Value> {
    let mut hf = summary.hf_metrics.clone();
    hf.insert("epoch".into(), json!(summary.epoch));
    hf.insert("train_samples".into(), json!(trainer.train_rows()));
    if trainer.args().conventions.hf_trainer {
        // HF logs total_flos in log_history's summary entry but leaves it out of the results.
        hf.remove("total_flos");
        return hf;
    }
    let samples: f64 = summary.epochs.iter().map(|e| e.train_samples_per_second * e.train_seconds).sum();
    let loss = (!summary.epochs.is_empty())
        .then(|| summary.epochs.iter().map(|e| e.loss).sum::<f64>() / summary.epochs.len() as f64);
    let seed = json!({
        "epoch": summary.epochs.len() as f64,
        "train_loss": loss,
        "train_runtime": runtime,
        "train_samples_per_second": samples / runtime.max(1e-9),
        "train_steps_per_second": summary.global_step as f64 / runtime.max(1e-9),
        "total_steps": summary.global_step,
    });
    // bertfit's keys and values in their order, then HF's others.
    let mut results = seed.as_object().cloned().unwrap_or_default();
    for (k, v) in hf {
        results.entry(k).or_insert(v);
    }
    results
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
    // bertfit's own metrics, which HF's files do not have (HF's: the loss and its one metric).
    if trainer.args().conventions.hf_trainer {
        metrics.insert(format!("{prefix}_loss"), json!(e.loss));
    } else {
        if let Some(acc) = e.accuracy() {
            metrics.insert(format!("{prefix}_accuracy"), json!(acc));
        }
        metrics.extend(e.metrics(prefix, &names)?);
    }
    let hf_metric = e.hf_metric(prefix, trainer.args().conventions.metric)?;
    let batch = trainer.args().eval_batch_size * trainer.world_size();
    let speed = speed_metrics(prefix, e.seconds, Some(n as f64), Some(n.div_ceil(batch)));
    let runtime = format!("{prefix}_runtime");
    metrics.insert(runtime.clone(), speed[&runtime].clone());
    metrics.insert(format!("{prefix}_samples"), json!(n));
    // Then HF's keys bertfit did not write (its metric, steps per second).
    for (k, v) in hf_metric.into_iter().chain(speed) {
        metrics.entry(k).or_insert(v);
    }
    results.save(prefix, &metrics)?;
    let summary = e.summary(&names)?;
    if !summary.is_empty() {
        trainer.reporter().note(&format!("{} rows ({prefix}_results.json):\n{summary}", e.split.name()));
    }
    Ok(metrics)
}

/// `predict_results.txt` as run_classification.py writes it ([`predict_results`]).
fn write_predictions(trainer: &Trainer, e: &Evaluation) -> Result<()> {
    let text = predict_results(e, trainer.label_names());
    write_atomic(&trainer.args().output_dir.join("predict_results.txt"), text.as_bytes())
}
