//! Autocast with a dtype on CPU, and the loss scaler against torch.amp.GradScaler (run for real by
//! scripts/parity/optim_reference.py) with injected inf gradients.
use std::collections::HashMap;

use bertfit::torch_ext::{autocast_state, AutocastGuard};
use bertfit::train::optim::{AdamKind, Optimizer, OptimizerSettings};
use bertfit::train::precision::{autocast, LossScaler, Precision, ScalerSettings};
use tch::{Device, Kind, Tensor};

use super::common::{run_python, temp_dir};

fn matmul_kind() -> Kind {
    let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
    a.matmul(&a).kind()
}

#[test]
fn autocast_bf16_and_fp16_on_cpu_nest_and_restore() {
    assert_eq!(matmul_kind(), Kind::Float);
    let before = autocast_state(Device::Cpu).unwrap();
    assert!(!before.enabled);
    {
        let _outer = autocast(Device::Cpu, Precision::Bf16).unwrap().expect("a guard for bf16");
        assert_eq!(matmul_kind(), Kind::BFloat16);
        {
            let _inner = AutocastGuard::new(Device::Cpu, Kind::Half).unwrap();
            assert_eq!(matmul_kind(), Kind::Half);
        }
        // The inner exit restores the outer dtype, and autocast stays on.
        assert_eq!(matmul_kind(), Kind::BFloat16);
        let st = autocast_state(Device::Cpu).unwrap();
        assert!(st.enabled && st.dtype == Kind::BFloat16);
    }
    assert_eq!(matmul_kind(), Kind::Float);
    assert_eq!(autocast_state(Device::Cpu).unwrap(), before);
    // fp32 makes no guard; fp16 alone works on CPU too.
    assert!(autocast(Device::Cpu, Precision::Fp32).unwrap().is_none());
    {
        let _g = autocast(Device::Cpu, Precision::Fp16).unwrap();
        assert_eq!(matmul_kind(), Kind::Half);
    }
    assert_eq!(matmul_kind(), Kind::Float);
    assert!(AutocastGuard::new(Device::Cpu, Kind::Float).is_err());
}

#[test]
fn precision_parses() {
    assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
    assert_eq!("FP16".parse::<Precision>().unwrap(), Precision::Fp16);
    assert_eq!("fp32".parse::<Precision>().unwrap(), Precision::Fp32);
    let err = "fp8".parse::<Precision>().unwrap_err().to_string();
    assert!(err.contains("--precision") && err.contains("fp8"), "{err}");
    assert_eq!(Precision::Bf16.to_string(), "bf16");
}

/// GradScaler(init 2^16, growth interval 3) over 12 steps with infs injected at steps 1, 5, 6: the
/// same scales, the same skipped steps and the same final parameter as PyTorch, unfused and fused.
#[test]
fn loss_scaler_matches_grad_scaler() {
    let dir = temp_dir("precision_scaler");
    let file = dir.join("scaler.safetensors");
    let inject = [1usize, 5, 6];
    let inject_arg = inject.map(|s| s.to_string()).join(",");
    let stdout = run_python(
        "parity/optim_reference.py",
        &[
            "scaler",
            "--out",
            file.to_str().unwrap(),
            "--steps",
            "12",
            "--interval",
            "3",
            "--inject",
            &inject_arg,
        ],
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let t: HashMap<String, Tensor> = Tensor::read_safetensors(&file).unwrap().into_iter().collect();
    let n = t["init"].size()[0] as usize;
    for (fused, tag) in [(false, "unfused"), (true, "fused")] {
        let p = t["init"].copy().set_requires_grad(true);
        let s = OptimizerSettings { kind: AdamKind::Adam, lr: 0.01, fused, ..Default::default() };
        let mut opt = Optimizer::new(vec![("w".into(), p.shallow_clone())], s).unwrap();
        let settings = ScalerSettings { growth_interval: 3, ..Default::default() };
        let mut scaler = LossScaler::new(settings, Device::Cpu).unwrap();
        let (mut scales, mut skipped) = (Vec::new(), Vec::new());
        for step in 0..12 {
            opt.zero_grad().unwrap();
            let loss = (&p * t["xs"].get(step as i64)).sum(Kind::Float);
            scaler.scale(&loss).unwrap().backward();
            if inject.contains(&step) {
                let _ = p.grad().narrow(0, (step % n) as i64, 1).fill_(f64::INFINITY);
            }
            let before = p.detach().copy();
            scaler.step(&mut opt).unwrap();
            scaler.update().unwrap();
            scales.push(scaler.scale_tensor().double_value(&[]));
            skipped.push(before.equal(&p.detach()));
        }
        let want_scales: Vec<f64> =
            report[tag]["scales"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let want_skipped: Vec<bool> =
            report[tag]["skipped"].as_array().unwrap().iter().map(|v| v.as_bool().unwrap()).collect();
        assert_eq!(scales, want_scales, "{tag}");
        assert_eq!(skipped, want_skipped, "{tag}");
        assert!(skipped.iter().filter(|s| **s).count() == inject.len());
        let diff = (p.detach() - &t[&format!("{tag}.final")]).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{tag}: final parameter differs by {diff}");
    }
}

#[test]
fn loss_scaler_state_round_trips_and_checks_order() {
    let settings = ScalerSettings { growth_interval: 3, ..Default::default() };
    let mut a = LossScaler::new(settings, Device::Cpu).unwrap();
    let g = Tensor::full([2], f64::INFINITY, (Kind::Float, Device::Cpu));
    let found = a.unscale_(&[g]).unwrap();
    assert_eq!(found.double_value(&[]), 1.0);
    // A second unscale in the same iteration is refused, as GradScaler does.
    assert!(a.unscale_(&[Tensor::ones([2], (Kind::Float, Device::Cpu))]).is_err());
    a.update().unwrap();
    assert_eq!(a.scale_tensor().double_value(&[]), 32768.0);
    let g = Tensor::ones([2], (Kind::Float, Device::Cpu));
    let _ = a.unscale_(&[g.shallow_clone()]).unwrap();
    assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0 / 32768.0; 2]);
    a.update().unwrap();
    let mut b = LossScaler::new(settings, Device::Cpu).unwrap();
    b.load_state(&a.state().unwrap()).unwrap();
    // Two more clean updates grow both (the tracker was restored: 1 + 2 = 3).
    for s in [&mut a, &mut b] {
        for _ in 0..2 {
            let _ = s.unscale_(&[Tensor::ones([2], (Kind::Float, Device::Cpu))]).unwrap();
            s.update().unwrap();
        }
    }
    assert_eq!(a.scale_tensor().double_value(&[]), 65536.0);
    assert_eq!(b.scale_tensor().double_value(&[]), 65536.0);
    assert!(b.update().is_err(), "update without an inf check must be refused");
}
