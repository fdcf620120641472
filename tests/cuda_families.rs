//! Every family on the GPU (issue 22's owed check): each family's tiny random classifier, built
//! in-process from its config.json keys (the GPU machine has no assets and runs no make_model.py),
//! computes on the device what it computes on the CPU, and learns there under autocast.
//!
//! The CPU's fp32 padded forward is the reference: tests/families.rs, family_modernbert.rs and
//! family_deberta.rs prove it equal to transformers'. On the device, each layout the trainer can
//! pick there (padded, and packed through the device's attention core: the varlen kernels on CUDA)
//! must give the CPU's logits and gradients in fp32 and its logits within autocast's rounding in
//! bf16 and fp16, and thirty Adam steps under bf16 autocast must fit the batch.
//!
//! The `cuda_` names are what scripts/gpu-check.sh runs on the GPU with BERTFIT_REQUIRE_CUDA=1.
//! Without a GPU the same comparisons run with the CPU as the device (the packed layout through the
//! grouped core, CPU autocast), so the harness itself is exercised by every test run; under
//! BERTFIT_REQUIRE_CUDA=1 a missing GPU fails.
use std::path::Path;

use bertfit::model::{
    cross_entropy, AttentionCore, BertConfig, Family, Layout, LayoutPolicy, SequenceClassifier,
};
use bertfit::torch_ext::AutocastGuard;
use bertfit::weights::init::init_weights;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const VOCAB: i64 = 120;
/// Row lengths of the batch (padded to the longest): a one-token row, rows longer than
/// ModernBERT's local window below, and rows of the full width.
const LENGTHS: [i64; 6] = [1, 9, 33, 5, 20, 33];
const LABELS: [i64; 6] = [0, 2, 1, 1, 0, 2];
/// Adam steps (lr 1e-3) on the one batch in the learning test; at HF's initialisation the slowest
/// family here (DistilBERT) fits it to 0.62 of its first loss in 20 on the CPU.
const STEPS: usize = 30;

/// A tiny config.json per family, in that family's own keys (DistilBERT's `dim`/`n_layers`, ...),
/// 3 labels, dropout as each class's default (on only in the learning test).
fn config_json(family: Family) -> String {
    let labels = r#""id2label": {"0": "a", "1": "b", "2": "c"}"#;
    let bert_like = |model_type: &str, pad: i64, positions: i64, extra: &str| {
        format!(
            r#"{{"model_type": "{model_type}", "vocab_size": {VOCAB}, "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 96,
            "max_position_embeddings": {positions}, "pad_token_id": {pad}, {extra} {labels}}}"#
        )
    };
    match family {
        Family::Bert => bert_like("bert", 0, 64, ""),
        // RoBERTa's positions start after the pad id: 33 tokens need 35 positions.
        Family::Roberta => bert_like("roberta", 1, 66, ""),
        Family::XlmRoberta => bert_like("xlm-roberta", 1, 66, ""),
        Family::Electra => bert_like("electra", 0, 64, r#""embedding_size": 32,"#),
        Family::DistilBert => format!(
            r#"{{"model_type": "distilbert", "vocab_size": {VOCAB}, "dim": 64, "n_layers": 2,
            "n_heads": 2, "hidden_dim": 96, "max_position_embeddings": 64, "pad_token_id": 0, {labels}}}"#
        ),
        // Three layers: one global, two local with a window of 8 (4 each side), narrower than
        // the longer rows.
        Family::ModernBert => format!(
            r#"{{"model_type": "modernbert", "vocab_size": {VOCAB}, "hidden_size": 64,
            "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 96,
            "local_attention": 8, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
            "cls_token_id": 1, "sep_token_id": 2, {labels}}}"#
        ),
        // DeBERTa-v3's shape: relative positions only, shared keys, c2p and p2c.
        Family::DebertaV2 => format!(
            r#"{{"model_type": "deberta-v2", "vocab_size": {VOCAB}, "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 96,
            "max_position_embeddings": 64, "relative_attention": true, "position_buckets": 8,
            "max_relative_positions": 32, "pos_att_type": ["p2c", "c2p"], "share_att_key": true,
            "position_biased_input": false, "norm_rel_ebd": "layer_norm", "type_vocab_size": 0,
            "pad_token_id": 0, {labels}}}"#
        ),
    }
}

