//! Who this process is in a multi-process run: rank, world size, local rank and the rendezvous
//! address, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or,
//! without them, from SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the first host of
//! SLURM_JOB_NODELIST). torchrun's win when both are set: torchrun inside an allocation is common.
//! Under SLURM without MASTER_PORT the port is derived from SLURM_JOB_ID and SLURM_STEP_ID
//! ([`slurm_port`]), so two multi-task jobs on one node do not both take torchrun's 29500.
use crate::bounds;
use crate::error::{Error, Result};

/// torchrun's default rendezvous port, used under SLURM when neither MASTER_PORT nor
/// SLURM_JOB_ID is set.
pub const DEFAULT_PORT: u16 = 29500;

/// Ports derived from a SLURM job lie in `SLURM_PORT_BASE .. SLURM_PORT_BASE + SLURM_PORT_SPAN`:
/// below Linux's ephemeral range (32768 and up), so no outgoing connection holds one.
pub const SLURM_PORT_BASE: u16 = 20000;
pub const SLURM_PORT_SPAN: u64 = 12000;

/// The rendezvous port of SLURM job step `step_id` of job `job_id`, for bertfit started straight
/// under srun without MASTER_PORT: a fixed port would make two multi-task jobs sharing a node
/// collide. 1200 consecutive job ids, and steps 0-9 of each, get distinct ports.
/// scripts/slurm/common.sh (`derived_port`) uses the same rule.
pub fn slurm_port(job_id: u64, step_id: u64) -> u16 {
    let offset = (job_id.wrapping_mul(10).wrapping_add(step_id % 10)) % SLURM_PORT_SPAN;
    SLURM_PORT_BASE + offset as u16
}

/// Where the rendezvous port came from, so a message about it can say how to change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortOrigin {
    /// MASTER_PORT.
    Given,
    /// Derived from SLURM_JOB_ID and SLURM_STEP_ID ([`slurm_port`]).
    SlurmJob { job_id: u64, step_id: u64 },
    /// [`DEFAULT_PORT`]: SLURM without a job id.
    Default,
}

impl std::fmt::Display for PortOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortOrigin::Given => write!(f, "MASTER_PORT"),
            PortOrigin::SlurmJob { job_id, step_id } => write!(
                f,
                "port derived from SLURM_JOB_ID={job_id} and SLURM_STEP_ID={step_id}; set MASTER_PORT to \
                 choose another"
            ),
            PortOrigin::Default => write!(f, "torchrun's default port; set MASTER_PORT to choose another"),
        }
    }
}

/// Where the variables came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    Torchrun,
    Slurm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    /// Index of this process on its node: its GPU is cuda:local_rank.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    pub port_origin: PortOrigin,
    pub launcher: Launcher,
}

