//! A c10d process group joined from [`DistEnv`]: TCPStore rendezvous (rank 0 serves it), a check
//! that every rank agrees on the world size, then Gloo (CPU) or NCCL (GPU). Collectives take lists
//! of tensors of any shapes: they are flattened into buckets (c10d's all-reduce needs one shape per
//! call), as DistributedDataParallel buckets its gradients.
use std::time::Duration;

use tch::{Kind, Tensor};

mod gloo_device;
mod wait;

use super::env::{DistEnv, PortOrigin};
use crate::error::{Error, Result};
use crate::torch_ext::c10d::{self, GlooDevice, Group};
use wait::Watch;

pub use gloo_device::IFNAME_ENV as GLOO_SOCKET_IFNAME;
pub use wait::{WAIT_NOTICE, WAIT_NOTICE_ENV};

pub use crate::torch_ext::c10d::{BackendKind, ReduceOp};

/// DDP's default bucket size (`bucket_cap_mb=25`).
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// How long the survivors of a failed collective wait for each other's word before naming the
/// ranks that did not answer as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long rank 0 waits for a rank with another world size to have read rank 0's, before rank 0's
/// exit takes the store down.
const MISMATCH_WAIT: Duration = Duration::from_secs(5);

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

/// Serves (rank 0) or reaches the rendezvous store.
fn connect(env: &DistEnv, timeout: Duration, watch: &mut Watch) -> Result<Group> {
    let (rank, at) = (env.rank, format!("{}:{}", env.master_addr, env.master_port));
    Group::connect(&env.master_addr, env.master_port, rank, env.world_size, timeout, &mut |_| watch.check())
        .map_err(|e| {
            if wait::is_stop(&e) {
                e
            } else if rank == 0 {
                // A derived port is named as derived, with the way to choose another.
                let origin = match env.port_origin {
                    PortOrigin::Given => "MASTER_ADDR:MASTER_PORT".to_string(),
                    other => format!("MASTER_ADDR; {other}"),
                };
                dist_error(format!("rank 0 cannot serve the rendezvous store on {at} ({origin}): {e}"))
            } else {
                dist_error(format!(
                    "rank {rank} cannot reach the master (rank 0) at {at} within {}s: {e}",
                    timeout.as_secs()
                ))
            }
        })
}

