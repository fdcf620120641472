//! The attention core in groups of similar length: the CPU's answer to varlen attention.
//!
//! Packing the real tokens takes the padding out of every per-token layer, but the attention core
//! still needs a (B, nh, T, T) layout. Padded to the batch's longest row, a shuffled batch of long
//! texts spends most of its attention on padding (scores grow with T²); one call per sequence
//! pays a call's overhead per row instead (the slower of the two on short texts:
//! scripts/bench_unpadded.sh, BENCHMARKS.md). This
//! sorts the sequences by length and cuts them into runs that are each padded to their own longest
//! row, choosing the cut that minimises Σ rows·T² plus a fixed cost per call ([`CALL_COST`]): one
//! group for a batch of similar lengths, a few for a batch of short and long texts.
use tch::{Device, Tensor};

use super::sdpa::{attend_padded, with_window, PackedQkv};
use crate::device::to_device_async;

/// The cost of one more attention call, in the unit of one query-key pair (token²): about what
/// the call's fixed overhead and its gather/scatter cost on 2 CPU cores against MiniLM's per-pair
/// work, rounded up so that short batches keep one group.
pub const CALL_COST: i64 = 64 * 64;

/// Where each group's rows come from in the packed tokens and go back to. One gather brings q/k/v
/// into every group's padded slots at once and one gathers the outputs back: each gather's
/// backward is one scatter, where a gather per group paid a zeroed copy of all of q/k/v per group.
#[derive(Debug)]
pub struct LengthGroups {
    groups: Vec<Group>,
    /// (Σ rows * len,): the packed token at each group's padded slots, the groups one after
    /// another. Padding slots repeat their group's first token: their keys are masked out (zero
    /// weight, zero gradient) and their query rows are never gathered back, so any finite value
    /// serves, and none needs a copy of q/k/v with a zero row appended.
    gather: Tensor,
    /// (N,): for each packed token, its slot in the groups' padded outputs concatenated.
    restore: Tensor,
}

#[derive(Debug)]
struct Group {
    rows: i64,
    len: i64,
    /// (rows, 1, 1, len) bool, true = attend; `None` when every row has the full length.
    key_mask: Option<Tensor>,
}

/// Sequences (indices into `lengths`) per group, longest first: contiguous runs of the sequences
/// sorted by decreasing length (stable), cut where Σ rows·longest² + CALL_COST per group is least.
pub fn plan(lengths: &[i64], call_cost: i64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let n = order.len();
    // best[j]: least cost of the first j sorted sequences; cut[j]: where its last group starts.
    let mut best = vec![0i64; n + 1];
    let mut cut = vec![0usize; n + 1];
    for j in 1..=n {
        best[j] = i64::MAX;
        for i in 0..j {
            let longest = lengths[order[i]];
            let cost = best[i].saturating_add((j - i) as i64 * longest * longest + call_cost);
            if cost < best[j] {
                best[j] = cost;
                cut[j] = i;
            }
        }
    }
    let mut groups = Vec::new();
    let mut j = n;
    while j > 0 {
        groups.push(order[cut[j]..j].to_vec());
        j = cut[j];
    }
    groups.reverse();
    groups
}

impl LengthGroups {
    /// `lengths`: each sequence's token count, the sequences stored one after another in the
    /// packed rows (right padding), as [`super::Packing::lengths`].
    pub fn new(lengths: &[i64], device: Device) -> LengthGroups {
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut total = 0i64;
        for &len in lengths {
            offsets.push(total);
            total += len;
        }
        let mut restore = vec![0i64; total as usize];
        let mut gather = Vec::new();
        let groups = plan(lengths, CALL_COST)
            .into_iter()
            .map(|members| {
                let len = lengths[members[0]];
                let filler = offsets[members[0]];
                let mut mask = Vec::with_capacity(members.len() * len as usize);
                for &s in &members {
                    for t in 0..len {
                        let is_real = t < lengths[s];
                        mask.push(is_real);
                        if is_real {
                            restore[(offsets[s] + t) as usize] = gather.len() as i64;
                            gather.push(offsets[s] + t);
                        } else {
                            gather.push(filler);
                        }
                    }
                }
                let rows = members.len() as i64;
                let full = members.iter().all(|&s| lengths[s] == len);
                Group {
                    rows,
                    len,
                    key_mask: (!full)
                        .then(|| to_device_async(&Tensor::from_slice(&mask), device).view([rows, 1, 1, len])),
                }
            })
            .collect();
        LengthGroups {
            groups,
            gather: to_device_async(&Tensor::from_slice(&gather), device),
            restore: to_device_async(&Tensor::from_slice(&restore), device),
        }
    }

    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// q, k, v packed -> (N, nh * hs); with a `window` (ModernBERT's local layers),
    /// each query's keys limited to those at most `window` positions away: the group's key mask
    /// and the band, one mask.
    pub fn attention(&self, qkv: &PackedQkv, window: Option<i64>) -> Tensor {
        let PackedQkv { qkv, dropout, scale } = qkv;
        let device = qkv.device();
        self.map(qkv, |padded, key_mask| {
            let mask = with_window(key_mask, padded.size()[1], window, device);
            attend_padded(padded, mask.as_ref(), *dropout, *scale)
        })
    }

