//! What the Trainer calls to train data-parallel, as `DistributedDataParallel` does it: same
//! weights on every rank at the start, gradients averaged across ranks before each optimiser
//! step. Each rank sees its own share of the data (DistributedSampler).
//!
//! Where the Trainer calls each:
//! - [`Ddp::from_env`] once, before building the model (None: a single-process run);
//! - [`Ddp::broadcast_parameters`] after the weights are loaded/initialised (and after a resume),
//!   before the first step, so rank 0's values are everyone's;
//! - [`Ddp::all_reduce_gradients`] after the backward of the last micro-batch of each accumulation
//!   window, before unscaling, clipping and the optimiser step (so clipping sees the global norm);
//! - [`Ddp::step_summary`] after it, for the step's loss (the mean over ranks), every rank's rows
//!   and the agreed stop;
//! - [`Ddp::all_gather`] when a checkpoint is written, for every rank's own generator state and
//!   data order (rank 0 writes them all, each rank restores its own);
//! - [`Ddp::sum`] for other totals, and [`Ddp::is_main`] to let only rank 0 report and save.
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::env::DistEnv;
use super::group::{GroupOptions, ProcessGroup};
use crate::error::{Error, Result};
use crate::torch_ext::c10d::{self, BackendKind, ReduceOp};

/// What [`Ddp::step_summary`] agrees on.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSummary {
    /// The step's loss: the mean of the ranks' window losses.
    pub loss: f64,
    /// Each rank's data rows (1-based), in rank order.
    pub rank_rows: Vec<Vec<usize>>,
    /// Some rank was asked to stop: every rank ends after this step.
    pub stop: bool,
}

pub struct Ddp {
    pg: ProcessGroup,
    env: DistEnv,
    /// Seconds spent in [`Ddp::all_reduce_gradients`] so far (waiting for slower ranks included).
    allreduce_seconds: f64,
}

/// The backend for a run on `device` (`--ddp-backend`, HF's `ddp_backend`): the one asked for, or
/// by default Gloo on the CPU and NCCL on CUDA (Gloo when this build has no NCCL: it reduces CUDA
/// tensors through the CPU). NCCL is refused on the CPU and in a build without it.
pub fn choose_backend(requested: Option<BackendKind>, device: Device) -> Result<BackendKind> {
    let cuda = matches!(device, Device::Cuda(_));
    match requested {
        Some(BackendKind::Nccl) if !cuda => Err(Error::usage(
            "--ddp-backend",
            "nccl runs collectives on CUDA devices, and this run's device is the CPU: use gloo (the \
             default on CPU) or --device cuda",
        )),
        Some(BackendKind::Nccl) if !c10d::has_nccl() => Err(Error::usage(
            "--ddp-backend",
            "nccl: this build has no NCCL; rebuild bertfit with the CUDA headers (pip packages \
             nvidia-cuda-crt==13.0.88 and nvidia-cuda-cccl==13.0.85) or use gloo",
        )),
        Some(b) => Ok(b),
        None if cuda && c10d::has_nccl() => Ok(BackendKind::Nccl),
        None => Ok(BackendKind::Gloo),
    }
}

impl Ddp {
    /// Joins the group described by torchrun's or SLURM's variables; `None` when there is no
    /// WORLD_SIZE (or SLURM_NTASKS) or it is 1. The backend is [`choose_backend`]'s default for
    /// `device`.
    pub fn from_env(device: Device, timeout: Duration) -> Result<Option<Ddp>> {
        Self::from_env_with(choose_backend(None, device)?, timeout, false)
    }

    /// As [`Ddp::from_env`] with the backend chosen by the caller. A world of one runs as a
    /// plain process unless `join_world_of_one` (the user named a backend: `--ddp-backend`), as
    /// when measuring what the process group itself costs.
    pub fn from_env_with(
        backend: BackendKind,
        timeout: Duration,
        join_world_of_one: bool,
    ) -> Result<Option<Ddp>> {
        let env = if join_world_of_one { DistEnv::launched()? } else { DistEnv::from_env()? };
        let Some(env) = env else {
            return Ok(None);
        };
        let pg = ProcessGroup::join(&env, GroupOptions::new(backend, timeout))?;
        Ok(Some(Ddp::new(pg, env)))
    }

    /// Over a group already joined from `env`.
    pub fn new(pg: ProcessGroup, env: DistEnv) -> Self {
        Ddp { pg, env, allreduce_seconds: 0.0 }
    }

