//! The optimizer against torch.optim (scripts/parity/optim_reference.py runs PyTorch for real), the
//! fused path against the unfused one, clipping against clip_grad_norm_, state save/restore, and a
//! shim error coming back as an Err.
use std::collections::HashMap;
use std::path::Path;

use bertfit::model::{names, BertConfig};
use bertfit::torch_ext::{self, FusedAdamArgs};
use bertfit::train::optim::{hf_decays, named_trainable, AdamKind, Optimizer, OptimizerSettings};
use bertfit::weights::{from_pretrained, resolve};
use tch::{Device, Kind, Tensor};

use super::common::{run_python, temp_dir, tiny_model};

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Fresh trainable copies of `named`.
fn leaves(named: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    named.iter().map(|(n, t)| (n.clone(), t.detach().copy().set_requires_grad(true))).collect()
}

/// Gives every parameter exactly `grad` as its gradient, through autograd (tch has no `p.grad = g`):
/// d/dp sum(p * g) = g, bit for bit.
fn set_grads(opt: &mut Optimizer, grads: &[Tensor]) {
    opt.zero_grad().unwrap();
    let params = opt.params();
    assert_eq!(params.len(), grads.len());
    let loss = params
        .iter()
        .zip(grads)
        .map(|((_, p), g)| (p * g).sum(Kind::Float))
        .fold(Tensor::from(0f32), |a, b| a + b);
    loss.backward();
}

fn settings(kind: AdamKind, weight_decay: f64, fused: bool) -> OptimizerSettings {
    OptimizerSettings { kind, lr: 1e-3, weight_decay, fused, ..Default::default() }
}

/// Random named parameters with BERT-like names (so both decay groups are used) and a gradient
/// sequence, from libtorch's generator.
fn random_problem(seed: i64, steps: usize) -> (Vec<(String, Tensor)>, Vec<Vec<Tensor>>) {
    let _generator = super::common::generator_lock();
    tch::manual_seed(seed);
    let shapes: [(&str, &[i64]); 5] = [
        ("bert.embeddings.word_embeddings.weight", &[11, 6]),
        ("bert.embeddings.LayerNorm.weight", &[6]),
        ("bert.encoder.layer.0.attention.self.query.weight", &[6, 6]),
        ("bert.encoder.layer.0.attention.self.query.bias", &[6]),
        ("classifier.weight", &[3, 6]),
    ];
    let named: Vec<(String, Tensor)> =
        shapes.iter().map(|(n, s)| (n.to_string(), Tensor::randn(*s, (Kind::Float, Device::Cpu)))).collect();
    let grads = (0..steps)
        .map(|_| shapes.iter().map(|(_, s)| Tensor::randn(*s, (Kind::Float, Device::Cpu)) * 0.1).collect())
        .collect();
    (named, grads)
}

fn run(named: &[(String, Tensor)], grads: &[Vec<Tensor>], s: OptimizerSettings) -> Vec<Tensor> {
    let mut opt = Optimizer::new(leaves(named), s).unwrap();
    for g in grads {
        set_grads(&mut opt, g);
        opt.step().unwrap();
    }
    opt.params().into_iter().map(|(_, t)| t.detach()).collect()
}

#[test]
fn fused_matches_unfused_after_30_steps() {
    let (named, grads) = random_problem(7, 30);
    for kind in [AdamKind::Adam, AdamKind::AdamW] {
        for wd in [0.0, 0.01] {
            let unfused = run(&named, &grads, settings(kind, wd, false));
            let fused = run(&named, &grads, settings(kind, wd, true));
            let diff = unfused.iter().zip(&fused).map(|(a, b)| max_abs_diff(a, b)).fold(0.0, f64::max);
            let moved = unfused.iter().zip(&named).map(|(a, (_, b))| max_abs_diff(a, b)).fold(0.0, f64::max);
            assert!(moved > 1e-3, "the parameters did not move");
            assert!(diff < 1e-5, "{kind:?} wd {wd}: fused and unfused differ by {diff}");
        }
    }
}

