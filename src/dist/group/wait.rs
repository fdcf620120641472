//! How a rank waits on the network outside a collective (the rendezvous, the liveness probe): the
//! c10d call runs on a helper thread (`crate::torch_ext::c10d`) and a [`Watch`] decides, every
//! tenth of a second, whether to go on waiting: not past its limit, not after a stop request
//! (SIGTERM, Ctrl-C), and it says every 30 s on stderr whom it waits for.
//!
//! Test hook: `BERTFIT_TEST_WAIT_NOTICE_S=<s>` makes the notice come every `s` seconds instead of
//! 30, so a test sees it quickly (tests/multihost.rs, tests/dist.rs).
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::train::interrupt;

/// How often a waiting rank says so.
pub const WAIT_NOTICE: Duration = Duration::from_secs(30);
/// The test hook that shortens [`WAIT_NOTICE`].
pub const WAIT_NOTICE_ENV: &str = "BERTFIT_TEST_WAIT_NOTICE_S";
/// How long past its own limit a c10d call may take before it is abandoned: c10d's own timeout
/// error (which says more) normally comes first.
const GRACE: Duration = Duration::from_secs(2);

fn notice_interval() -> Duration {
    std::env::var(WAIT_NOTICE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(WAIT_NOTICE, Duration::from_secs)
}

/// One wait of rank `rank` for `whom` (e.g. "the master (rank 0) at 10.0.0.1:29500"), limited to
/// `limit` from when it was made. One watch may span several calls (the whole rendezvous).
pub struct Watch {
    rank: usize,
    whom: String,
    started: Instant,
    limit: Duration,
    notice_every: Duration,
    next_notice: Duration,
    /// Whether to say it waits (the liveness probe's few seconds do not).
    noisy: bool,
    /// Whether a stop request ends the wait (the liveness probe's few seconds are waited out, so
    /// that a stop does not pass for a lost master).
    stoppable: bool,
}

impl Watch {
    pub fn new(rank: usize, whom: impl Into<String>, limit: Duration) -> Self {
        let every = notice_interval();
        Watch {
            rank,
            whom: whom.into(),
            started: Instant::now(),
            limit,
            notice_every: every,
            next_notice: every,
            noisy: true,
            stoppable: true,
        }
    }

    /// A short wait: never prints, and is waited out even after a stop request (its limit still
    /// holds).
    pub fn short(mut self) -> Self {
        self.noisy = false;
        self.stoppable = false;
        self
    }

    /// Waits for someone else from now on, within the same limit and clock.
    pub fn now_waiting_for(&mut self, whom: impl Into<String>) {
        self.whom = whom.into();
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// What is left of the limit (c10d's own timeouts are set to it), at least 10 ms: c10d reads
    /// a zero timeout as "wait forever".
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed()).max(Duration::from_millis(10))
    }

    /// Called while a c10d call runs: `Err` abandons it.
    pub fn check(&mut self) -> Result<()> {
        let waited = self.started.elapsed();
        if self.stoppable && interrupt::stop_requested() {
            return Err(self.stopped(waited));
        }
        if waited > self.limit + GRACE {
            // The callers put it in context (whom, where, the limit).
            return Err(Error::Runtime("no answer (that host, or the network to it, may be down)".into()));
        }
        if self.noisy && waited >= self.next_notice {
            eprintln!(
                "rank {}: waiting for {}: {}s so far, limit {}s (--ddp-timeout)",
                self.rank,
                self.whom,
                waited.as_secs(),
                self.limit.as_secs()
            );
            self.next_notice += self.notice_every;
        }
        Ok(())
    }

    fn stopped(&self, waited: Duration) -> Error {
        Error::Runtime(format!(
            "rank {}: stopped by a signal while waiting for {} (after {}s of the {}s limit)",
            self.rank,
            self.whom,
            waited.as_secs(),
            self.limit.as_secs()
        ))
    }
}

/// Whether `e` ended a wait because a stop was requested: such an error is passed up as it is, not
/// wrapped into "cannot reach ..." context that would blame the network.
pub fn is_stop(e: &Error) -> bool {
    interrupt::stop_requested() && matches!(e, Error::Runtime(m) if m.contains("stopped by a signal"))
}
