//! `bertfit dist-selftest`: joins the group from the environment, runs each collective on known
//! values and checks the results, so a launch setup (ports, hosts, world size) can be tried without
//! training. Also the probe the tests launch, and a timing of a MiniLM-sized gradient all-reduce.
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::ddp::Ddp;
use super::env::DistEnv;
use super::group::{GroupOptions, ProcessGroup};
use crate::error::{Error, Result};
use crate::torch_ext::c10d::{BackendKind, ReduceOp};

#[derive(Debug, Clone, Copy)]
pub struct SelftestOptions {
    pub backend: BackendKind,
    pub timeout: Duration,
    /// After the checks, all-reduce a small tensor this many times (`None`: until a failure).
    pub loops: Option<usize>,
    /// After the checks, time this many all-reduces of MiniLM-sized gradients.
    pub bench: usize,
    /// After the checks, check [`Ddp`]'s gradient averaging against one process on the whole batch.
    pub ddp_check: bool,
}

/// The shapes of all-MiniLM-L6-v2's parameters plus a 2-class head (22.7 M values).
pub fn minilm_shapes() -> Vec<Vec<i64>> {
    let (h, ffn) = (384, 1536);
    let mut s = vec![vec![30522, h], vec![512, h], vec![2, h], vec![h], vec![h]];
    for _ in 0..6 {
        for _ in 0..4 {
            s.extend([vec![h, h], vec![h]]);
        }
        s.extend([vec![h], vec![h], vec![ffn, h], vec![ffn], vec![h, ffn], vec![h], vec![h], vec![h]]);
    }
    s.extend([vec![h, h], vec![h], vec![2, h], vec![2]]);
    s
}

fn expect(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    let diff = (got - want).abs().max().double_value(&[]);
    if diff > 1e-9 {
        return Err(Error::Runtime(format!(
            "{what}: got {got:?}, expected {want:?} (max difference {diff})"
        )));
    }
    Ok(())
}

/// Runs the self-test; `out` receives one line per result (the binary prints them).
pub fn run(opts: SelftestOptions, mut out: impl FnMut(String)) -> Result<()> {
    let env = DistEnv::from_env()?.ok_or_else(|| {
        Error::usage(
            "WORLD_SIZE",
            "not a multi-process run: launch with torchrun, scripts/launch-local.sh or srun",
        )
    })?;
    let mut pg = ProcessGroup::join(&env, GroupOptions::new(opts.backend, opts.timeout))?;
    let (rank, world) = (pg.rank() as f64, pg.world_size() as f64);
    let device = match opts.backend {
        BackendKind::Gloo => Device::Cpu,
        BackendKind::Nccl => Device::Cuda(env.local_rank),
    };
    out(format!("rank {} of {}: joined {}:{}", env.rank, env.world_size, env.master_addr, env.master_port));

    // Tensors of different shapes and dtypes in one call: rank r holds (r + 1) times a pattern.
    let f = (Kind::Float, device);
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(device) * (rank + 1.0);
    let b = Tensor::arange(4, f).view([2, 2]) * (rank + 1.0);
    let c = Tensor::from_slice(&[rank]).to_device(device);
    pg.all_reduce(&[a.shallow_clone(), b.shallow_clone(), c.shallow_clone()], ReduceOp::Sum)?;
    let factor = world * (world + 1.0) / 2.0;
    expect("all-reduce [3]", &a, &(Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(device) * factor))?;
    expect("all-reduce [2, 2]", &b, &(Tensor::arange(4, f).view([2, 2]) * factor))?;
    expect("all-reduce f64", &c, &Tensor::from_slice(&[world * (world - 1.0) / 2.0]).to_device(device))?;
    let bc = Tensor::full([5], rank + 7.0, f);
    pg.broadcast(std::slice::from_ref(&bc), 0)?;
    expect("broadcast", &bc, &Tensor::full([5], 7.0, f))?;
    let max = pg.all_reduce_scalar(rank, ReduceOp::Max)?;
    if max != world - 1.0 {
        return Err(Error::Runtime(format!("all-reduce max: got {max}, expected {}", world - 1.0)));
    }
    pg.barrier()?;
    out(format!(
        "rank {}: all-reduce sum {:?} broadcast {:?} max {max}: ok",
        env.rank,
        Vec::<f32>::try_from(&a)?,
        Vec::<f32>::try_from(&bc)?
    ));

    let mut i = 0usize;
    while opts.loops.is_none_or(|n| i < n) {
        let t = Tensor::ones([1024], f);
        pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Sum)?;
        out(format!("rank {}: loop {i}", env.rank));
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }

    if opts.bench > 0 {
        let grads: Vec<Tensor> = minilm_shapes().iter().map(|s| Tensor::randn(s.as_slice(), f)).collect();
        let numel: i64 = grads.iter().map(|g| g.numel() as i64).sum();
        pg.all_reduce(&grads, ReduceOp::Sum)?; // warm-up: connections and buffers
        let start = Instant::now();
        for _ in 0..opts.bench {
            pg.all_reduce(&grads, ReduceOp::Sum)?;
        }
        let each = start.elapsed().as_secs_f64() / opts.bench as f64;
        out(format!(
            "rank {}: all-reduce of {} tensors, {numel} f32 values ({:.1} MB): {:.1} ms each over {} runs",
            env.rank,
            grads.len(),
            numel as f64 * 4.0 / 1e6,
            each * 1e3,
            opts.bench
        ));
    }
    if opts.ddp_check {
        let diff = ddp_check(&mut Ddp::new(pg, env.clone()))?;
        out(format!(
            "rank {}: ddp gradients vs one process on the whole batch: max difference {diff:e}",
            env.rank
        ));
    }
    Ok(())
}

