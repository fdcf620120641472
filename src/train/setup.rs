//! What a run is built from, before its first step: the process group, the model and tokenizer,
//! the training data, the optimizer with its schedule and loss scaler. Free functions over the
//! settings, called in order by [`super::Trainer::new`].
use std::sync::Arc;

use tch::nn::VarStore;
use tch::Device;

use super::args::{DataOrder, TrainArgs};
use super::optim::{named_trainable, Optimizer, OptimizerSettings};
use super::precision::{LossScaler, ScalerSettings};
use super::report::Reporter;
use super::schedule::{warmup_steps, Schedule};
use super::update::Updater;
use crate::data::batch::Padding;
use crate::data::dataset::Split;
use crate::data::loader::LoaderSettings;
use crate::data::sampler::{GeneratorRandperm, Sampler, SeedableRandomSampler, Shard};
use crate::data::tokenize::Tokenizer;
use crate::data::training_data::{DataSettings, LengthGrouping, TrainingData};
use crate::dist::ddp::Ddp;
use crate::dist::sampler::DistributedSampler;
use crate::error::{Error, Result};
use crate::model::{names, BertConfig};
use crate::random::RandomStream;
use crate::weights::{from_pretrained, ModelFiles, Pretrained};

/// Joins the process group of a multi-process run (torchrun / SLURM variables), if any, and
/// returns the settings as this process runs them: its own GPU, the unpadded choice resolved
/// (saved in training_args.json, so the folder alone repeats the run on any device).
pub fn join(args: &TrainArgs) -> Result<(TrainArgs, Option<Ddp>)> {
    let backend = crate::dist::ddp::choose_backend(args.ddp_backend, args.device)?;
    let timeout = std::time::Duration::from_secs(args.ddp_timeout);
    let ddp = Ddp::from_env_with(backend, timeout, args.ddp_backend.is_some())?;
    let mut args = args.clone();
    if let (Some(d), Device::Cuda(_)) = (&ddp, args.device) {
        args.device = Device::Cuda(d.local_rank());
    }
    args.unpadded = Some(args.unpadded());
    Ok((args, ddp))
}

/// `--precision auto`'s choice for the run's device ([`super::auto_precision`]).
pub fn auto_precision(args: &TrainArgs) -> Result<super::auto_precision::AutoChoice> {
    let device = args.device;
    super::auto_precision::choose(
        device,
        args.reproduce_pytorch,
        &crate::machine::cpu::CpuInfo::read(),
        |kind| crate::machine::peak_cache::cached_or_measured(device, kind),
    )
}

/// The model's tokenizer, checked against its config.
pub fn tokenizer(files: &ModelFiles, config: &BertConfig) -> Result<Arc<Tokenizer>> {
    let tokenizer = Arc::new(Tokenizer::from_dir(&files.dir)?);
    crate::data::tokenize::check_vocab(&tokenizer, config, &files.config)?;
    Ok(tokenizer)
}

/// `--max-length` against the special tokens the tokenizer adds and the model's position
/// embeddings, and sentence pairs against its token types.
pub fn check_max_length(args: &TrainArgs, config: &BertConfig, tokenizer: &Tokenizer) -> Result<()> {
    tokenizer.check_max_length(args.max_length, args.columns.text_pair.is_some())?;
    if args.columns.text_pair.is_some() {
        config
            .check_pairs(tokenizer.has_token_types())
            .map_err(|msg| Error::usage("--text-pair-column", msg))?;
    }
    // RoBERTa's positions start after the pad id: its table holds 2 fewer tokens than its size.
    if args.max_length as i64 > config.max_sequence_length() {
        return Err(Error::usage(
            "--max-length",
            format!(
                "{} exceeds the {} tokens the model's position embeddings hold (max_position_embeddings {})",
                args.max_length,
                config.max_sequence_length(),
                config.max_position_embeddings
            ),
        ));
    }
    Ok(())
}