fn config(family: Family) -> BertConfig {
    BertConfig::from_json(&config_json(family), Path::new(&format!("{}/config.json", family.model_type())))
        .unwrap_or_else(|e| panic!("{}: {e}", family.model_type()))
}

/// The device under test: the GPU, else the CPU with a line saying so (a failure under
/// BERTFIT_REQUIRE_CUDA=1).
fn device_under_test() -> Device {
    if tch::Cuda::is_available() {
        return Device::Cuda(0);
    }
    let required = std::env::var("BERTFIT_REQUIRE_CUDA").is_ok_and(|v| v == "1");
    assert!(!required, "BERTFIT_REQUIRE_CUDA=1 but libtorch sees no CUDA device");
    println!("no CUDA device: the CPU stands in as the device (scripts/gpu-check.sh runs this on a GPU)");
    Device::Cpu
}

/// The family's classifier on the CPU with HF's initialisation (seeded), and the same weights on
/// `device`.
fn models(
    cfg: &BertConfig,
    device: Device,
) -> ((nn::VarStore, SequenceClassifier), (nn::VarStore, SequenceClassifier)) {
    let cpu_vs = nn::VarStore::new(Device::Cpu);
    let cpu = SequenceClassifier::new(cpu_vs.root(), cfg);
    tch::manual_seed(11);
    init_weights(&cpu_vs.variables(), cfg, |_| true);
    let mut dev_vs = nn::VarStore::new(device);
    let dev = SequenceClassifier::new(dev_vs.root(), cfg);
    dev_vs.copy(&cpu_vs).expect("copy the weights to the device");
    ((cpu_vs, cpu), (dev_vs, dev))
}

/// Right-padded ids (the pad id in padded slots, no special ids among real tokens), mask, types
/// and labels, on the CPU.
fn batch(cfg: &BertConfig) -> (Tensor, Tensor, Tensor, Tensor) {
    let width = *LENGTHS.iter().max().unwrap_or(&1);
    let mask = super::common::right_padding_mask(&LENGTHS, width);
    tch::manual_seed(12);
    let real = Tensor::randint_low(3, VOCAB, [LENGTHS.len() as i64, width], (Kind::Int64, Device::Cpu));
    let ids = real.where_self(&mask.to_kind(Kind::Bool), &Tensor::from(cfg.pad_token_id));
    let types = Tensor::zeros_like(&ids);
    (ids, mask, types, Tensor::from_slice(&LABELS))
}

/// Logits of `model` on `device` (inputs moved there) under `layout`, with the loss's gradients
/// of every trainable variable when `grads`.
fn run(
    model: &SequenceClassifier,
    vs: &nn::VarStore,
    inputs: &(Tensor, Tensor, Tensor, Tensor),
    layout: &Layout,
    grads: bool,
) -> (Tensor, Vec<(String, Tensor)>) {
    let device = vs.device();
    let (ids, _, types, labels) = inputs;
    vs.variables().into_values().for_each(|mut t| t.zero_grad());
    let logits = model.forward_t(&ids.to_device(device), &types.to_device(device), layout, false);
    if !grads {
        return (logits.detach().to_device(Device::Cpu).to_kind(Kind::Float), Vec::new());
    }
    cross_entropy(&logits, &labels.to_device(device)).backward();
    let mut g: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad() && t.grad().defined())
        .map(|(n, t)| (n, t.grad().to_device(Device::Cpu).to_kind(Kind::Float)))
        .collect();
    g.sort_by(|a, b| a.0.cmp(&b.0));
    (logits.detach().to_device(Device::Cpu).to_kind(Kind::Float), g)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The layouts the trainer picks between on `device`: padded, and packed through the device's
/// attention core (the varlen kernels on CUDA).
fn layouts(mask: &Tensor, device: Device) -> Vec<(&'static str, Layout)> {
    vec![
        ("padded", LayoutPolicy::new(device, false).for_batch(mask)),
        ("packed", Layout::packed(mask, device, AttentionCore::for_device(device))),
    ]
}