/// A two-layer classifier with different initial weights per rank and its own rows of a shared
/// batch per rank: after [`Ddp::broadcast_parameters`] and [`Ddp::all_reduce_gradients`], every
/// rank's gradients must equal those of rank 0's weights on the whole batch. Returns the largest
/// difference. A fifth parameter is never used (no gradient) and must stay without one.
fn ddp_check(ddp: &mut Ddp) -> Result<f64> {
    let (rank, world) = (ddp.rank() as i64, ddp.world_size() as i64);
    let per_rank = 4i64;
    let f = (Kind::Float, Device::Cpu);
    tch::manual_seed(1 + rank);
    let params: Vec<Tensor> = [vec![16i64, 8], vec![16], vec![3, 16], vec![3], vec![4]]
        .iter()
        .map(|s| Tensor::randn(s.as_slice(), f).set_requires_grad(true))
        .collect();
    ddp.broadcast_parameters(&params)?;
    let forward = |ps: &[Tensor], x: &Tensor, y: &Tensor| {
        let h = x.linear(&ps[0], Some(&ps[1])).tanh();
        h.linear(&ps[2], Some(&ps[3])).cross_entropy_for_logits(y)
    };
    // The whole batch, the same on every rank.
    tch::manual_seed(100);
    let x = Tensor::randn([per_rank * world, 8], f);
    let y = Tensor::randint(3, [per_rank * world], (Kind::Int64, Device::Cpu));
    let mine = |t: &Tensor| t.narrow(0, rank * per_rank, per_rank);
    forward(&params, &mine(&x), &mine(&y)).backward();
    ddp.all_reduce_gradients(&params)?;
    if params[4].grad().defined() {
        return Err(Error::Runtime("the unused parameter got a gradient".into()));
    }
    // Reference: rank 0's initial weights (seed 1), whole batch, one process.
    tch::manual_seed(1);
    let reference: Vec<Tensor> = [vec![16i64, 8], vec![16], vec![3, 16], vec![3], vec![4]]
        .iter()
        .map(|s| Tensor::randn(s.as_slice(), f).set_requires_grad(true))
        .collect();
    forward(&reference, &x, &y).backward();
    let mut diff = 0f64;
    for (p, r) in params.iter().zip(&reference).take(4) {
        diff = diff.max((p - r).abs().max().double_value(&[]));
        diff = diff.max((p.grad() - r.grad()).abs().max().double_value(&[]));
    }
    Ok(diff)
}