/// The training, validation and test rows, with the data's warnings told to `reporter`; the
/// config then gets the run's labels and problem type.
pub fn data(
    args: &TrainArgs,
    tokenizer: &Arc<Tokenizer>,
    ddp: Option<&Ddp>,
    config: &mut BertConfig,
    reporter: &mut dyn Reporter,
) -> Result<TrainingData> {
    if ddp.is_some() && args.conventions.data_order == DataOrder::HfLengthGrouped {
        return Err(Error::usage(
            "--train_sampling_strategy",
            "group_by_length is implemented for one process (HF's order across ranks is accelerate's sharding of it)",
        ));
    }
    let data = TrainingData::open(
        &args.data,
        &args.columns,
        tokenizer.clone(),
        data_settings(args, tokenizer, ddp),
    )?;
    for w in data.warnings() {
        reporter.note(&format!("warning: {w}"));
    }
    config.set_labels(&data.labels().names);
    config.problem_type = Some(args.label_format.problem.hf_name().into());
    Ok(data)
}

/// The model with its pretrained weights (the new head drawn from `rng`, in the reference
/// script's order), saying which weights are newly initialized, as HF does.
pub fn model(
    args: &TrainArgs,
    files: &ModelFiles,
    config: &BertConfig,
    rng: &mut RandomStream,
    reporter: &mut dyn Reporter,
) -> Result<Pretrained> {
    let pretrained = rng.init_weights(|| from_pretrained(files, config, args.device))?;
    let report = &pretrained.report;
    let architecture = config.family().architecture();
    if !report.unused.is_empty() {
        reporter.note(&format!(
            "Some weights of the model checkpoint at {} were not used when initializing {architecture}: \
             {:?} (another task's head, as in a masked-LM or pre-training checkpoint)",
            files.dir.display(),
            report.unused
        ));
    }
    let newly = &report.newly_initialized;
    if !newly.is_empty() {
        reporter.note(&format!(
            "Some weights of {architecture} were not initialized from the model checkpoint at {} \
             and are newly initialized: {:?}{}",
            files.dir.display(),
            newly,
            if args.do_train { "" } else { " (nothing is trained: evaluation measures an untrained head)" }
        ));
    }
    if args.recipe.tf32 {
        crate::torch_ext::set_allow_tf32(true)?;
    }
    Ok(pretrained)
}

/// Makes the output folder, with every input checked. Only the folder itself: everything in it
/// is written by the final save in one swap (training_args.json included), so a run that fails
/// earlier changes nothing a previous run left there. `starts_afresh`: this process writes and
/// the run neither resumes nor is finished, so `--overwrite` sets the old checkpoints aside.
pub fn output_dir(args: &TrainArgs, starts_afresh: bool, reporter: &mut dyn Reporter) -> Result<()> {
    std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
    if args.overwrite && args.do_train && starts_afresh {
        if let Some(note) = super::output_folder::set_aside_old_checkpoints(&args.output_dir)? {
            reporter.note(&note);
        }
    }
    Ok(())
}

/// Micro-batches of one training epoch (this rank's share).
pub fn batches_per_epoch(data: &TrainingData, batch_size: usize) -> usize {
    data.len(Split::Train).div_ceil(batch_size)
}

/// Optimizer steps of an epoch of `batches` micro-batches: one per accumulation window, the last
/// window possibly shorter (HF's `num_update_steps_per_epoch`).
pub fn steps_per_epoch(batches: usize, accumulation: usize) -> usize {
    batches.div_ceil(accumulation)
}