/// Every rank says which world size it was started with; rank 0 compares each with its own, the
/// others compare rank 0's with theirs, so a wrong WORLD_SIZE is named on both sides.
fn check_world_size(group: &mut Group, env: &DistEnv, watch: &mut Watch) -> Result<()> {
    let (rank, world) = (env.rank, env.world_size);
    let at = format!("{}:{}", env.master_addr, env.master_port);
    let ours = world.to_string();
    let store_err = |e: Error| {
        if wait::is_stop(&e) {
            e
        } else {
            dist_error(format!("rank {rank}: rendezvous at {at}: {e}"))
        }
    };
    if group.store_add(&format!("bertfit/joined/{rank}"), 1, &mut |_| watch.check()).map_err(store_err)? > 1 {
        return Err(dist_error(format!("two processes were started with RANK={rank}")));
    }
    group
        .store_set(&format!("bertfit/world/{rank}"), ours.as_bytes(), &mut |_| watch.check())
        .map_err(store_err)?;
    let peers: Vec<usize> = if rank == 0 { (1..world).collect() } else { vec![0] };
    let mut mismatch = None;
    for peer in peers {
        let whom = if peer == 0 {
            format!("the master (rank 0) at {at}")
        } else {
            format!("rank {peer} to join at {at}")
        };
        watch.now_waiting_for(whom);
        // c10d's own read gives up when the join's time is up (its message names the key).
        group.set_store_timeout(watch.remaining()).map_err(store_err)?;
        let theirs =
            group.store_get(&format!("bertfit/world/{peer}"), &mut |_| watch.check()).map_err(|e| {
                if wait::is_stop(&e) {
                    return e;
                }
                dist_error(format!(
                    "rank {rank}: rank {peer} did not join the rendezvous at {at} within {}s: {e}",
                    watch.limit().as_secs()
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
    group.store_set(&format!("bertfit/checked/{rank}"), b"1", &mut |_| watch.check()).map_err(store_err)?;
    if let Some((peer, theirs)) = mismatch {
        if rank == 0 {
            let mut brief = Watch::new(rank, format!("rank {peer}"), MISMATCH_WAIT).short();
            let _ = group.set_store_timeout(MISMATCH_WAIT);
            let _ = group.store_get(&format!("bertfit/checked/{peer}"), &mut |_| brief.check());
        }
        return Err(dist_error(format!(
            "mismatched world sizes: rank {rank} has WORLD_SIZE={ours} but rank {peer} has {theirs}"
        )));
    }
    Ok(())
}

/// Creates the backend within what is left of the join's time (the store reads of Gloo's own
/// rendezvous included); `opts.timeout` stays the backend's default for collectives.
fn init_backend(group: &mut Group, opts: GroupOptions, gloo: &GlooDevice, watch: &mut Watch) -> Result<()> {
    group.set_store_timeout(watch.remaining())?;
    group.init_backend(opts.backend, opts.timeout, gloo, &mut |_| watch.check())?;
    // Later store reads (the liveness probe) set their own limits; this is c10d's default.
    group.set_store_timeout(opts.timeout)
}

impl ProcessGroup {
    /// Joins the group: rendezvous at MASTER_ADDR:MASTER_PORT, world-size check, backend. The whole
    /// join is bounded by `opts.timeout`, says every 30 s whom it waits for, and ends within a
    /// tenth of a second of a stop request (SIGTERM, Ctrl-C).
    pub fn join(env: &DistEnv, opts: GroupOptions) -> Result<Self> {
        let rank = env.rank;
        if opts.backend == BackendKind::Nccl && !c10d::has_nccl() {
            return Err(dist_error(
                "this build has no NCCL; rebuild bertfit with the CUDA headers (pip packages \
                 nvidia-cuda-crt==13.0.88 and nvidia-cuda-cccl==13.0.85, in the venv or in a \
                 `pip install --target` folder named by BERTFIT_CUDA_HEADERS) or use the gloo backend"
                    .into(),
            ));
        }
        let at = format!("{}:{}", env.master_addr, env.master_port);
        let mut watch = Watch::new(rank, format!("the master (rank 0) at {at}"), opts.timeout);
        let mut group = connect(env, opts.timeout, &mut watch)?;
        check_world_size(&mut group, env, &mut watch)?;
        let gloo = match opts.backend {
            BackendKind::Gloo => Some(
                gloo_device::choose(&env.master_addr, env.master_port)
                    .map_err(|e| dist_error(format!("rank {rank}: {e}")))?,
            ),
            BackendKind::Nccl => None,
        };
        if let Some(choice) = &gloo {
            eprintln!("rank {rank}: {}", choice.describe());
        }
        watch.now_waiting_for(format!("the other ranks to connect their {:?} backend", opts.backend));
        let device = gloo.map_or(GlooDevice::Host(String::new()), |c| c.device);
        init_backend(&mut group, opts, &device, &mut watch).map_err(|e| {
            if wait::is_stop(&e) {
                return e;
            }
            let hint = match &device {
                GlooDevice::Host(h) if opts.backend == BackendKind::Gloo => format!(
                    " (Gloo bound to {h}; if the other hosts cannot reach it, set {} to the \
                     interface that reaches them)",
                    gloo_device::IFNAME_ENV
                ),
                _ => String::new(),
            };
            dist_error(format!("rank {rank}: cannot start the {:?} backend: {e}{hint}", opts.backend))
        })?;
        let device = match opts.backend {
            BackendKind::Gloo => tch::Device::Cpu,
            BackendKind::Nccl => tch::Device::Cuda(env.local_rank),
        };
        Ok(ProcessGroup { group, rank, world_size: env.world_size, opts, device, failures: 0 })
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
    /// come are named. When the store itself does not answer, rank 0 (which serves it) is gone.
    /// Each store call is bounded (a partitioned link does not hold it), so this takes at most
    /// about [`PROBE_TIMEOUT`] per peer plus a little, stop request or not.
    fn lost(&mut self, what: &str, e: Error) -> Error {
        self.failures += 1;
        let round = self.failures;
        let rank = self.rank;
        let mut watch = Watch::new(rank, "the master's store (rank 0)", PROBE_TIMEOUT).short();
        let reached = self.group.set_store_timeout(PROBE_TIMEOUT).is_ok()
            && self
                .group
                .store_set(&format!("bertfit/alive/{round}/{rank}"), b"1", &mut |_| watch.check())
                .is_ok();
        let mut gone = Vec::new();
        if !reached {
            gone.push(0);
        } else {
            for peer in (0..self.world_size).filter(|&p| p != rank) {
                let mut watch = Watch::new(rank, format!("rank {peer}'s word"), PROBE_TIMEOUT).short();
                let key = format!("bertfit/alive/{round}/{peer}");
                if self.group.store_get(&key, &mut |_| watch.check()).is_err() {
                    gone.push(peer);
                }
            }
        }
        // A call the watch abandoned: the store itself stopped answering (a partition from rank 0).
        let reached = reached && !self.group.is_abandoned();
        if !reached {
            gone = vec![0];
        }
        let who = match gone.as_slice() {
            [] => "every rank is still reachable".to_string(),
            [0] if !reached => "lost rank 0 (the master, whose store does not answer)".to_string(),
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
