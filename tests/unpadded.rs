//! The unpadded forward (`Layout::packed` / `LayoutPolicy::for_batch`) against the padded one
//! (`Layout::padded`, the --reproduce-pytorch path) on the same weights: eval logits, 30 Adam steps
//! without dropout, and gradients reaching every parameter.
use std::path::Path;

use bertfit::model::{
    cross_entropy, AttentionCore, BertConfig, Layout, LayoutPolicy, Packing, SequenceClassifier,
};
use bertfit::weights::{from_pretrained, resolve, Pretrained};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::common::{minilm_with_head, temp_dir, tiny_model, TrainRun};

const CORES: [AttentionCore; 3] = [AttentionCore::Padded, AttentionCore::PerSequence, AttentionCore::Grouped];

fn load(model_dir: &Path) -> Pretrained {
    let files = resolve(model_dir.to_str().unwrap()).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    from_pretrained(&files, &config, Device::Cpu).unwrap()
}

/// A padded batch: row i has lengths[i] tokens ([CLS] random ids [SEP], the second half of each
/// row as segment 1), padded with [PAD] to `width`. `seed` fixes the ids.
struct Batch {
    ids: Tensor,
    mask: Tensor,
    types: Tensor,
}

fn batch(lengths: &[i64], width: i64, seed: i64) -> Batch {
    let b = lengths.len() as i64;
    let _generator = super::common::generator_lock();
    tch::manual_seed(seed);
    let ids = Tensor::randint_low(1000, 30000, [b, width], (Kind::Int64, Device::Cpu));
    let pos = Tensor::arange(width, (Kind::Int64, Device::Cpu)).unsqueeze(0);
    let len = Tensor::from_slice(lengths).unsqueeze(1);
    let mask = pos.lt_tensor(&len).to_kind(Kind::Int64);
    let ids = ids * &mask; // [PAD] = 0
    let _ = ids.select(1, 0).fill_(101); // [CLS]
    let sep = (&len - 1).clamp_min(0);
    let ids = ids.scatter_value(1, &sep, 102); // [SEP]
    let types = pos.ge_tensor(&len.divide_scalar_mode(2, "floor")).to_kind(Kind::Int64) * &mask;
    Batch { ids, mask, types }
}