impl DistEnv {
    /// From this process's environment; `None` when it is not part of a multi-process run
    /// (no WORLD_SIZE nor SLURM_NTASKS, or a world of one).
    pub fn from_env() -> Result<Option<DistEnv>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`DistEnv::from_env`], reading variables through `var` (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<DistEnv>> {
        Ok(Self::launched_from_vars(var)?.filter(|env| env.world_size > 1))
    }

    /// As [`DistEnv::from_env`], a world of one included: a launcher's variables were set, even
    /// if for one process (`torchrun --nproc_per_node 1`, a one-task `srun`).
    pub fn launched() -> Result<Option<DistEnv>> {
        Self::launched_from_vars(|k| std::env::var(k).ok())
    }

    fn launched_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<DistEnv>> {
        let env = if var("WORLD_SIZE").is_some() {
            let rank = number(&var, "RANK")?;
            DistEnv {
                rank,
                world_size: number(&var, "WORLD_SIZE")?,
                // Plain `RANK=.. WORLD_SIZE=..` launches on one node often omit it.
                local_rank: optional_number(&var, "LOCAL_RANK")?.unwrap_or(rank),
                master_addr: required(&var, "MASTER_ADDR")?,
                master_port: port(&var, "MASTER_PORT")?.ok_or_else(|| missing("MASTER_PORT"))?,
                port_origin: PortOrigin::Given,
                launcher: Launcher::Torchrun,
            }
        } else if var("SLURM_NTASKS").is_some() {
            let master_addr = match var("MASTER_ADDR") {
                Some(a) if !a.trim().is_empty() => a.trim().to_string(),
                _ => {
                    let (name, list) = match var("SLURM_JOB_NODELIST") {
                        Some(l) => ("SLURM_JOB_NODELIST", l),
                        None => ("SLURM_NODELIST", required(&var, "SLURM_NODELIST")?),
                    };
                    first_host(&list).map_err(|msg| Error::usage(name, format!("{list:?}: {msg}")))?
                }
            };
            let (master_port, port_origin) = slurm_rendezvous_port(&var)?;
            DistEnv {
                rank: number(&var, "SLURM_PROCID")?,
                world_size: number(&var, "SLURM_NTASKS")?,
                local_rank: number(&var, "SLURM_LOCALID")?,
                master_addr,
                master_port,
                port_origin,
                launcher: Launcher::Slurm,
            }
        } else {
            return Ok(None);
        };
        let (rank_var, world_var) = match env.launcher {
            Launcher::Torchrun => ("RANK", "WORLD_SIZE"),
            Launcher::Slurm => ("SLURM_PROCID", "SLURM_NTASKS"),
        };
        let local_var = if env.launcher == Launcher::Torchrun { "LOCAL_RANK" } else { "SLURM_LOCALID" };
        bounds::world_size(world_var, env.world_size)?;
        // A local rank indexes this node's GPUs: bounded by the limit, not by the world.
        bounds::rank(local_var, env.local_rank, bounds::MAX_WORLD_SIZE, "the limit")?;
        bounds::rank(rank_var, env.rank, env.world_size, world_var)?;
        Ok(Some(env))
    }
}

/// Under SLURM: MASTER_PORT if set, else the port of this job step ([`slurm_port`]), else
/// [`DEFAULT_PORT`]. Every task of a step reads the same job and step ids, so they agree.
fn slurm_rendezvous_port(var: &impl Fn(&str) -> Option<String>) -> Result<(u16, PortOrigin)> {
    if let Some(p) = port(var, "MASTER_PORT")? {
        return Ok((p, PortOrigin::Given));
    }
    let id = |name: &str| optional_number::<u64>(var, name);
    match id("SLURM_JOB_ID")? {
        Some(job_id) => {
            let step_id = id("SLURM_STEP_ID")?.unwrap_or(0);
            Ok((slurm_port(job_id, step_id), PortOrigin::SlurmJob { job_id, step_id }))
        }
        None => Ok((DEFAULT_PORT, PortOrigin::Default)),
    }
}

fn missing(name: &str) -> Error {
    Error::usage(name, "is not set (a multi-process run needs it)")
}

fn required(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String> {
    match var(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(Error::usage(name, "is empty")),
        None => Err(missing(name)),
    }
}

/// A non-negative integer variable (`usize` for counts and ranks, `u64` for SLURM's ids).
fn optional_number<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>> {
    match var(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| Error::usage(name, format!("{v:?} is not a non-negative integer"))),
    }
}