#[test]
fn cuda_each_family_gives_the_cpus_logits_and_gradients_on_the_device() {
    let device = device_under_test();
    let _generator = super::common::generator_lock();
    let mut failures = Vec::new();
    for family in Family::ALL {
        let name = family.model_type();
        let cfg = config(family);
        let ((cpu_vs, cpu), (dev_vs, dev)) = models(&cfg, device);
        let inputs = batch(&cfg);
        let (ref_logits, ref_grads) =
            run(&cpu, &cpu_vs, &inputs, &Layout::padded(&inputs.1, Device::Cpu), true);
        let scale = ref_logits.abs().max().double_value(&[]);
        assert!(scale > 0.0 && scale.is_finite(), "{name}: reference logits {ref_logits:?}");
        for (layout_name, layout) in layouts(&inputs.1, device) {
            let what = format!("{name} {layout_name} on {device:?}");
            if let Some(f) = layout.fallback() {
                println!("{what}: padded attention instead: {f}");
            }
            // fp32: the CPU's logits and gradients up to summation order.
            let (logits, grads) = run(&dev, &dev_vs, &inputs, &layout, true);
            let diff = max_abs(&logits, &ref_logits);
            if diff.is_nan() || diff > 1e-4 * scale.max(1.0) {
                failures.push(format!("{what} fp32: logits differ by {diff:e} (largest {scale:e})"));
            }
            let names: Vec<&String> = grads.iter().map(|(n, _)| n).collect();
            let ref_names: Vec<&String> = ref_grads.iter().map(|(n, _)| n).collect();
            if names != ref_names {
                failures.push(format!("{what} fp32: gradients of {names:?}, the CPU's of {ref_names:?}"));
            }
            for ((param, g), (_, r)) in grads.iter().zip(&ref_grads) {
                let (d, largest) = (max_abs(g, r), r.abs().max().double_value(&[]));
                if d.is_nan() || d > 1e-3 * largest + 1e-6 {
                    failures.push(format!(
                        "{what} fp32: {param}'s gradient differs by {d:e} (largest {largest:e})"
                    ));
                }
            }
            // Autocast: the same logits within its rounding (bf16 keeps 8 mantissa bits, fp16 11);
            // wrong attention or a lost mask moves them by about their own size.
            for (kind, tol) in [(Kind::BFloat16, 5e-2), (Kind::Half, 1e-2)] {
                let _autocast = AutocastGuard::new(device, kind).expect("autocast");
                let (logits, _) = tch::no_grad(|| run(&dev, &dev_vs, &inputs, &layout, false));
                let diff = max_abs(&logits, &ref_logits);
                if diff.is_nan() || diff > tol * scale + 1e-3 {
                    failures.push(format!("{what} {kind:?}: logits differ by {diff:e} (largest {scale:e})"));
                }
            }
            println!("{what}: fp32 logits within {diff:.1e} of the CPU's (largest {scale:.2e})");
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn cuda_each_family_learns_under_bf16_autocast_on_the_device() {
    let device = device_under_test();
    let _generator = super::common::generator_lock();
    let mut failures = Vec::new();
    for family in Family::ALL {
        let cfg = config(family);
        let (ids, mask, types, labels) = batch(&cfg);
        let (ids, types, labels) = (ids.to_device(device), types.to_device(device), labels.to_device(device));
        for unpadded in [false, true] {
            // Fresh weights for each layout.
            let (_, (vs, model)) = models(&cfg, device);
            let what = format!(
                "{} {} on {device:?}",
                family.model_type(),
                if unpadded { "packed" } else { "padded" }
            );
            let mut layouts = LayoutPolicy::new(device, unpadded);
            let mut opt = nn::Adam::default().build(&vs, 1e-3).expect("adam");
            let losses: Vec<f64> = (0..STEPS)
                .map(|_| {
                    let layout = layouts.for_batch(&mask);
                    let loss = {
                        let _autocast = AutocastGuard::new(device, Kind::BFloat16).expect("autocast");
                        cross_entropy(&model.forward_t(&ids, &types, &layout, true), &labels)
                    };
                    if let Some(f) = layouts.fallback(&layout) {
                        println!("{what}: padded attention instead: {f}");
                    }
                    opt.backward_step(&loss);
                    loss.double_value(&[])
                })
                .collect();
            let (first, last) = (losses[0], losses[losses.len() - 1]);
            println!("{what}: loss {first:.4} -> {last:.4} over {STEPS} bf16 steps");
            if !losses.iter().all(|l| l.is_finite()) || last >= 0.7 * first {
                failures.push(format!("{what}: losses {losses:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
