//! NumPy's `np.random.default_rng(seed).permutation(n)`, draw for draw: what 🤗 datasets'
//! `Dataset.shuffle(seed=...)` orders rows by (run_classification.py's `--shuffle_train_dataset`).
//! Three parts of NumPy (2.x, unchanged since 1.17's Generator):
//! - `SeedSequence(seed).generate_state(4, uint64)`: the seed hashed into PCG64's state and
//!   increment (`bit_generator.pyx`);
//! - PCG64 (`pcg64.h`): a 128-bit LCG with the XSL-RR output, and its `next_uint32`, which hands
//!   out both halves of one 64-bit draw, low half first;
//! - `Generator.shuffle` over `arange(n)` (`_generator.pyx`, `_shuffle_raw`): Fisher-Yates from
//!   the end, each index drawn by `random_interval` (a mask of the bound, redrawn until in range).
//!
//! torch's generator (`sampler::Mt19937`) is another stream: the DataLoader's order uses that one.

/// `SeedSequence`'s constants (bit_generator.pyx).
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

/// PCG64's multiplier (PCG_DEFAULT_MULTIPLIER_128).
const PCG_MULTIPLIER: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// The row order `Dataset.shuffle(seed)` gives `n` rows.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Pcg64::from_seed(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.interval(i as u64) as usize;
        order.swap(i, j);
    }
    order
}

/// SeedSequence's hash of one word, advancing its running constant.
fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// `SeedSequence(seed).pool`: the seed's 32-bit words (least significant first) mixed into four.
fn pool(seed: u64) -> [u32; POOL_SIZE] {
    let entropy: Vec<u32> =
        if seed >> 32 == 0 { vec![seed as u32] } else { vec![seed as u32, (seed >> 32) as u32] };
    let mut mixer = [0u32; POOL_SIZE];
    let mut hash_const = INIT_A;
    for (i, m) in mixer.iter_mut().enumerate() {
        *m = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
    }
    for src in 0..POOL_SIZE {
        for dst in 0..POOL_SIZE {
            if src != dst {
                mixer[dst] = mix(mixer[dst], hashmix(mixer[src], &mut hash_const));
            }
        }
    }
    mixer
}

/// `SeedSequence(seed).generate_state(4, np.uint64)`.
fn generate_state(seed: u64) -> [u64; 4] {
    let pool = pool(seed);
    let mut hash_const = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % POOL_SIZE] ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_const);
        *w = v ^ (v >> XSHIFT);
    }
    // The uint32 array viewed as uint64 (little-endian): the first word is the low half.
    std::array::from_fn(|i| u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32))
}

/// NumPy's PCG64 bit generator with its 32-bit buffer.
struct Pcg64 {
    state: u128,
    inc: u128,
    /// The high half of the last 64-bit draw, not yet handed out by `next_u32`.
    spare: Option<u32>,
}

impl Pcg64 {
    /// `PCG64(SeedSequence(seed))`: `pcg64_set_seed(state, val[0..2], val[2..4])`, each pair
    /// read as (high, low), then `pcg_setseq_128_srandom_r`.
    fn from_seed(seed: u64) -> Self {
        let v = generate_state(seed);
        let init_state = (u128::from(v[0]) << 64) | u128::from(v[1]);
        let init_seq = (u128::from(v[2]) << 64) | u128::from(v[3]);
        let mut rng = Pcg64 { state: 0, inc: (init_seq << 1) | 1, spare: None };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULTIPLIER).wrapping_add(self.inc);
    }

    /// `pcg64_random_r`: step, then XSL-RR of the new state.
    fn next_u64(&mut self) -> u64 {
        self.step();
        let folded = ((self.state >> 64) as u64) ^ (self.state as u64);
        folded.rotate_right((self.state >> 122) as u32)
    }

    /// `pcg64_next32`: the low half of a fresh draw, then its high half.
    fn next_u32(&mut self) -> u32 {
        if let Some(high) = self.spare.take() {
            return high;
        }
        let next = self.next_u64();
        self.spare = Some((next >> 32) as u32);
        next as u32
    }

    /// `random_interval(max)`: uniform in `0..=max`, by masking draws to the smallest power of
    /// two above `max` and drawing again while above it.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Figures printed by NumPy 2.4.6 (the parity venv's), the reference these are checked against;
    // tests/data.rs (shuffle_train_dataset_order_is_numpys) asks NumPy itself for many more.

    #[test]
    fn seed_sequence_state_is_numpys() {
        // np.random.SeedSequence(42).generate_state(4, np.uint64)
        assert_eq!(
            generate_state(42),
            [0x9f1e_2e6d_cd54_0ab7, 0xd578_73dc_79fb_94b6, 0x7d28_2a1b_64d4_20b7, 0x3365_7971_4692_d5ff]
        );
    }

    #[test]
    fn pcg64_state_after_seeding_is_numpys() {
        // np.random.default_rng(42).bit_generator.state
        let rng = Pcg64::from_seed(42);
        assert_eq!(rng.state, 274674114334540486603088602300644985544);
        assert_eq!(rng.inc, 332724090758049132448979897138935081983);
    }

    #[test]
    fn permutations_are_numpys() {
        // np.random.default_rng(seed).permutation(10)
        assert_eq!(permutation(10, 42), [5, 6, 0, 7, 3, 2, 4, 9, 1, 8]);
        assert_eq!(permutation(10, 0), [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]);
        assert_eq!(permutation(10, (1 << 32) + 5), [6, 7, 4, 2, 5, 0, 9, 8, 3, 1]);
        assert!(permutation(0, 42).is_empty());
        assert_eq!(permutation(1, 42), [0]);
    }
}