/// Our Adam/AdamW (unfused and fused, HF decay groups, weight decay 0.01, a learning rate set every
/// step) against torch.optim's over the same 30 gradients.
fn matches_torch_optim(kind: &str) {
    let dir = temp_dir(&format!("optim_torch_{kind}"));
    let file = dir.join("adam.safetensors");
    let stdout =
        run_python("parity/optim_reference.py", &["adam", "--kind", kind, "--out", file.to_str().unwrap()]);
    let hf_decay: Vec<String> = serde_json::from_str(stdout.trim()).unwrap();
    let t = read(&file);
    let mut names: Vec<String> =
        t.keys().filter_map(|k| k.strip_prefix("param.").map(str::to_string)).collect();
    // PyTorch's state-dict order is not needed for the arithmetic; a fixed order is.
    names.sort();
    let named: Vec<(String, Tensor)> =
        names.iter().map(|n| (n.clone(), t[&format!("param.{n}")].shallow_clone())).collect();
    let lrs = Vec::<f64>::try_from(&t["lrs"]).unwrap();
    let kind_ = if kind == "adamw" { AdamKind::AdamW } else { AdamKind::Adam };
    for (fused, tag) in [(false, "unfused"), (true, "fused")] {
        let mut opt = Optimizer::new(leaves(&named), settings(kind_, 0.01, fused)).unwrap();
        let mut ours = opt.decay_names();
        let mut theirs = hf_decay.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "decay groups differ from HF Trainer's");
        for (step, lr) in lrs.iter().enumerate() {
            let grads: Vec<Tensor> =
                names.iter().map(|n| t[&format!("grad.{step}.{n}")].shallow_clone()).collect();
            set_grads(&mut opt, &grads);
            opt.set_lr(*lr);
            opt.step().unwrap();
        }
        let mut worst = 0.0f64;
        for (n, p) in opt.params() {
            worst = worst.max(max_abs_diff(&p.detach(), &t[&format!("{tag}.{n}")]));
        }
        assert!(worst < 1e-6, "{kind} {tag}: {worst}");
        // Measured bitwise equal here (same kernels, same op order): keep it so, since a 1e-6 bound
        // alone would not notice e.g. a slightly wrong decay factor.
        assert!(worst == 0.0, "{kind} {tag} is not bitwise torch.optim's: {worst:e}");
    }
}

#[test]
fn unfused_and_fused_adam_match_torch_optim() {
    matches_torch_optim("adam");
}

#[test]
fn unfused_and_fused_adamw_match_torch_optim() {
    matches_torch_optim("adamw");
}

#[test]
fn decay_groups_of_a_real_bert_match_hf_trainer() {
    let dir = temp_dir("optim_decay_groups");
    let model = tiny_model(&dir, 3, None, &[]);
    let stdout = run_python("parity/optim_reference.py", &["decay", "--model", model.to_str().unwrap()]);
    let hf: Vec<String> = serde_json::from_str(stdout.trim()).unwrap();
    let files = resolve(model.to_str().unwrap()).unwrap();
    let config = BertConfig::from_file(&files.config).unwrap();
    let pre = from_pretrained(&files, &config, Device::Cpu).unwrap();
    let order: Vec<String> = names::parameters(&config).into_iter().map(|(n, _)| n).collect();
    let opt =
        Optimizer::new(named_trainable(&pre.vs, &order).unwrap(), OptimizerSettings::default()).unwrap();
    // Same names in the same (state-dict) order.
    assert_eq!(opt.decay_names(), hf);
    assert!(!hf_decays("bert.embeddings.LayerNorm.weight"));
    assert!(hf.contains(&"bert.embeddings.word_embeddings.weight".to_string()));
}