fn number(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<usize> {
    optional_number(var, name)?.ok_or_else(|| missing(name))
}

fn port(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<u16>> {
    match var(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(Error::usage(name, format!("{v:?} is not a port (1-65535)"))),
        },
    }
}

/// The first host of a SLURM host list: `node[01-04,07],gpu5` gives `node01`, keeping the zero
/// padding; `rack[1-2]-n[3-4]` gives `rack1-n3` (each bracket contributes its first value).
pub fn first_host(list: &str) -> std::result::Result<String, String> {
    // The first entry ends at a comma outside brackets.
    let mut depth = 0usize;
    let mut end = list.len();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1).ok_or("a ']' without its '['")?,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let entry = list[..end].trim();
    let mut host = String::new();
    let mut rest = entry;
    while let Some(open) = rest.find('[') {
        host.push_str(&rest[..open]);
        let close = rest[open..].find(']').ok_or("a '[' without its ']'")? + open;
        let first = rest[open + 1..close].split(',').next().unwrap_or("");
        let first = first.split('-').next().unwrap_or("").trim();
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("range [{}] does not start with a number", &rest[open + 1..close]));
        }
        host.push_str(first);
        rest = &rest[close + 1..];
    }
    if rest.contains(']') {
        return Err("a ']' without its '['".into());
    }
    host.push_str(rest);
    if host.is_empty() {
        return Err("no host in the list".into());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<DistEnv>> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DistEnv::from_vars(|k| map.get(k).cloned())
    }

    fn usage_flag(r: Result<Option<DistEnv>>) -> String {
        match r {
            Err(Error::Usage { flag, msg }) => format!("{flag}: {msg}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn world_sizes_and_local_ranks_are_bounded() {
        let world = |n: &str| {
            read(&[("RANK", "0"), ("WORLD_SIZE", n), ("MASTER_ADDR", "h"), ("MASTER_PORT", "29400")])
        };
        assert_eq!(world("65536").unwrap().unwrap().world_size, 65_536);
        let e = usage_flag(world("1099511627776"));
        assert!(
            e.contains("WORLD_SIZE: 1099511627776 is more than bertfit's limit of 65536 processes"),
            "{e}"
        );
        let e = usage_flag(world("18446744073709551615"));
        assert!(e.contains("more than bertfit's limit"), "{e}");
        let e = usage_flag(world("18446744073709551616"));
        assert!(e.contains("is not a non-negative integer"), "{e}");
        let e = usage_flag(read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "99999999"),
            ("SLURM_JOB_NODELIST", "n1"),
        ]));
        assert!(e.contains("SLURM_LOCALID: 99999999 is not below"), "{e}");
    }

    #[test]
    fn torchrun_variables() {
        let e = read(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            e,
            DistEnv {
                rank: 3,
                world_size: 8,
                local_rank: 1,
                master_addr: "10.0.0.1".into(),
                master_port: 29400,
                port_origin: PortOrigin::Given,
                launcher: Launcher::Torchrun
            }
        );
    }

    #[test]
    fn no_variables_or_a_world_of_one_is_not_distributed() {
        assert_eq!(read(&[]).unwrap(), None);
        let one = [("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")];
        assert_eq!(read(&one).unwrap(), None);
        assert_eq!(
            read(&[
                ("SLURM_NTASKS", "1"),
                ("SLURM_PROCID", "0"),
                ("SLURM_LOCALID", "0"),
                ("SLURM_JOB_NODELIST", "n1")
            ])
            .unwrap(),
            None
        );
    }

    #[test]
    fn missing_and_invalid_torchrun_values_are_named() {
        let base = [("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "29500")];
        let without = |k: &str| base.iter().copied().filter(|(n, _)| *n != k).collect::<Vec<_>>();
        assert!(usage_flag(read(&without("RANK"))).starts_with("RANK: is not set"));
        assert!(usage_flag(read(&without("MASTER_ADDR"))).starts_with("MASTER_ADDR: is not set"));
        assert!(usage_flag(read(&without("MASTER_PORT"))).starts_with("MASTER_PORT: is not set"));
        let with = |k: &str, v: &'static str| {
            base.iter().map(|&(n, x)| if n == k { (n, v) } else { (n, x) }).collect::<Vec<_>>()
        };
        assert!(usage_flag(read(&with("RANK", "x"))).contains("RANK: \"x\" is not a non-negative integer"));
        assert!(usage_flag(read(&with("RANK", "2"))).contains("RANK: 2 is not below WORLD_SIZE=2"));
        assert!(
            usage_flag(read(&with("MASTER_PORT", "70000"))).contains("MASTER_PORT: \"70000\" is not a port")
        );
        assert!(usage_flag(read(&with("WORLD_SIZE", "0"))).contains("WORLD_SIZE: must be at least 1"));
        // LOCAL_RANK defaults to RANK (one node).
        assert_eq!(read(&base).unwrap().unwrap().local_rank, 1);
    }

    #[test]
    fn slurm_variables_with_a_nodelist() {
        let e = read(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (5, 8, 1));
        assert_eq!((e.master_addr.as_str(), e.master_port), ("gpu07", DEFAULT_PORT));
        assert_eq!(e.launcher, Launcher::Slurm);
        // MASTER_ADDR / MASTER_PORT override; torchrun's variables win over SLURM's.
        let e = read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "n1"),
            ("MASTER_ADDR", "head"),
            ("MASTER_PORT", "1234"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.master_addr.as_str(), e.master_port), ("head", 1234));
        let missing = read(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2"), ("SLURM_JOB_NODELIST", "n1")]);
        assert!(usage_flag(missing).starts_with("SLURM_LOCALID: is not set"));
        let bad = read(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "n[x-2]"),
        ]);
        assert!(usage_flag(bad).starts_with("SLURM_JOB_NODELIST: \"n[x-2]\": range [x-2]"));
    }

    fn slurm_task(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "n1"),
        ];
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn slurm_port_is_derived_from_the_job_and_step() {
        // The rule scripts/slurm/common.sh's derived_port shares (tests/dist.rs checks 4242 there).
        assert_eq!(slurm_port(4242, 0), 26420);
        assert_eq!(slurm_port(4242, 1), 26421);
        assert_eq!(slurm_port(0, 0), SLURM_PORT_BASE);
        // Consecutive jobs and the steps of one job differ; the range stays below 32768.
        let ports: std::collections::HashSet<u16> =
            (1000..2200).flat_map(|job| (0..10).map(move |step| slurm_port(job, step))).collect();
        assert_eq!(ports.len(), 12000);
        assert!(ports.iter().all(|&p| (20000..32000).contains(&p)));
        assert!(slurm_port(u64::MAX, 9) >= SLURM_PORT_BASE, "no overflow");

        let e = read(&slurm_task(&[("SLURM_JOB_ID", "4242"), ("SLURM_STEP_ID", "1")])).unwrap().unwrap();
        assert_eq!(e.master_port, 26421);
        assert_eq!(e.port_origin, PortOrigin::SlurmJob { job_id: 4242, step_id: 1 });
        assert!(e.port_origin.to_string().contains("SLURM_JOB_ID=4242 and SLURM_STEP_ID=1; set MASTER_PORT"));
        // Two jobs on one node: different ports (29500 for both was the collision).
        let other = read(&slurm_task(&[("SLURM_JOB_ID", "4243"), ("SLURM_STEP_ID", "1")])).unwrap().unwrap();
        assert_ne!(other.master_port, e.master_port);
        // No step id (a batch step): step 0. MASTER_PORT wins; no job id: torchrun's default.
        assert_eq!(read(&slurm_task(&[("SLURM_JOB_ID", "4242")])).unwrap().unwrap().master_port, 26420);
        let given = read(&slurm_task(&[("SLURM_JOB_ID", "4242"), ("MASTER_PORT", "1234")])).unwrap().unwrap();
        assert_eq!((given.master_port, given.port_origin), (1234, PortOrigin::Given));
        let none = read(&slurm_task(&[])).unwrap().unwrap();
        assert_eq!((none.master_port, none.port_origin), (DEFAULT_PORT, PortOrigin::Default));
        assert!(usage_flag(read(&slurm_task(&[("SLURM_JOB_ID", "x")])))
            .starts_with("SLURM_JOB_ID: \"x\" is not a non-negative integer"));
    }

    #[test]
    fn first_hosts_of_nodelists() {
        assert_eq!(first_host("node[01-04,07]").unwrap(), "node01");
        assert_eq!(first_host("node[07,01-04]").unwrap(), "node07");
        assert_eq!(first_host("a1,b[2-3]").unwrap(), "a1");
        assert_eq!(first_host("node[01-04,07],gpu5").unwrap(), "node01");
        assert_eq!(first_host("rack[1-2]-n[3-4]").unwrap(), "rack1-n3");
        assert_eq!(first_host("n[001-010].cluster").unwrap(), "n001.cluster");
        assert!(first_host("node[01-04").is_err());
        assert!(first_host("node]01").is_err());
        assert!(first_host("").is_err());
    }
}
