//! Training batches of a language model: windows of n_ctx consecutive tokens at offsets drawn
//! from the run's seed, so a link trains on the same windows on every device.

use crate::error::{EngineError, Result};
use crate::rng::{fold_seed, rng_unit};

/// Draws windows of `n_ctx` tokens from a token stream.
#[derive(Debug, Clone)]
pub struct Windows {
    n_ctx: usize,
    seed: u32,
    draws: u32,
}

impl Windows {
    /// Windows of `n_ctx` tokens from a stream of `tokens` tokens; refused when the stream holds
    /// fewer than one window.
    pub fn new(tokens: usize, n_ctx: usize, seed: u64) -> Result<Self> {
        if tokens < n_ctx || n_ctx == 0 {
            return Err(EngineError::BadText(format!(
                "the text is {tokens} tokens long; one window of n_ctx = {n_ctx} needs more"
            )));
        }
        Ok(Self {
            n_ctx,
            seed: fold_seed(seed) ^ 0x11c7_0001,
            draws: 0,
        })
    }

    /// The next batch: `batch` windows copied from `tokens` into one `[batch, n_ctx]` array.
    pub fn next_batch(&mut self, tokens: &[u32], batch: usize) -> Vec<u32> {
        let starts = tokens.len() - self.n_ctx + 1;
        let mut out = Vec::with_capacity(batch * self.n_ctx);
        for _ in 0..batch {
            let u = rng_unit(self.seed, self.draws, 0, 0);
            self.draws += 1;
            let at = ((u as f64 * starts as f64) as usize).min(starts - 1);
            out.extend_from_slice(&tokens[at..at + self.n_ctx]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_seeded_and_in_bounds() {
        let tokens: Vec<u32> = (0..100).collect();
        let mut a = Windows::new(tokens.len(), 8, 3).unwrap();
        let mut b = Windows::new(tokens.len(), 8, 3).unwrap();
        let x = a.next_batch(&tokens, 16);
        assert_eq!(x, b.next_batch(&tokens, 16));
        assert_ne!(x, a.next_batch(&tokens, 16));
        for w in x.chunks(8) {
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
        assert!(Windows::new(5, 8, 0)
            .unwrap_err()
            .to_string()
            .contains("n_ctx = 8"));
    }
}