    /// Any attention over the groups: `packed` (N, ...) per-token rows (q, k, v stacked, say) ->
    /// `attend` gets each group's padded rows (rows, len, ...) and its key mask (rows, 1, 1, len)
    /// bool, true = attend (`None` when every row has the full length) and returns one row per
    /// slot (rows * len, ...); the real slots come back in packed order (N, ...). Each sequence's
    /// positions are its places in its padded row, as in the padded forward (right padding).
    pub fn map(&self, packed: &Tensor, attend: impl Fn(&Tensor, Option<&Tensor>) -> Tensor) -> Tensor {
        let rest = &packed.size()[1..];
        // One gather for every group; split's backward is one concatenation.
        let slots = packed.index_select(0, &self.gather); // (Σ rows * len, ...)
        let sizes: Vec<i64> = self.groups.iter().map(|g| g.rows * g.len).collect();
        let outputs: Vec<Tensor> = slots
            .split_with_sizes(sizes.as_slice(), 0)
            .iter()
            .zip(&self.groups)
            .map(|(slots, g)| {
                let shape: Vec<i64> = [g.rows, g.len].iter().chain(rest).copied().collect();
                attend(&slots.view(shape.as_slice()), g.key_mask.as_ref())
            })
            .collect();
        Tensor::cat(&outputs, 0).index_select(0, &self.restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn similar_lengths_stay_one_group_and_mixed_ones_split() {
        let _generator = crate::random::generator_lock();
        assert_eq!(plan(&[60, 58, 61, 59], CALL_COST).len(), 1);
        let lengths = [512, 20, 500, 15, 30, 480];
        let groups = plan(&lengths, CALL_COST);
        // Long rows never padded with short ones; the short ones share one call.
        assert!(groups
            .iter()
            .all(|g| g.iter().all(|&i| lengths[i] >= 480) || g.iter().all(|&i| lengths[i] <= 30)));
        assert!(groups.contains(&vec![4, 1, 3]), "{groups:?}");
        // Every sequence exactly once.
        let mut all: Vec<usize> = plan(&[3, 9, 1, 400, 7, 120, 120, 5], CALL_COST).concat();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert!(plan(&[], CALL_COST).is_empty());
    }

    #[test]
    fn grouped_attention_equals_attention_one_sequence_at_a_time() {
        let _generator = crate::random::generator_lock();
        tch::manual_seed(3);
        let lengths = [7i64, 1, 300, 12, 280, 3];
        let (nh, hs) = (2, 4);
        let n: i64 = lengths.iter().sum();
        let q = Tensor::randn([n, nh, hs], (Kind::Float, Device::Cpu));
        let k = Tensor::randn([n, nh, hs], (Kind::Float, Device::Cpu));
        let v = Tensor::randn([n, nh, hs], (Kind::Float, Device::Cpu));
        let groups = LengthGroups::new(&lengths, Device::Cpu);
        assert!(groups.num_groups() >= 2);
        let got = groups.attention(&PackedQkv::new(&q, &k, &v, 0.0, 0.5), None);
        let mut start = 0;
        for &len in &lengths {
            let one = |x: &Tensor| x.narrow(0, start, len).transpose(0, 1).unsqueeze(0);
            let want = Tensor::scaled_dot_product_attention(
                &one(&q),
                &one(&k),
                &one(&v),
                None::<&Tensor>,
                0.0,
                false,
                Some(0.5),
                false,
            )
            .squeeze_dim(0)
            .transpose(0, 1)
            .reshape([len, nh * hs]);
            let diff = (got.narrow(0, start, len) - want).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "sequence at {start} (length {len}) differs by {diff}");
            start += len;
        }
    }
}
