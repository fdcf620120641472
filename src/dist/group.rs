//! A c10d process group joined from [`DistEnv`]: TCPStore rendezvous (rank 0 serves it), a check
//! that every rank agrees on the world size, then Gloo (CPU) or NCCL (GPU). Collectives take lists
//! of tensors of any shapes: they are flattened into buckets (c10d's all-reduce needs one shape per
//! call), as DistributedDataParallel buckets its gradients.
use std::time::Duration;

use tch::{Kind, Tensor};

use super::env::DistEnv;
use crate::error::{Error, Result};
use crate::torch_ext::c10d::{self, Group};

pub use crate::torch_ext::c10d::{BackendKind, ReduceOp};

/// DDP's default bucket size (`bucket_cap_mb=25`).
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// How long the survivors of a failed collective wait for each other's word before naming the
/// ranks that did not answer as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct GroupOptions {
    pub backend: BackendKind,
    /// Every collective's limit (`--ddp-timeout`), and how long the rendezvous waits for peers.
    pub timeout: Duration,
    pub bucket_bytes: usize,
}

impl GroupOptions {
    pub fn new(backend: BackendKind, timeout: Duration) -> Self {
        GroupOptions { backend, timeout, bucket_bytes: DEFAULT_BUCKET_BYTES }
    }
}

pub struct ProcessGroup {
    group: Group,
    rank: usize,
    world_size: usize,
    opts: GroupOptions,
    /// Where the backend wants its tensors: CPU for Gloo, this rank's GPU for NCCL.
    device: tch::Device,
    /// Counts failures so each failure's liveness probe uses keys of its own.
    failures: usize,
}

fn dist_error(msg: String) -> Error {
    Error::Runtime(msg)
}

impl ProcessGroup {
    /// Joins the group: rendezvous at MASTER_ADDR:MASTER_PORT, world-size check, backend.
    pub fn join(env: &DistEnv, opts: GroupOptions) -> Result<Self> {
        let (rank, world) = (env.rank, env.world_size);
        if opts.backend == BackendKind::Nccl && !c10d::has_nccl() {
            return Err(dist_error(
                "this build has no NCCL; rebuild bertfit with the CUDA headers (pip packages \
                 nvidia-cuda-crt==13.0.88 and nvidia-cuda-cccl==13.0.85, in the venv or in a \
                 `pip install --target` folder named by BERTFIT_CUDA_HEADERS) or use the gloo backend"
                    .into(),
            ));
        }
        let at = format!("{}:{}", env.master_addr, env.master_port);
        let mut group = Group::connect(&env.master_addr, env.master_port, rank, world, opts.timeout)
            .map_err(|e| {
                if rank == 0 {
                    dist_error(format!(
                        "rank 0 cannot serve the rendezvous store on {at} (MASTER_ADDR:MASTER_PORT): {e}"
                    ))
                } else {
                    dist_error(format!(
                        "rank {rank} cannot reach the master (rank 0) at {at} within {}s: {e}",
                        opts.timeout.as_secs()
                    ))
                }
            })?;
        // Every rank says which world size it was started with; rank 0 compares each with its own,
        // the others compare rank 0's with theirs, so a wrong WORLD_SIZE is named on both sides.
        let ours = world.to_string();
        let store_err = |e: Error| dist_error(format!("rank {rank}: rendezvous at {at}: {e}"));
        if group.store_add(&format!("bertfit/joined/{rank}"), 1).map_err(store_err)? > 1 {
            return Err(dist_error(format!("two processes were started with RANK={rank}")));
        }
        group.store_set(&format!("bertfit/world/{rank}"), ours.as_bytes()).map_err(store_err)?;
        let peers: Vec<usize> = if rank == 0 { (1..world).collect() } else { vec![0] };
        let mut mismatch = None;
        for peer in peers {
            let theirs = group.store_get(&format!("bertfit/world/{peer}")).map_err(|e| {
                dist_error(format!(
                    "rank {rank}: rank {peer} did not join the rendezvous at {at} within {}s: {e}",
                    opts.timeout.as_secs()
                ))
            })?;
            let theirs = String::from_utf8_lossy(&theirs).into_owned();
            if theirs != ours {
                mismatch = Some((peer, theirs));
                break;
            }
        }
        // Each rank says it has compared; rank 0 (whose exit takes the store down) waits for a
        // mismatched rank's word first, so that rank reports the mismatch too, not a lost store.
        group.store_set(&format!("bertfit/checked/{rank}"), b"1").map_err(store_err)?;
        if let Some((peer, theirs)) = mismatch {
            if rank == 0 {
                let _ = group.set_store_timeout(Duration::from_secs(5));
                let _ = group.store_get(&format!("bertfit/checked/{peer}"));
            }
            return Err(dist_error(format!(
                "mismatched world sizes: rank {rank} has WORLD_SIZE={ours} but rank {peer} has {theirs}"
            )));
        }
        group.init_backend(opts.backend, opts.timeout).map_err(|e| {
            dist_error(format!("rank {rank}: cannot start the {:?} backend: {e}", opts.backend))
        })?;
        let device = match opts.backend {
            BackendKind::Gloo => tch::Device::Cpu,
            BackendKind::Nccl => tch::Device::Cuda(env.local_rank),
        };
        Ok(ProcessGroup { group, rank, world_size: world, opts, device, failures: 0 })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    pub fn options(&self) -> &GroupOptions {
        &self.opts
    }

    /// Element-wise reduction of `tensors` across ranks, in place. Any shapes; same list (shapes,
    /// dtypes, order) on every rank.
    pub fn all_reduce(&mut self, tensors: &[Tensor], op: ReduceOp) -> Result<()> {
        self.bucketed("all-reduce", tensors, |g, flat, t| g.all_reduce(flat, op, t))
    }

    /// Rank `root`'s values of `tensors` copied into every rank's, in place.
    pub fn broadcast(&mut self, tensors: &[Tensor], root: usize) -> Result<()> {
        if root >= self.world_size {
            return Err(dist_error(format!("broadcast from rank {root} in a world of {}", self.world_size)));
        }
        self.bucketed("broadcast", tensors, |g, flat, t| g.broadcast(flat, root, t))
    }

    /// The reduction of one number across ranks (f64 on CPU; on NCCL the value travels on the GPU).
    pub fn all_reduce_scalar(&mut self, x: f64, op: ReduceOp) -> Result<f64> {
        let t = Tensor::from_slice(&[x]).to_device(self.device());
        self.all_reduce(std::slice::from_ref(&t), op)?;
        Ok(t.double_value(&[0]))
    }

    pub fn barrier(&mut self) -> Result<()> {
        let timeout = self.opts.timeout;
        let r = self.group.barrier(timeout);
        r.map_err(|e| self.lost("barrier", e))
    }

    /// Where the backend wants its tensors: CPU for Gloo, this rank's GPU for NCCL.
    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// Runs `collective` over flat buckets of `tensors` and copies the results back.
    fn bucketed(
        &mut self,
        what: &str,
        tensors: &[Tensor],
        collective: impl Fn(&mut Group, &[Tensor], Duration) -> Result<()>,
    ) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for bucket in buckets(tensors, self.opts.bucket_bytes) {
            let members: Vec<&Tensor> = bucket.iter().map(|&i| &tensors[i]).collect();
            // Buckets travel on the backend's device (GPU tensors through Gloo go via the CPU).
            let flat = Tensor::cat(&members.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0)
                .to_device(self.device);
            let timeout = self.opts.timeout;
            if let Err(e) = collective(&mut self.group, std::slice::from_ref(&flat), timeout) {
                return Err(self.lost(what, e));
            }
            let mut offset = 0i64;
            for t in members {
                let n = t.numel() as i64;
                let mut t = t.shallow_clone();
                t.f_copy_(&flat.narrow(0, offset, n).view_as(&t))?;
                offset += n;
            }
        }
        Ok(())
    }