/// Optimizer (with HF's decay groups), schedule over the run's optimizer steps, loss scaler.
pub fn updater(args: &TrainArgs, config: &BertConfig, vs: &VarStore, data: &TrainingData) -> Result<Updater> {
    let r = &args.recipe;
    let order: Vec<String> = names::parameters(config).into_iter().map(|(n, _)| n).collect();
    let optimizer = Optimizer::new(
        named_trainable(vs, &order)?,
        OptimizerSettings {
            kind: r.optim,
            lr: args.learning_rate,
            betas: (r.adam_beta1, r.adam_beta2),
            eps: r.adam_epsilon,
            weight_decay: r.weight_decay,
            fused: r.fused,
        },
    )?;
    let per_epoch = steps_per_epoch(batches_per_epoch(data, args.batch_size), r.gradient_accumulation_steps);
    let total = max_steps(args, per_epoch).unwrap_or(per_epoch * args.epochs);
    let warmup = warmup_steps(r.warmup_steps, r.warmup_ratio, total)?;
    let schedule = Schedule::new(r.lr_scheduler_type, args.learning_rate, warmup, total)?;
    let scaler = r
        .precision
        .needs_loss_scaling()
        .then(|| LossScaler::new(ScalerSettings::default(), args.device))
        .transpose()?;
    Ok(Updater { optimizer, schedule, scaler, max_grad_norm: r.max_grad_norm, scheduled_steps: 0 })
}

/// HF's `num_parameters(exclude_embeddings=True)`: every parameter but the `nn.Embedding`
/// tables (word, position, token type), for `floating_point_ops`.
pub fn non_embedding_parameters(updater: &Updater) -> usize {
    let tables = ["word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight"];
    updater
        .optimizer
        .params()
        .iter()
        .filter(|(name, _)| !tables.iter().any(|t| name.ends_with(t)))
        .map(|(_, t)| t.numel())
        .sum()
}

/// The step the run stops at, if not at the end of its last epoch: `--max-steps`, else HF's
/// `math.ceil(args.num_train_epochs * num_update_steps_per_epoch)` for a fractional epoch count
/// (`Trainer.set_initial_training_values`).
pub fn max_steps(args: &TrainArgs, steps_per_epoch: usize) -> Option<usize> {
    args.max_steps
        .or_else(|| args.conventions.epoch_fraction.map(|f| (f * steps_per_epoch as f64).ceil() as usize))
}

/// `--group-by-length` groups the DataLoader's order in megabatches of the batch size, by each
/// row's tokens; HF Trainer's group_by_length groups its own order in megabatches of the optimizer
/// step's rows, by `input_ids` lengths (max_seq_length for every row padded to it).
fn group_by_length(args: &TrainArgs) -> Option<LengthGrouping> {
    if args.conventions.data_order == DataOrder::HfLengthGrouped {
        return Some(LengthGrouping {
            batch_size: args.batch_size * args.recipe.gradient_accumulation_steps,
            padded_to: (args.padding == Padding::MaxLength).then_some(args.max_length),
        });
    }
    args.group_by_length.then_some(LengthGrouping { batch_size: args.batch_size, padded_to: None })
}

fn data_settings(args: &TrainArgs, tokenizer: &Tokenizer, ddp: Option<&Ddp>) -> DataSettings {
    let shard = ddp.map_or(Shard::WHOLE, |d| Shard { rank: d.rank(), world_size: d.world_size() });
    let train_sampler: Option<Arc<dyn Sampler>> = match (ddp, args.conventions.data_order) {
        (Some(_), _) => Some(Arc::new(DistributedSampler {
            shard,
            shuffle: args.shuffle,
            seed: args.seed,
            drop_last: false,
        })),
        (None, DataOrder::HfTrainer { seed }) if args.shuffle => {
            Some(Arc::new(SeedableRandomSampler { seed }))
        }
        (None, DataOrder::HfLengthGrouped) => Some(Arc::new(GeneratorRandperm)),
        (None, _) => None,
    };
    DataSettings {
        batch_size: args.batch_size,
        eval_batch_size: args.eval_batch_size,
        loader: LoaderSettings {
            padding: args.padding,
            max_length: args.max_length,
            pad_id: tokenizer.pad_token_id(),
            prefetch: args.prefetch,
            pin_for: args.device.is_cuda().then_some(args.device),
        },
        shuffle: args.shuffle,
        group_by_length: group_by_length(args),
        streaming: args.streaming,
        shuffle_buffer: args.shuffle_buffer,
        token_cache: args.token_cache.clone(),
        num_labels: args.num_labels,
        label_format: args.label_format.clone(),
        max_samples: args.max_samples,
        shuffle_train_dataset: args.shuffle_train_dataset,
        shard,
        train_sampler,
    }
}
