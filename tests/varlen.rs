//! The varlen attention core (`AttentionCore::Varlen`: libtorch's FlashAttention-2 and
//! memory-efficient kernels on packed tokens, bound by the shim).
//!
//! On the CPU the kernels do not exist: the tests here check that the shim reports that as an
//! error and that the core then attends on the padded layout with the same logits. The `cuda_`
//! tests run the kernels themselves against per-sequence SDPA and the padded model; without a GPU
//! they say so and pass, unless BERTFIT_REQUIRE_CUDA=1 (scripts/gpu-check.sh sets it), where a
//! missing GPU fails them.
use bertfit::model::{
    cross_entropy, AttentionCore, BertConfig, BertForSequenceClassification, Layout, LayoutPolicy,
};
use bertfit::torch_ext::{self, AutocastGuard, VarlenKernel};
use bertfit::weights::init::init_weights;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// A random BERT made here (no assets: the GPU machine has none), with HF's `_init_weights` for
/// every parameter (`weights::init::init_weights`).
fn random_model(
    cfg: &BertConfig,
    device: Device,
    seed: i64,
) -> (nn::VarStore, BertForSequenceClassification) {
    let vs = nn::VarStore::new(device);
    let model = BertForSequenceClassification::new(vs.root(), cfg);
    let _generator = super::common::generator_lock();
    tch::manual_seed(seed);
    init_weights(&vs.variables(), cfg, |_| true);
    (vs, model)
}

fn small_config(dropout: f64) -> BertConfig {
    BertConfig {
        vocab_size: 1000,
        hidden_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 2, // head size 64, as BERT-base's
        intermediate_size: 256,
        hidden_dropout_prob: dropout,
        attention_probs_dropout_prob: dropout,
        ..BertConfig::default()
    }
}

/// Right-padded ids/mask/types: row i has lengths[i] tokens, padded to `width`.
fn batch(lengths: &[i64], width: i64, seed: i64, device: Device) -> (Tensor, Tensor, Tensor) {
    let _generator = super::common::generator_lock();
    tch::manual_seed(seed);
    let b = lengths.len() as i64;
    let mask = super::common::right_padding_mask(lengths, width);
    let ids = Tensor::randint_low(1, 1000, [b, width], (Kind::Int64, Device::Cpu)) * &mask;
    let types = Tensor::zeros([b, width], (Kind::Int64, Device::Cpu));
    (ids.to_device(device), mask.to_device(device), types.to_device(device))
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float)).abs().max().double_value(&[])
}

#[test]
fn without_the_kernels_the_shim_reports_an_error() {
    let q = Tensor::randn([6, 2, 8], (Kind::Float, Device::Cpu));
    let cu = Tensor::from_slice(&[0i32, 2, 6]);
    for kernel in [VarlenKernel::Flash, VarlenKernel::Efficient] {
        let q = if kernel == VarlenKernel::Flash { q.to_kind(Kind::BFloat16) } else { q.shallow_clone() };
        let err = torch_ext::varlen_attention(kernel, &q, &q, &q, &cu, 4, 0.0, 0.35)
            .expect_err("no varlen kernel on the CPU");
        let text = err.to_string();
        println!("{kernel:?}: {text}");
        assert!(text.contains("attention_forward"), "{kernel:?}: {text}");
    }
}

#[test]
fn varlen_core_without_its_kernel_attends_padded() {
    let (_vs, model) = random_model(&small_config(0.0), Device::Cpu, 1);
    let (ids, mask, types) = batch(&[3, 40, 1, 17], 40, 2, Device::Cpu);
    let padded = tch::no_grad(|| model.forward_t(&ids, &types, &Layout::padded(&mask, Device::Cpu), false));
    let layout = Layout::packed(&mask, Device::Cpu, AttentionCore::Varlen);
    let varlen = tch::no_grad(|| model.forward_t(&ids, &types, &layout, false));
    let diff = max_abs(&padded, &varlen);
    assert!(diff <= 1e-5, "logits differ by {diff}");
}

/// The GPU, or `None` with a line saying why the test does nothing (a failure under
/// BERTFIT_REQUIRE_CUDA=1).
fn cuda() -> Option<Device> {
    if tch::Cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    let required = std::env::var("BERTFIT_REQUIRE_CUDA").is_ok_and(|v| v == "1");
    assert!(!required, "BERTFIT_REQUIRE_CUDA=1 but libtorch sees no CUDA device");
    println!("no CUDA device: nothing to check here (scripts/gpu-check.sh runs this on a GPU)");
    None
}

/// Attention of each sequence over itself, one SDPA call each, in fp32: the reference.
fn per_sequence(q: &Tensor, k: &Tensor, v: &Tensor, lengths: &[i64], scale: f64) -> Tensor {
    let mut start = 0;
    let mut out = Vec::new();
    for &len in lengths {
        let one = |x: &Tensor| x.narrow(0, start, len).to_kind(Kind::Float).transpose(0, 1).unsqueeze(0);
        let o = Tensor::scaled_dot_product_attention(
            &one(q),
            &one(k),
            &one(v),
            None::<&Tensor>,
            0.0,
            false,
            Some(scale),
            false,
        );
        out.push(o.squeeze_dim(0).transpose(0, 1));
        start += len;
    }
    Tensor::cat(&out, 0)
}