#[test]
fn clip_grad_norm_matches_torch() {
    let dir = temp_dir("optim_clip");
    let file = dir.join("clip.safetensors");
    run_python("parity/optim_reference.py", &["clip", "--out", file.to_str().unwrap()]);
    let t = read(&file);
    for case in 0..3 {
        let before: Vec<Tensor> = (0..4).map(|i| t[&format!("{case}.before.{i}")].shallow_clone()).collect();
        let named: Vec<(String, Tensor)> =
            before.iter().enumerate().map(|(i, g)| (format!("w{i}"), g.zeros_like())).collect();
        let mut opt = Optimizer::new(leaves(&named), OptimizerSettings::default()).unwrap();
        set_grads(&mut opt, &before);
        let max_norm = t[&format!("{case}.max_norm")].double_value(&[]);
        let total = opt.clip_grad_norm(max_norm).unwrap();
        let d_norm = max_abs_diff(&total, &t[&format!("{case}.total_norm")]);
        let d_grads = opt
            .grads()
            .iter()
            .enumerate()
            .map(|(i, g)| max_abs_diff(g, &t[&format!("{case}.after.{i}")]))
            .fold(0.0, f64::max);
        assert!(d_norm < 1e-6 && d_grads < 1e-6, "case {case}: {d_norm} {d_grads}");
    }
}

/// Saving after 10 steps and loading into a fresh optimizer makes the next 10 steps bitwise equal.
#[test]
fn state_round_trip_is_bitwise() {
    let (named, grads) = random_problem(11, 20);
    for fused in [false, true] {
        let s = settings(AdamKind::AdamW, 0.01, fused);
        let mut a = Optimizer::new(leaves(&named), s).unwrap();
        for g in &grads[..10] {
            set_grads(&mut a, g);
            a.step().unwrap();
        }
        let state = a.state().unwrap();
        assert_eq!(state.len(), 3 * named.len());
        let saved_params: Vec<(String, Tensor)> =
            a.params().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        // Through a file, as a checkpoint would.
        let file = temp_dir(&format!("optim_state_{fused}")).join("optimizer.safetensors");
        Tensor::write_safetensors(&state, &file).unwrap();
        for g in &grads[10..] {
            set_grads(&mut a, g);
            a.set_lr(5e-4);
            a.step().unwrap();
        }
        let mut b = Optimizer::new(leaves(&saved_params), s).unwrap();
        b.load_state(&Tensor::read_safetensors(&file).unwrap()).unwrap();
        for g in &grads[10..] {
            set_grads(&mut b, g);
            b.set_lr(5e-4);
            b.step().unwrap();
        }
        for ((n, pa), (_, pb)) in a.params().iter().zip(b.params()) {
            assert!(pa.equal(&pb), "fused={fused}: {n} differs after resuming");
        }
        // A state that does not fit is refused with its name.
        let mut wrong = state;
        wrong.push(("nope.step".into(), Tensor::from(1f32)));
        let err = b.load_state(&wrong).unwrap_err().to_string();
        assert!(err.contains("nope.step"), "{err}");
    }
}

#[test]
fn shim_errors_come_back_as_err() {
    let zeros = |shape: &[i64]| Tensor::zeros(shape, (Kind::Float, Device::Cpu));
    let p = vec![zeros(&[3]), zeros(&[3])];
    let one = vec![zeros(&[3])];
    let steps = vec![zeros(&[]), zeros(&[])];
    let args = FusedAdamArgs {
        params: &p,
        grads: &one, // one gradient for two parameters
        exp_avgs: &p,
        exp_avg_sqs: &p,
        max_exp_avg_sqs: &[],
        state_steps: &steps,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        weight_decay: 0.0,
        eps: 1e-8,
        amsgrad: false,
        maximize: false,
        grad_scale: None,
        found_inf: None,
    };
    let err = torch_ext::fused_adam_(&args, true).unwrap_err();
    let msg = err.to_string();
    eprintln!("shim error: {msg}");
    assert!(matches!(err, bertfit::Error::TorchExt(_)));
    assert!(msg.starts_with("libtorch: ") && msg.len() > "libtorch: ".len() + 10, "{msg}");
    // A dtype libtorch refuses: the growth tracker must be int32.
    let mut scale = Tensor::from(1f32);
    let err = scale
        .f_internal_amp_update_scale_(&Tensor::from(0f32), &Tensor::from(0f32), 2.0, 0.5, 3)
        .unwrap_err();
    assert!(err.to_string().contains("growth_tracker") || err.to_string().contains("Int"), "{err}");
}