    /// Turns a failed collective into an error naming the ranks that are gone: every survivor
    /// writes a key into rank 0's store and waits briefly for the others'; ranks whose key does not
    /// come are named. When the store itself is unreachable, rank 0 (which serves it) is gone.
    fn lost(&mut self, what: &str, e: Error) -> Error {
        self.failures += 1;
        let round = self.failures;
        let rank = self.rank;
        let probe =
            |g: &mut Group, peer: usize| g.store_get(&format!("bertfit/alive/{round}/{peer}")).is_ok();
        let mut gone = Vec::new();
        let reached = self.group.set_store_timeout(PROBE_TIMEOUT).is_ok()
            && self.group.store_set(&format!("bertfit/alive/{round}/{rank}"), b"1").is_ok();
        if !reached {
            gone.push(0);
        } else {
            for peer in (0..self.world_size).filter(|&p| p != rank) {
                if !probe(&mut self.group, peer) {
                    gone.push(peer);
                }
            }
        }
        let who = match gone.as_slice() {
            [] => "every rank is still reachable".to_string(),
            [0] if !reached => "lost rank 0 (the master, whose store is unreachable)".to_string(),
            ranks => format!(
                "lost rank{} {} (no answer within {}s)",
                if ranks.len() > 1 { "s" } else { "" },
                ranks.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", "),
                PROBE_TIMEOUT.as_secs()
            ),
        };
        dist_error(format!("rank {rank}: {what} failed, {who}: {e}"))
    }
}

/// Indices of `tensors` grouped into buckets of at most `cap` bytes (a larger tensor gets a bucket
/// of its own), consecutive and of one dtype and device each, so every rank forms the same buckets.
pub fn buckets(tensors: &[Tensor], cap: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0usize;
    let mut key: Option<(Kind, tch::Device)> = None;
    for (i, t) in tensors.iter().enumerate() {
        let k = (t.kind(), t.device());
        let size = t.numel() * k.0.elt_size_in_bytes();
        let fits = key == Some(k) && bytes + size <= cap;
        match out.last_mut() {
            Some(b) if fits => {
                b.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
                key = Some(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_respect_the_cap_and_the_dtype() {
        let t = |n: i64, k: Kind| Tensor::zeros([n], (k, tch::Device::Cpu));
        let ts = [
            t(10, Kind::Float),
            t(10, Kind::Float),
            t(30, Kind::Float),
            t(5, Kind::Double),
            t(1, Kind::Double),
        ];
        // 80 bytes: 40 + 40 fit, 120 alone, the doubles (40 + 8) together.
        assert_eq!(buckets(&ts, 80), vec![vec![0, 1], vec![2], vec![3, 4]]);
        assert_eq!(buckets(&ts, 1 << 20), vec![vec![0, 1, 2], vec![3, 4]]);
        assert!(buckets(&[], 80).is_empty());
    }
}
