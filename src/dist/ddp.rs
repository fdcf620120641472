//! What the Trainer calls to train data-parallel, as `DistributedDataParallel` does it: same
//! weights on every rank at the start, gradients averaged across ranks before each optimiser
//! step, evaluation counts summed. Each rank sees its own share of the data (DistributedSampler).
//!
//! Where the Trainer calls each:
//! - [`Ddp::from_env`] once, before building the model (None: a single-process run);
//! - [`Ddp::broadcast_parameters`] after the weights are loaded/initialised (and after a resume),
//!   before the first step, so rank 0's values are everyone's;
//! - [`Ddp::all_reduce_gradients`] after the backward of the last micro-batch of each accumulation
//!   window, before unscaling, clipping and the optimiser step (so clipping sees the global norm);
//! - [`Ddp::sum`] for evaluation totals (loss sums, example counts, confusion counts), and
//!   [`Ddp::is_main`] to let only rank 0 report and save.
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use super::env::DistEnv;
use super::group::{GroupOptions, ProcessGroup};
use crate::error::{Error, Result};
use crate::torch_ext::c10d::{self, BackendKind, ReduceOp};

pub struct Ddp {
    pg: ProcessGroup,
    env: DistEnv,
}

impl Ddp {
    /// Joins the group described by torchrun's or SLURM's variables; `None` when there is no
    /// WORLD_SIZE (or SLURM_NTASKS) or it is 1. NCCL when this build has it and CUDA is available,
    /// else Gloo.
    pub fn from_env(timeout: Duration) -> Result<Option<Ddp>> {
        let backend =
            if c10d::has_nccl() && tch::Cuda::is_available() { BackendKind::Nccl } else { BackendKind::Gloo };
        Self::from_env_with(backend, timeout)
    }

    /// As [`Ddp::from_env`] with the backend chosen by the caller.
    pub fn from_env_with(backend: BackendKind, timeout: Duration) -> Result<Option<Ddp>> {
        let Some(env) = DistEnv::from_env()? else {
            return Ok(None);
        };
        let pg = ProcessGroup::join(&env, GroupOptions::new(backend, timeout))?;
        Ok(Some(Ddp { pg, env }))
    }

    /// Over a group already joined from `env`.
    pub fn new(pg: ProcessGroup, env: DistEnv) -> Self {
        Ddp { pg, env }
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    /// This process's GPU index on its node.
    pub fn local_rank(&self) -> usize {
        self.env.local_rank
    }

    /// Rank 0: the one that prints, reports and saves.
    pub fn is_main(&self) -> bool {
        self.env.rank == 0
    }

    pub fn group(&mut self) -> &mut ProcessGroup {
        &mut self.pg
    }

    /// Rank 0's values of `params` copied into every rank's (in place, no autograd record).
    pub fn broadcast_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        self.pg.broadcast(params, 0)
    }

    /// Replaces each parameter's gradient with its mean over the ranks. Parameters without a
    /// gradient are skipped; they must be the same on every rank (checked: a parameter with a
    /// gradient on some ranks only is an error, as DDP's unused-parameter check).
    pub fn all_reduce_gradients(&mut self, params: &[Tensor]) -> Result<()> {
        let grads: Vec<Option<Tensor>> =
            params.iter().map(|p| Some(p.grad()).filter(|g| g.defined())).collect();
        let present: Vec<f64> = grads.iter().map(|g| if g.is_some() { 1.0 } else { 0.0 }).collect();
        let counts = self.sum(&present)?;
        let world = self.world_size() as f64;
        if let Some(i) = counts.iter().position(|&c| c != 0.0 && c != world) {
            return Err(Error::Runtime(format!(
                "rank {}: parameter {i} has a gradient on {} of {} ranks (a part of the model is \
                 unused on some ranks)",
                self.rank(),
                counts[i],
                world
            )));
        }
        let grads: Vec<Tensor> = grads.into_iter().flatten().collect();
        self.pg.all_reduce(&grads, ReduceOp::Sum)?;
        let _guard = tch::no_grad_guard();
        for g in &grads {
            let _ = g.shallow_clone().f_div_scalar_(world)?;
        }
        Ok(())
    }

    /// The element-wise sum of `values` over the ranks (evaluation counts and loss sums), in f64.
    pub fn sum(&mut self, values: &[f64]) -> Result<Vec<f64>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let t = Tensor::from_slice(values).to_kind(Kind::Double).to_device(self.pg.device());
        self.pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Sum)?;
        Ok(Vec::<f64>::try_from(&t.to_device(Device::Cpu))?)
    }

    pub fn barrier(&mut self) -> Result<()> {
        self.pg.barrier()
    }
}
