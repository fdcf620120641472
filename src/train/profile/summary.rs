//! The per-op table of a profile, as `torch.profiler`'s `key_averages().table(sort_by=
//! "self_cpu_time_total")` reads: per op name, its calls, self time (its duration minus that of the
//! ops nested directly inside it on the same thread) and total time (nested ops included).
use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use crate::torch_ext::profiler::{EventDevice, OpEvent};

/// One op name's figures over the profiled steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpRow {
    pub name: String,
    /// `cpu`, `cuda` (a kernel's time on the device) or `other`.
    pub device: &'static str,
    pub calls: usize,
    pub self_ns: u64,
    /// Duration summed over the calls, nested ops included (an op nested in one of its own name
    /// counts in both, as in PyTorch's table).
    pub total_ns: u64,
}

fn device_name(d: EventDevice) -> &'static str {
    match d {
        EventDevice::Cpu => "cpu",
        EventDevice::Cuda => "cuda",
        EventDevice::Other => "other",
    }
}

/// Each event's self time, in `events`' order: nesting is read per (device, thread) from start and
/// end times, an event's parent being the innermost earlier event still running when it starts.
pub fn self_times(events: &[OpEvent]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    // Per thread by start; of two events starting together the longer one is the parent.
    order.sort_by_key(|&i| {
        let e = &events[i];
        (e.device, e.thread, e.start_ns, std::cmp::Reverse(e.duration_ns))
    });
    let mut children_ns = vec![0u64; events.len()];
    let mut open: Vec<usize> = Vec::new();
    let mut lane = None;
    for i in order {
        let e = &events[i];
        if lane != Some((e.device, e.thread)) {
            lane = Some((e.device, e.thread));
            open.clear();
        }
        while open.last().is_some_and(|&p| end(&events[p]) <= e.start_ns) {
            open.pop();
        }
        if let Some(&parent) = open.last() {
            children_ns[parent] += e.duration_ns;
        }
        open.push(i);
    }
    // An event overlapping its parent's end (not nested) can leave more child time than duration.
    events.iter().zip(children_ns).map(|(e, c)| e.duration_ns.saturating_sub(c)).collect()
}

fn end(e: &OpEvent) -> u64 {
    e.start_ns.saturating_add(e.duration_ns)
}

/// One row per (device, op name), the largest self time first (ties by name).
pub fn summarize(events: &[OpEvent]) -> Vec<OpRow> {
    let selfs = self_times(events);
    let mut rows: HashMap<(EventDevice, &str), OpRow> = HashMap::new();
    for (e, self_ns) in events.iter().zip(selfs) {
        let row = rows.entry((e.device, e.name.as_str())).or_insert_with(|| OpRow {
            name: e.name.clone(),
            device: device_name(e.device),
            calls: 0,
            self_ns: 0,
            total_ns: 0,
        });
        row.calls += 1;
        row.self_ns += self_ns;
        row.total_ns += e.duration_ns;
    }
    let mut rows: Vec<OpRow> = rows.into_values().collect();
    rows.sort_by(|a, b| b.self_ns.cmp(&a.self_ns).then_with(|| a.name.cmp(&b.name)));
    rows
}

/// The table's text: the first `limit` rows (all with `None`); self % is of the self time summed
/// over all rows of the same device, as PyTorch's "Self CPU %".
pub fn table(rows: &[OpRow], limit: Option<usize>) -> String {
    let mut device_self: HashMap<&str, u64> = HashMap::new();
    for r in rows {
        *device_self.entry(r.device).or_default() += r.self_ns;
    }
    let shown = &rows[..limit.unwrap_or(rows.len()).min(rows.len())];
    let width = shown.iter().map(|r| r.name.len()).max().unwrap_or(0).max("op".len());
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut out = format!(
        "{:<width$}  {:>6}  {:>8}  {:>11}  {:>7}  {:>12}\n",
        "op", "device", "calls", "self ms", "self %", "total ms"
    );
    for r in shown {
        let pct = 100.0 * r.self_ns as f64 / device_self[r.device].max(1) as f64;
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>8}  {:>11.3}  {:>6.2}%  {:>12.3}",
            r.name,
            r.device,
            r.calls,
            ms(r.self_ns),
            pct,
            ms(r.total_ns)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, thread: u64, start_ns: u64, duration_ns: u64) -> OpEvent {
        OpEvent { name: name.into(), device: EventDevice::Cpu, thread, start_ns, duration_ns }
    }

    /// A backward node holding an mm that calls a copy, then a sibling layer norm; a second thread
    /// runs an op during the mm (not nested in it); a CUDA kernel overlapping in time.
    fn events() -> Vec<OpEvent> {
        vec![
            ev("aten::copy_", 1, 30, 10),
            ev("autograd::MmBackward0", 1, 0, 100),
            ev("aten::mm", 1, 10, 60),
            ev("aten::native_layer_norm", 1, 120, 40),
            ev("aten::add", 2, 20, 50),
            OpEvent { device: EventDevice::Cuda, ..ev("gemm_kernel", 1, 15, 30) },
        ]
    }

    #[test]
    fn self_time_subtracts_directly_nested_ops_on_the_same_thread() {
        let s = self_times(&events());
        // copy 10; backward 100 - mm 60 = 40; mm 60 - copy 10 = 50; layer norm 40; the other
        // thread's add and the kernel nest in nothing.
        assert_eq!(s, vec![10, 40, 50, 40, 50, 30]);
        // Ignoring nesting the self times would sum to the durations (290): here they sum to the
        // time the CPU threads and the device were busy in ops.
        assert_eq!(s.iter().sum::<u64>(), 220);
    }

    #[test]
    fn same_start_nests_the_shorter_event() {
        let s = self_times(&[ev("inner", 1, 0, 10), ev("outer", 1, 0, 30)]);
        assert_eq!(s, vec![10, 20]);
        // Back to back, not nested.
        assert_eq!(self_times(&[ev("a", 1, 0, 10), ev("b", 1, 10, 5)]), vec![10, 5]);
    }

    #[test]
    fn rows_group_by_name_and_sort_by_self_time() {
        let mut evs = events();
        evs.push(ev("aten::mm", 1, 200, 20));
        let rows = summarize(&evs);
        let names: Vec<_> = rows.iter().map(|r| (r.name.as_str(), r.calls, r.self_ns)).collect();
        assert_eq!(
            names,
            vec![
                ("aten::mm", 2, 70),
                ("aten::add", 1, 50),
                ("aten::native_layer_norm", 1, 40),
                ("autograd::MmBackward0", 1, 40),
                ("gemm_kernel", 1, 30),
                ("aten::copy_", 1, 10),
            ]
        );
        assert_eq!(rows[0].total_ns, 80);
        let text = table(&rows, Some(2));
        assert_eq!(text.lines().count(), 3, "{text}");
        // 70 of the CPU's 210 ns of self time.
        assert!(text.lines().nth(1).unwrap().contains("33.33%"), "{text}");
        assert!(!text.contains("layer_norm"), "{text}");
    }
}