#[test]
fn cuda_varlen_kernels_match_per_sequence_attention() {
    let Some(device) = cuda() else { return };
    let lengths = [1i64, 37, 128, 512, 3, 64];
    let n: i64 = lengths.iter().sum();
    let mut offsets = vec![0i32];
    for &l in &lengths {
        offsets.push(offsets.last().copied().unwrap_or(0) + l as i32);
    }
    let cu = Tensor::from_slice(&offsets).to_device(device);
    let scale = 1.0 / 8.0;
    // (kernel, dtype, tolerance on outputs and gradients against fp32 per-sequence attention)
    for (kernel, kind, tol) in
        [(VarlenKernel::Efficient, Kind::Float, 1e-4), (VarlenKernel::Flash, Kind::BFloat16, 3e-2)]
    {
        tch::manual_seed(7);
        let make = || Tensor::randn([n, 12, 64], (Kind::Float, device)).to_kind(kind).set_requires_grad(true);
        let (q, k, v) = (make(), make(), make());
        let out = torch_ext::varlen_attention(kernel, &q, &k, &v, &cu, 512, 0.0, scale)
            .unwrap_or_else(|e| panic!("{kernel:?} {kind:?}: {e}"));
        assert_eq!(out.size(), vec![n, 12, 64]);
        let grad_out = out.randn_like();
        let grads = Tensor::run_backward(&[(&out * &grad_out).sum(Kind::Float)], &[&q, &k, &v], false, false);

        let (qr, kr, vr) = (
            q.detach().to_kind(Kind::Float).set_requires_grad(true),
            k.detach().to_kind(Kind::Float).set_requires_grad(true),
            v.detach().to_kind(Kind::Float).set_requires_grad(true),
        );
        let reference = per_sequence(&qr, &kr, &vr, &lengths, scale);
        let ref_grads = Tensor::run_backward(
            &[(&reference * grad_out.to_kind(Kind::Float)).sum(Kind::Float)],
            &[&qr, &kr, &vr],
            false,
            false,
        );
        let out_diff = max_abs(&out, &reference);
        let grad_diff = grads.iter().zip(&ref_grads).map(|(a, b)| max_abs(a, b)).fold(0.0f64, f64::max);
        assert!(out_diff <= tol, "{kernel:?}: outputs differ by {out_diff}");
        assert!(grad_diff <= tol * 4.0, "{kernel:?}: gradients differ by {grad_diff}");
    }
}

#[test]
fn cuda_varlen_model_matches_padded_in_fp32_and_bf16() {
    let Some(device) = cuda() else { return };
    let cfg = small_config(0.0);
    let (_vs, model) = random_model(&cfg, device, 3);
    let (ids, mask, types) = batch(&[2, 512, 17, 300, 1, 64], 512, 4, device);
    let layout = Layout::packed(&mask, device, AttentionCore::Varlen);
    for precision in [None, Some(Kind::BFloat16)] {
        let _autocast = precision.map(|kind| AutocastGuard::new(device, kind).expect("autocast"));
        let padded = tch::no_grad(|| model.forward_t(&ids, &types, &Layout::padded(&mask, device), false));
        let varlen = tch::no_grad(|| model.forward_t(&ids, &types, &layout, false));
        let diff = max_abs(&padded, &varlen);
        let scale = padded.to_kind(Kind::Float).abs().max().double_value(&[]);
        let tol = if precision.is_some() { 2e-2 * scale.max(1.0) } else { 1e-4 };
        assert!(diff <= tol, "{precision:?}: logits differ by {diff} (largest logit {scale:e})");
    }
    let refused_kernels: Vec<VarlenKernel> = layout.fallback().map(|f| f.kernel).into_iter().collect();
    assert_eq!(refused_kernels, vec![], "a varlen kernel was refused: the comparison ran padded");
}

#[test]
fn cuda_thirty_adam_steps_varlen_match_padded() {
    let Some(device) = cuda() else { return };
    let cfg = small_config(0.0);
    let data: Vec<_> = [&[2i64, 40, 9, 64, 23, 5][..], &[64; 6], &[12, 3, 50, 7, 31, 2]]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (batch(l, 64, 10 + i as i64, device), Tensor::from_slice(&[0i64, 1, 0, 1, 1, 0]).to(device))
        })
        .collect();
    let mut refused_kernels: Vec<VarlenKernel> = Vec::new();
    let mut run = |core: Option<AttentionCore>| {
        let (vs, model) = random_model(&cfg, device, 5);
        let mut layouts =
            LayoutPolicy::new(device, core.is_some()).with_core(core.unwrap_or(AttentionCore::Varlen));
        let mut opt = nn::Adam::default().build(&vs, 1e-4).expect("adam");
        let losses: Vec<f64> = (0..30)
            .map(|step| {
                let ((ids, mask, types), labels) = &data[step % data.len()];
                let layout = layouts.for_batch(mask);
                let logits = model.forward_t(ids, types, &layout, true);
                refused_kernels.extend(layouts.fallback(&layout).map(|f| f.kernel));
                let loss = cross_entropy(&logits, labels);
                opt.backward_step(&loss);
                loss.double_value(&[])
            })
            .collect();
        losses
    };
    let padded = run(None);
    let varlen = run(Some(AttentionCore::Varlen));
    let worst = padded.iter().zip(&varlen).map(|(a, b)| ((a - b) / a.abs()).abs()).fold(0.0f64, f64::max);
    assert!(padded[29] < padded[0], "the padded run did not learn: {padded:?}");
    assert!(worst <= 1e-4, "losses differ by {worst:e} (relative)");
    assert_eq!(refused_kernels, vec![], "a varlen kernel was refused: the comparison ran padded");
}
