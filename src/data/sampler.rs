//! The example order of one pass over a `torch.utils.data.DataLoader`, drawn exactly as PyTorch
//! draws it, so a run with the same seed visits the same batches (see vendor-notes.md).
//!
//! Each `iter(DataLoader)` (every epoch, train and validation alike) first draws a base seed from
//! the default generator: `torch.empty((), dtype=torch.int64).random_()`. A shuffling
//! `RandomSampler` then draws its own seed the same way, seeds a fresh `torch.Generator` with it and
//! takes `torch.randperm(n, generator=g)`. The fresh generator is an mt19937 (`CPUGeneratorImpl`);
//! tch exposes no separate generator, so it is re-implemented here ([`Mt19937`], [`randperm`]). The
//! default generator is only ever used through libtorch, so dropout masks stay in step too.
use crate::random::RandomStream;

/// Which examples one pass visits, in which order (PyTorch's `Sampler`). A pass first draws the
/// DataLoader's base seed ([`RandomStream::dataloader_pass`]); a sampler's own draws follow.
pub trait Sampler: Send + Sync {
    /// The pass's indices; `epoch` is PyTorch's `set_epoch` value (0 for the first epoch).
    fn indices(&self, n: usize, epoch: usize, rng: &mut RandomStream) -> Vec<usize>;

    /// How many indices a pass over `n` examples yields (a shard's share for DistributedSampler).
    fn len(&self, n: usize) -> usize {
        n
    }
}

/// `SequentialSampler`: file order, no draw.
pub struct SequentialSampler;

impl Sampler for SequentialSampler {
    fn indices(&self, n: usize, _epoch: usize, _rng: &mut RandomStream) -> Vec<usize> {
        (0..n).collect()
    }
}

/// `RandomSampler` (a DataLoader with `shuffle=True`): draws a seed from the default generator,
/// seeds a fresh `torch.Generator` with it and takes `torch.randperm(n, generator=g)`.
pub struct RandomSampler;

impl Sampler for RandomSampler {
    fn indices(&self, n: usize, _epoch: usize, rng: &mut RandomStream) -> Vec<usize> {
        let sampler_seed = rng.draw_int64();
        randperm(n, &mut Mt19937::new(sampler_seed as u64))
    }
}

/// HF Trainer's `LengthGroupedSampler` before its grouping ([`group_by_length`]): its
/// `torch.randperm(n)` has no generator of its own, so each epoch draws from the run's.
pub struct GeneratorRandperm;

impl Sampler for GeneratorRandperm {
    fn indices(&self, n: usize, _epoch: usize, rng: &mut RandomStream) -> Vec<usize> {
        rng.randperm(n)
    }
}

/// accelerate's `SeedableRandomSampler`, the sampler of HF Trainer's training DataLoader: epoch `e`
/// (0-based) visits `torch.randperm(n, generator=g)` with `g` seeded `seed + e` (`seed` is HF's
/// data_seed, else its seed). It draws nothing from the default generator.
pub struct SeedableRandomSampler {
    pub seed: u64,
}

impl Sampler for SeedableRandomSampler {
    fn indices(&self, n: usize, epoch: usize, _rng: &mut RandomStream) -> Vec<usize> {
        randperm(n, &mut Mt19937::new(self.seed.wrapping_add(epoch as u64)))
    }
}

/// `RandomSampler` or `SequentialSampler`, as a DataLoader's `shuffle` flag chooses.
pub fn sampler(shuffle: bool) -> &'static dyn Sampler {
    if shuffle {
        &RandomSampler
    } else {
        &SequentialSampler
    }
}

/// The part of the data one process sees: rank `rank` of `world_size` (one process: 0 of 1).
/// Streamed passes keep every `world_size`-th row from `rank` on; in-memory passes leave it to a
/// sampler (DistributedSampler's assignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { rank: 0, world_size: 1 };

    /// Whether the `index`-th row (0-based, in file order within its split) belongs to this shard.
    pub fn holds(&self, index: usize) -> bool {
        index % self.world_size == self.rank
    }
}

/// HF's length grouping (`group_by_length`, transformers' `get_length_grouped_indices`): the
/// shuffled `order` is cut into megabatches of `min(n / (4 * batch_size), 50)` batches, each sorted
/// longest first (stably), and the longest example of all is swapped to the very front so a batch
/// that does not fit in memory fails at once. Batches then hold similar lengths: less padding.
pub fn group_by_length(order: &[usize], lengths: &[usize], batch_size: usize) -> Vec<usize> {
    let mult = (order.len() / (batch_size * 4)).clamp(1, 50);
    let mut megabatches: Vec<Vec<usize>> = order
        .chunks(mult * batch_size)
        .map(|m| {
            let mut m = m.to_vec();
            m.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
            m
        })
        .collect();
    if let Some(max_idx) =
        (0..megabatches.len()).max_by_key(|&k| (lengths[megabatches[k][0]], std::cmp::Reverse(k)))
    {
        let first = megabatches[0][0];
        megabatches[0][0] = megabatches[max_idx][0];
        megabatches[max_idx][0] = first;
    }
    megabatches.concat()
}

/// The 32-bit Mersenne Twister as libtorch's `at::mt19937` (seeded with the low 32 bits).
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; 624];
        state[0] = (seed & 0xffff_ffff) as u32;
        for j in 1..624 {
            state[j] = 1812433253u32.wrapping_mul(state[j - 1] ^ (state[j - 1] >> 30)).wrapping_add(j as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// `CPUGeneratorImpl::random()`.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `CPUGeneratorImpl::random64()`: two draws, the first one high.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }
}

/// `torch.randperm(n, generator=g)` on CPU: a Fisher-Yates pass, one draw per position. libtorch
/// takes 32-bit draws below `u32::MAX / 20` elements (checked against PyTorch up to 100,000) and
/// 64-bit ones above (not checked: no dataset we test is that large).
pub fn randperm(n: usize, gen: &mut Mt19937) -> Vec<usize> {
    let mut r: Vec<usize> = (0..n).collect();
    let small = (n as u64) < (u32::MAX / 20) as u64;
    for i in 0..n.saturating_sub(1) {
        let range = (n - i) as u64;
        let draw = if small { gen.next_u32() as u64 } else { gen.next_u64() };
        let z = (draw % range) as usize;
        r.swap(i, z + i);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // The 10000th output of std::mt19937 with the default seed 5489 is 4123659995 (C++ standard).
        let mut g = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = g.next_u32();
        }
        assert_eq!(last, 4123659995);
    }

    #[test]
    fn length_groups_are_sorted_and_the_longest_leads() {
        let lengths: Vec<usize> = (0..200).map(|i| (i * 37) % 101).collect();
        let order: Vec<usize> = randperm(200, &mut Mt19937::new(3));
        let grouped = group_by_length(&order, &lengths, 4);
        let mut sorted = grouped.clone();
        sorted.sort();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>());
        assert_eq!(lengths[grouped[0]], 100);
        // megabatches of min(200 / 16, 50) * 4 = 48 examples, each sorted longest first after the swap
        for m in grouped.chunks(48) {
            assert!(m[1..].windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
        }
    }

    #[test]
    fn randperm_is_a_permutation() {
        let mut p = randperm(1000, &mut Mt19937::new(7));
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
