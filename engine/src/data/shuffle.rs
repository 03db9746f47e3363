//! The shuffle buffer (SAELens's mixing buffer): activations from a language model come in
//! correlated runs, so each training batch is drawn at random from a pool of recent activations
//! rather than straight from the source.
//!
//! The pool is filled with its first `pool_rows` source rows. Each step picks `batch` distinct
//! slots ([`ShuffleSlots`]), outputs the rows in them, then writes the next `batch` source rows
//! into those slots ([`gather_scatter`]). Every source row that enters the pool leaves it once.
//! The CPU trainer uses [`ShuffleBuffer`]; the GPU trainer keeps the pool on the device
//! (`shaders/sae/shuffle.wgsl`) and draws the same slots, so the two stay comparable.

use super::ActivationSource;
use crate::rng::{fold_seed, rng_u32};

/// The `c` coordinate of the shuffle's draws, apart from the other streams of the seed.
const SHUFFLE_STREAM: u32 = 0x5348_5546;

/// Which pool slots each step draws: `batch` distinct slots a step, uniformly at random, from
/// a seeded counter-based stream (a partial Fisher–Yates shuffle of a permutation kept between
/// steps).
#[derive(Debug, Clone)]
pub struct ShuffleSlots {
    key: u32,
    batch: usize,
    perm: Vec<u32>,
    step: u32,
}

impl ShuffleSlots {
    /// Slots for a pool of `pool_rows` rows (at least `batch`), drawn from `seed`.
    pub fn new(pool_rows: usize, batch: usize, seed: u64) -> Self {
        assert!(batch <= pool_rows, "a pool smaller than its batch");
        Self {
            key: fold_seed(seed),
            batch,
            perm: (0..pool_rows as u32).collect(),
            step: 0,
        }
    }

    /// Rows of the pool.
    pub fn pool_rows(&self) -> usize {
        self.perm.len()
    }

    /// The next step's `batch` distinct slots.
    pub fn draw(&mut self) -> &[u32] {
        let n = self.perm.len();
        for i in 0..self.batch {
            let r = rng_u32(self.key, self.step, i as u32, SHUFFLE_STREAM);
            // Uniform in [i, n) by multiply-and-shift; the bias is below 2^-32 · n.
            let j = i + ((r as u64 * (n - i) as u64) >> 32) as usize;
            self.perm.swap(i, j);
        }
        self.step = self.step.wrapping_add(1);
        &self.perm[..self.batch]
    }
}

/// One step of the pool, as the kernel does it: `out[i] = pool[slots[i]]`, then
/// `pool[slots[i]] = fresh[i]`, rows of `d`.
pub fn gather_scatter(pool: &mut [f32], slots: &[u32], fresh: &[f32], out: &mut [f32], d: usize) {
    for (i, &s) in slots.iter().enumerate() {
        let row = s as usize * d..(s as usize + 1) * d;
        out[i * d..(i + 1) * d].copy_from_slice(&pool[row.clone()]);
        pool[row].copy_from_slice(&fresh[i * d..(i + 1) * d]);
    }
}

/// A pool of source rows on the host, mixed as described above.
#[derive(Debug, Clone)]
pub struct ShuffleBuffer {
    slots: ShuffleSlots,
    pool: Vec<f32>,
    fresh: Vec<f32>,
    d: usize,
}

impl ShuffleBuffer {
    /// Fills a pool of `pool_rows` rows from `source`, for batches of `batch`.
    pub fn new(
        source: &mut dyn ActivationSource,
        pool_rows: usize,
        batch: usize,
        seed: u64,
    ) -> Self {
        let d = source.d_in();
        let mut pool = vec![0f32; pool_rows * d];
        source.next_batch(&mut pool);
        Self {
            slots: ShuffleSlots::new(pool_rows, batch, seed),
            pool,
            fresh: vec![0f32; batch * d],
            d,
        }
    }

    /// Writes the next batch (`out.len() / d` must be the batch) and refills its slots from
    /// `source`.
    pub fn next_batch(&mut self, source: &mut dyn ActivationSource, out: &mut [f32]) {
        source.next_batch(&mut self.fresh);
        let slots = self.slots.draw();
        gather_scatter(&mut self.pool, slots, &self.fresh, out, self.d);
    }

    /// The pool's rows, `[pool_rows, d]`.
    pub fn pool(&self) -> &[f32] {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ReplaySource;

    /// Rows that carry their own index: row r is `[r, r, …]`.
    fn counting(rows: usize, d: usize) -> ReplaySource {
        let data = (0..rows).flat_map(|r| vec![r as f32; d]).collect();
        ReplaySource::new(data, d).unwrap()
    }

    #[test]
    fn slots_are_distinct_and_in_the_pool() {
        for (pool, batch) in [(13, 13), (39, 13), (5, 1), (300, 7)] {
            let mut s = ShuffleSlots::new(pool, batch, 3);
            for _ in 0..50 {
                let mut got = s.draw().to_vec();
                assert_eq!(got.len(), batch);
                got.sort_unstable();
                got.dedup();
                assert_eq!(got.len(), batch, "pool {pool} batch {batch}: repeated slot");
                assert!(got.iter().all(|&i| (i as usize) < pool));
            }
        }
        // Seeds give different draws; one seed, the same.
        let first = |seed| ShuffleSlots::new(100, 10, seed).draw().to_vec();
        assert_eq!(first(1), first(1));
        assert_ne!(first(1), first(2));
    }

    #[test]
    fn every_source_row_is_used_once_and_batches_mix() {
        let (d, batch, pool_batches, steps) = (3, 8, 4, 60);
        let pool_rows = batch * pool_batches;
        let total = pool_rows + steps * batch;
        // A source long enough not to cycle within the test.
        let mut source = counting(total + batch, d);
        let mut buf = ShuffleBuffer::new(&mut source, pool_rows, batch, 11);
        let mut seen = vec![0u32; total];
        let mut out = vec![0f32; batch * d];
        let mut mixed = 0;
        for _ in 0..steps {
            buf.next_batch(&mut source, &mut out);
            let rows: Vec<usize> = out.chunks_exact(d).map(|r| r[0] as usize).collect();
            for (r, row) in rows.iter().zip(out.chunks_exact(d)) {
                assert!(row.iter().all(|&v| v as usize == *r), "rows stay whole");
                seen[*r] += 1;
            }
            // How many source batches this batch draws from.
            let mut from: Vec<usize> = rows.iter().map(|r| r / batch).collect();
            from.sort_unstable();
            from.dedup();
            if from.len() >= 3 {
                mixed += 1;
            }
        }
        // No row twice; every row drawn or still in the pool, and nothing else in it.
        assert!(seen.iter().all(|&n| n <= 1), "a row was used twice");
        for r in buf.pool().chunks_exact(d).map(|r| r[0] as usize) {
            assert!(r < total);
            seen[r] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1), "a row was lost or duplicated");
        assert!(
            mixed > steps / 2,
            "only {mixed} of {steps} batches mix 3+ source batches"
        );
    }
}