/// Batches of very different lengths: [CLS][SEP] only up to the model's 512 positions, one with
/// every row full, one padded past its longest row, and one left-padded (position 0 masked).
fn batches() -> Vec<(&'static str, Batch)> {
    let left = batch(&[7, 20, 3], 20, 4);
    let left_mask = left.mask.flip([1]);
    let left = Batch { ids: left.ids.flip([1]), types: left.types.flip([1]), mask: left_mask };
    vec![
        ("mixed to 128", batch(&[2, 128, 5, 64, 2, 100, 17, 128, 33, 2], 128, 1)),
        ("mixed to 512", batch(&[2, 300, 512, 40, 129], 512, 2)),
        ("all full", batch(&[128, 128, 128, 128], 128, 3)),
        ("padded past longest", batch(&[2, 50, 9], 160, 5)),
        ("left padded", left),
    ]
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn assert_logits_equal(model: &SequenceClassifier, name: &str) {
    for (what, b) in batches() {
        let padded =
            tch::no_grad(|| model.forward_t(&b.ids, &b.types, &Layout::padded(&b.mask, Device::Cpu), false));
        for core in CORES {
            let layout = Layout::packed(&b.mask, Device::Cpu, core);
            let unpadded = tch::no_grad(|| model.forward_t(&b.ids, &b.types, &layout, false));
            let diff = max_abs(&padded, &unpadded);
            assert!(diff <= 1e-5, "{name}, {what}, {core:?}: logits differ by {diff}");
        }
        let layout = LayoutPolicy::new(Device::Cpu, true).for_batch(&b.mask);
        let default = tch::no_grad(|| model.forward_t(&b.ids, &b.types, &layout, false));
        assert!(max_abs(&padded, &default) <= 1e-5, "{name}, {what}: forward_unpadded_t");
    }
}

#[test]
fn unpadded_logits_equal_padded_minilm() {
    let pre = load(&minilm_with_head(&temp_dir("unpadded_minilm"), 3, 3, None));
    assert_logits_equal(&pre.model, "MiniLM");
}

#[test]
fn unpadded_logits_equal_padded_random_config() {
    let pre = load(&tiny_model(&temp_dir("unpadded_tiny"), 4, None, &[]));
    assert_logits_equal(&pre.model, "random config");
}

#[test]
fn packing_keeps_real_tokens_and_position_zero() {
    let mask = Tensor::from_slice(&[1i64, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0]).view([3, 5]);
    let p = Packing::from_mask(&mask);
    assert_eq!(p.seq_len, 4, "the layout ends after the last kept position");
    assert_eq!(Vec::<i64>::try_from(&p.position_ids).unwrap(), [0, 1, 2, 0, 2, 3, 0, 1]);
    assert_eq!(Vec::<i64>::try_from(&p.indices).unwrap(), [0, 1, 2, 4, 6, 7, 8, 9]);
    assert_eq!(Vec::<i64>::try_from(&p.first_tokens).unwrap(), [0, 3, 6]);
    assert_eq!(p.lengths, None, "row 1 is not right-padded");
    let right = Packing::from_mask(&Tensor::from_slice(&[1i64, 1, 0, 1, 1, 1]).view([2, 3]));
    assert_eq!(right.lengths, Some(vec![2, 3]));
    assert!(right.key_mask.is_some());
    assert!(Packing::from_mask(&Tensor::ones([2, 3], (Kind::Int64, Device::Cpu))).key_mask.is_none());
    let x = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([2, 3]);
    let back = right.unpack(&right.pack(&x));
    assert_eq!(Vec::<f32>::try_from(back.flatten(0, -1)).unwrap(), [0.0, 1.0, 0.0, 3.0, 4.0, 5.0]);
}

/// Softmax over keys ignores anything added to every key's score, so the key bias's exact
/// gradient is zero: what autograd returns for it is rounding noise, different in every kernel.
fn is_key_bias(name: &str) -> bool {
    name.ends_with("attention.self.key.bias")
}

/// Runs `steps` Adam steps over `data` (cycled) and returns the per-step losses.
fn train(pre: &Pretrained, data: &[(Batch, Tensor)], steps: usize, core: Option<AttentionCore>) -> Vec<f64> {
    let mut opt = nn::Adam::default().build(&pre.vs, 1e-4).unwrap();
    (0..steps)
        .map(|i| {
            let (b, labels) = &data[i % data.len()];
            let layout = match core {
                None => Layout::padded(&b.mask, Device::Cpu),
                Some(core) => Layout::packed(&b.mask, Device::Cpu, core),
            };
            let logits = pre.model.forward_t(&b.ids, &b.types, &layout, true);
            let loss = cross_entropy(&logits, labels);
            opt.backward_step(&loss);
            loss.double_value(&[])
        })
        .collect()
}

#[test]
fn thirty_adam_steps_match_padded() {
    let model = minilm_with_head(&temp_dir("unpadded_train"), 3, 7, Some(0.0));
    let lengths: [&[i64]; 3] = [&[2, 40, 9, 64, 23, 5], &[64, 64, 64, 64, 64, 64], &[12, 3, 50, 7, 31, 2]];
    let data: Vec<(Batch, Tensor)> = lengths
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (batch(l, 64, 10 + i as i64), Tensor::from_slice(&[0i64, 1, 2, 1, 0, 2]).roll([i as i64], [0]))
        })
        .collect();
    let padded = load(&model);
    let reference = train(&padded, &data, 30, None);
    // The cores a run uses: Padded (left padding, and wherever a varlen kernel refuses) and
    // Grouped (the CPU's). PerSequence, used by no run, is checked on logits above.
    for core in [AttentionCore::Padded, AttentionCore::Grouped] {
        let unpadded = load(&model);
        let losses = train(&unpadded, &data, 30, Some(core));
        let worst_loss = reference
            .iter()
            .zip(&losses)
            .map(|(a, b)| ((a - b) / a.abs().max(1e-12)).abs())
            .fold(0.0f64, f64::max);
        let (mut worst_weight, mut worst_key_bias) = (0.0f64, 0.0f64);
        let vars = unpadded.vs.variables();
        for (name, w) in padded.vs.variables() {
            let diff = max_abs(&w, &vars[&name]);
            if is_key_bias(&name) {
                worst_key_bias = worst_key_bias.max(diff);
            } else {
                worst_weight = worst_weight.max(diff);
            }
        }
        assert!(reference[29] < reference[0], "training did not lower the loss: {reference:?}");
        assert!(worst_loss <= 1e-5, "{core:?}: losses differ by {worst_loss:e} (relative)");
        assert!(worst_weight <= 1e-5, "{core:?}: weights differ by {worst_weight:e}");
        // Adam turns their rounding-noise gradients into steps of up to lr each way.
        assert!(worst_key_bias <= 2.0 * 30.0 * 1e-4, "{core:?}: key biases differ by {worst_key_bias:e}");
    }
}