    /// The backend the collectives run on.
    pub fn backend(&self) -> BackendKind {
        self.pg.options().backend
    }

    /// Seconds spent averaging gradients so far: the collectives and the wait for the slowest rank
    /// to reach them (the trainer reports it per epoch).
    pub fn allreduce_seconds(&self) -> f64 {
        self.allreduce_seconds
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
        let started = Instant::now();
        let result = self.average_gradients(params);
        self.allreduce_seconds += started.elapsed().as_secs_f64();
        result
    }

    fn average_gradients(&mut self, params: &[Tensor]) -> Result<()> {
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

    /// What a step reports, in one collective: the mean over ranks of each rank's window loss (the
    /// loss of every example of the step, when the ranks' windows are equal), each rank's data
    /// rows in rank order, and whether any rank was asked to stop (`stop`: this rank's signal
    /// flag). The stop is agreed here so that every rank ends after the same step and saves the
    /// same checkpoint: a scheduler's SIGTERM reaches the ranks at slightly different moments,
    /// and a rank that went on alone would wait in the next all-reduce for ranks that had left.
    /// `capacity`: the most rows a window can hold (per-rank batch size times accumulation
    /// steps), the same on every rank. Rows are 1-based, so 0 marks an empty slot.
    pub fn step_summary(
        &mut self,
        loss: f64,
        rows: &[usize],
        capacity: usize,
        stop: bool,
    ) -> Result<StepSummary> {
        if rows.len() > capacity {
            return Err(Error::Runtime(format!(
                "rank {}: a step of {} rows, more than its {capacity} slots",
                self.rank(),
                rows.len()
            )));
        }
        let (rank, world) = (self.rank(), self.world_size());
        let mut values = vec![0.0; 2 + world * capacity];
        values[0] = loss;
        values[1] = if stop { 1.0 } else { 0.0 };
        for (slot, &row) in values[2 + rank * capacity..].iter_mut().zip(rows) {
            *slot = row as f64;
        }
        let summed = self.sum(&values)?;
        let rank_rows = summed[2..]
            .chunks(capacity.max(1))
            .map(|c| c.iter().filter(|&&r| r > 0.0).map(|&r| r as usize).collect())
            .collect();
        Ok(StepSummary { loss: summed[0] / world as f64, rank_rows, stop: summed[1] > 0.0 })
    }

    /// Every rank's `values`, in rank order, on every rank (lengths may differ between ranks).
    /// Exact for integers up to 2^53 (it travels as f64: a generator state's bytes, data indices).
    pub fn all_gather(&mut self, values: &[f64]) -> Result<Vec<Vec<f64>>> {
        let (rank, world) = (self.rank(), self.world_size());
        let mut lengths = vec![0.0; world];
        lengths[rank] = values.len() as f64;
        let lengths: Vec<usize> = self.sum(&lengths)?.into_iter().map(|n| n as usize).collect();
        let width = lengths.iter().copied().max().unwrap_or(0);
        let mut slots = vec![0.0; world * width];
        slots[rank * width..rank * width + values.len()].copy_from_slice(values);
        let summed = self.sum(&slots)?;
        Ok((0..world).map(|r| summed[r * width..r * width + lengths[r]].to_vec()).collect())
    }

    /// The element-wise sum of `values` over the ranks, in f64: which ranks have each gradient, a
    /// step's losses, stop flags and rows ([`Self::step_summary`]), and [`Self::all_gather`]'s slots.
    /// (Evaluation is not sharded: every rank evaluates all rows, so nothing of it is summed.)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_device_unless_asked() {
        assert_eq!(choose_backend(None, Device::Cpu).unwrap(), BackendKind::Gloo);
        let cuda = choose_backend(None, Device::Cuda(0)).unwrap();
        assert_eq!(cuda, if c10d::has_nccl() { BackendKind::Nccl } else { BackendKind::Gloo });
        assert_eq!(choose_backend(Some(BackendKind::Gloo), Device::Cuda(1)).unwrap(), BackendKind::Gloo);
        let cpu = choose_backend(Some(BackendKind::Nccl), Device::Cpu).unwrap_err().to_string();
        assert!(cpu.contains("this run's device is the CPU"), "{cpu}");
        match choose_backend(Some(BackendKind::Nccl), Device::Cuda(0)) {
            Ok(b) => assert!(c10d::has_nccl() && b == BackendKind::Nccl),
            Err(e) => assert!(!c10d::has_nccl() && e.to_string().contains("this build has no NCCL"), "{e}"),
        }
    }
}
