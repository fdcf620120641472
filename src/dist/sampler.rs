//! `torch.utils.data.DistributedSampler`: which examples rank `rank` of `world_size` visits in an
//! epoch, index for index as PyTorch assigns them, so a bertfit run and a torchrun'd PyTorch run
//! with the same seed give each rank the same examples.
//!
//! PyTorch (torch/utils/data/distributed.py): with shuffle, a fresh `torch.Generator` seeded with
//! `seed + epoch` draws `randperm(n)` (the default generator is not touched); without, file order.
//! Then either the list is padded by repeating its head to a multiple of the world size, or with
//! `drop_last` its tail is cut to one; rank r takes every world_size-th index from r on.
use crate::data::sampler::{randperm, Mt19937, Sampler, Shard};
use crate::random::RandomStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistributedSampler {
    pub shard: Shard,
    pub shuffle: bool,
    /// The sampler's own seed (`DistributedSampler(seed=...)`; HF passes `args.seed`).
    pub seed: u64,
    pub drop_last: bool,
}

impl DistributedSampler {
    /// `num_samples`: how many indices each rank gets for a dataset of `n`.
    pub fn num_samples(&self, n: usize) -> usize {
        let w = self.shard.world_size;
        if self.drop_last && !n.is_multiple_of(w) {
            // math.ceil((n - w) / w), which is n / w rounded down here; 0 when n < w.
            n.saturating_sub(w).div_ceil(w)
        } else {
            n.div_ceil(w)
        }
    }

    /// This rank's indices for `epoch` (what `set_epoch(epoch)` then `iter(sampler)` gives).
    pub fn epoch_indices(&self, n: usize, epoch: usize) -> Vec<usize> {
        let mut indices = if self.shuffle {
            randperm(n, &mut Mt19937::new(self.seed.wrapping_add(epoch as u64)))
        } else {
            (0..n).collect()
        };
        let w = self.shard.world_size;
        let total = self.num_samples(n) * w;
        if !self.drop_last {
            // Repeat the list's head (the whole list as often as needed) up to `total`.
            let padding = total - indices.len();
            if padding > 0 && !indices.is_empty() {
                let head: Vec<usize> = indices.iter().copied().cycle().take(padding).collect();
                indices.extend(head);
            }
        } else {
            indices.truncate(total);
        }
        indices.into_iter().skip(self.shard.rank).step_by(w).collect()
    }
}

impl Sampler for DistributedSampler {
    /// No draw from the default generator: DistributedSampler seeds a generator of its own.
    fn indices(&self, n: usize, epoch: usize, _rng: &mut RandomStream) -> Vec<usize> {
        self.epoch_indices(n, epoch)
    }

    fn len(&self, n: usize) -> usize {
        self.num_samples(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(rank: usize, world_size: usize, shuffle: bool, drop_last: bool) -> DistributedSampler {
        DistributedSampler { shard: Shard { rank, world_size }, shuffle, seed: 0, drop_last }
    }

    #[test]
    fn sequential_padding_and_dropping() {
        // 10 over 4 ranks: padded to 12 with indices 0 and 1 again.
        assert_eq!(sampler(0, 4, false, false).epoch_indices(10, 0), vec![0, 4, 8]);
        assert_eq!(sampler(2, 4, false, false).epoch_indices(10, 0), vec![2, 6, 0]);
        assert_eq!(sampler(3, 4, false, false).epoch_indices(10, 0), vec![3, 7, 1]);
        // drop_last cuts to 8.
        assert_eq!(sampler(3, 4, false, true).epoch_indices(10, 0), vec![3, 7]);
        // Fewer examples than ranks: the list repeats.
        assert_eq!(sampler(2, 3, false, false).epoch_indices(1, 0), vec![0]);
        assert!(sampler(2, 3, false, true).epoch_indices(2, 0).is_empty());
    }

    #[test]
    fn shuffled_ranks_partition_the_epoch_and_epochs_differ() {
        let n = 103;
        let mut all: Vec<usize> =
            (0..4).flat_map(|r| sampler(r, 4, true, true).epoch_indices(n, 1)).collect();
        assert_eq!(all.len(), 100);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100);
        assert_ne!(
            sampler(0, 4, true, false).epoch_indices(n, 0),
            sampler(0, 4, true, false).epoch_indices(n, 1)
        );
    }
}