#[test]
fn gradients_reach_every_parameter() {
    let pre = load(&tiny_model(&temp_dir("unpadded_grads"), 3, Some(0.0), &[]));
    let b = batch(&[2, 30, 11, 64], 64, 20);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 1]);
    let grads = |core: Option<AttentionCore>| {
        pre.vs.trainable_variables().iter_mut().for_each(Tensor::zero_grad);
        let layout = match core {
            None => Layout::padded(&b.mask, Device::Cpu),
            Some(core) => Layout::packed(&b.mask, Device::Cpu, core),
        };
        let logits = pre.model.forward_t(&b.ids, &b.types, &layout, true);
        cross_entropy(&logits, &labels).backward();
        // Sorted by name: two HashMaps of the same keys iterate in different orders.
        let vars: std::collections::BTreeMap<String, Tensor> = pre.vs.variables().into_iter().collect();
        vars.into_iter()
            .map(|(n, v)| (n, v.grad()))
            .map(|(n, g)| (n, g.defined().then(|| g.copy())))
            .collect::<Vec<_>>()
    };
    let reference = grads(None);
    assert_eq!(reference.len(), pre.vs.trainable_variables().len());
    for core in CORES {
        for ((name, g), (_, r)) in grads(Some(core)).iter().zip(&reference) {
            let (Some(g), Some(r)) = (g, r) else { panic!("{core:?}: {name} has no gradient") };
            if is_key_bias(name) {
                continue; // defined, which is all there is to check
            }
            let norm = g.norm().double_value(&[]);
            assert!(norm > 0.0, "{core:?}: {name} has a zero gradient");
            let diff = max_abs(g, r) / r.abs().max().double_value(&[]);
            assert!(
                diff <= 1e-4,
                "{core:?}: {name}'s gradient differs from the padded one by {diff:e} (relative)"
            );
        }
    }
}

/// With dropout on, the unpadded layout draws other masks than the padded one, so no step can be
/// compared; what must hold is that it learns as well. MiniLM on SMS spam (a real dataset), one
/// epoch over 640 training rows, the default dropout (0.1): validation accuracy within 2 points
/// of the padded run's, and both well above the majority class (86.6% ham).
#[test]
fn with_dropout_unpadded_learns_like_padded() {
    let dir = temp_dir("unpadded_learns");
    let data = super::common::dataset("sms");
    let mut accuracy = Vec::new();
    for unpadded in ["true", "false"] {
        let out = dir.join(format!("unpadded-{unpadded}"));
        let (code, _, stderr) = TrainRun::bare(&super::common::minilm(), &data, &out)
            .flag("--epochs", "1")
            .flag("--max-train-samples", "640")
            .flag("--max-eval-samples", "400")
            .flag("--max-length", "64")
            .flag("--learning-rate", "5e-5")
            .flag("--save-strategy", "no")
            .flag("--unpadded", unpadded)
            .run();
        assert_eq!(code, 0, "{stderr}");
        let args = super::common::read_json(&out.join("training_args.json"));
        assert_eq!(args["unpadded"], unpadded == "true", "training_args.json records the layout used");
        let eval = super::common::read_json(&out.join("eval_results.json"));
        accuracy.push(100.0 * eval["eval_accuracy"].as_f64().unwrap());
    }
    assert!(accuracy.iter().all(|&a| a > 92.0), "a run did not learn: {accuracy:?}");
    assert!(
        (accuracy[0] - accuracy[1]).abs() <= 2.0,
        "unpadded and padded differ by more than 2 points: {accuracy:?}"
    );
}

/// On the CPU a run is unpadded unless told otherwise, and --reproduce-pytorch keeps the padded
/// layout (its dropout masks are PyTorch's); the choice is saved in training_args.json.
#[test]
fn the_cpu_default_is_unpadded_except_when_reproducing_pytorch() {
    let dir = temp_dir("unpadded_default");
    let model = tiny_model(&dir.join("model"), 2, None, &[]);
    let data = dir.join("data.csv");
    let rows: Vec<(String, String, &str)> = (0..24)
        .map(|i| {
            (
                format!("text number {i} {}", "word ".repeat(i % 7)),
                (i % 2).to_string(),
                if i < 16 { "train" } else { "val" },
            )
        })
        .collect();
    super::common::write_csv(&data, &rows);
    for (extra, expected) in
        [(&[][..], true), (&["--reproduce-pytorch"][..], false), (&["--unpadded", "false"][..], false)]
    {
        let out = dir.join(format!("out{}", extra.len()));
        let (code, _, stderr) = TrainRun::bare(&model, &data, &out)
            .flag("--epochs", "1")
            .flag("--save-strategy", "no")
            .switch("--overwrite")
            .append(extra)
            .run();
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        let saved = super::common::read_json(&out.join("training_args.json"));
        assert_eq!(saved["unpadded"], expected, "{extra:?}");
    }
    let refused = super::common::assert_refused(
        &[
            "train",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--reproduce-pytorch",
            "--unpadded",
        ],
        &["--reproduce-pytorch", "--unpadded"],
    );
    assert!(!refused.contains("panicked"));
}
