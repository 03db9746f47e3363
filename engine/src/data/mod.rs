//! Where an SAE's training activations come from. A source produces batches of `d_in`
//! activations: on the host for the CPU reference ([`ActivationSource::next_batch`]), and on
//! the device for the GPU trainer ([`ActivationSource::record_batch`]), recorded into the
//! step's own recording so nothing passes through the host. Language-model sources plug in
//! through the same trait. A [`ShuffleBuffer`] mixes a source's batches before training.

pub mod config;
mod device;
mod ground_truth;
mod shuffle;
mod superposition;
pub mod text;

pub use ground_truth::GroundTruthSource;
pub use shuffle::{gather_scatter, ShuffleBuffer, ShuffleSlots};
pub use superposition::SuperpositionSource;

use crate::error::Result;
use crate::gpu::{Recording, View};
pub use config::SourceConfig;
use std::future::Future;
use std::pin::Pin;

/// A future run on the thread that made it (the browser's, or pollster natively): what a
/// `dyn` trait's async method returns.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A stream of activation batches.
pub trait ActivationSource {
    /// Dimension of one activation vector.
    fn d_in(&self) -> usize;

    /// Writes the next `out.len() / d_in` activations into `out`, row-major.
    fn next_batch(&mut self, out: &mut [f32]);

    /// Records the next `rows` activations into `out` (`[rows, d_in]`, row-major) on the
    /// device, the batch [`ActivationSource::next_batch`] would have written, and moves the
    /// stream on as it does. Returns `false`, recording nothing, for a source that makes its
    /// batches on the host only: the caller then uploads `next_batch`'s. A source keeps what
    /// it uploads for this (its features, its weights) for the device of its first call.
    fn record_batch<'a, 'r: 'a>(
        &'a mut self,
        _rec: &'a mut Recording<'r>,
        _out: View<'a>,
        _rows: usize,
    ) -> LocalFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }

    /// The planted features, `[n_features, d_in]` row-major, when the source knows them.
    fn true_features(&self) -> Option<&[f32]> {
        None
    }

    /// The settings that generated the data, as written next to the results.
    fn describe(&self) -> serde_json::Value;
}

/// Builds the source a config asks for.
pub fn build(cfg: &SourceConfig, seed: u64) -> Result<Box<dyn ActivationSource>> {
    Ok(match cfg {
        SourceConfig::GroundTruth { .. } => Box::new(GroundTruthSource::new(cfg, seed)?),
        SourceConfig::Superposition { .. } => Box::new(SuperpositionSource::new(cfg, seed)?),
    })
}

/// Replays a fixed set of activations in order, cycling: for training on a stored activation
/// dataset, and for benchmarks that should time the SAE, not the generator.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    data: Vec<f32>,
    d: usize,
    pos: usize,
}

impl ReplaySource {
    /// Wraps `data`, rows of `d` activations (a trailing partial row is dropped).
    pub fn new(mut data: Vec<f32>, d: usize) -> crate::error::Result<Self> {
        let rows = data.len() / d.max(1);
        if d == 0 || rows == 0 {
            return Err(crate::error::EngineError::invalid(
                "activations",
                data.len(),
                format!("need at least one row of {d}"),
            ));
        }
        data.truncate(rows * d);
        Ok(Self { data, d, pos: 0 })
    }
}

impl ActivationSource for ReplaySource {
    fn d_in(&self) -> usize {
        self.d
    }

    fn next_batch(&mut self, out: &mut [f32]) {
        for row in out.chunks_exact_mut(self.d) {
            row.copy_from_slice(&self.data[self.pos..self.pos + self.d]);
            self.pos = (self.pos + self.d) % self.data.len();
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "replay", "rows": self.data.len() / self.d, "d": self.d })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cycles_through_its_rows() {
        let mut s = ReplaySource::new(vec![1.0, 2.0, 3.0, 4.0, 5.0], 2).unwrap();
        let mut out = vec![0.0; 6];
        s.next_batch(&mut out);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0]);
        assert!(ReplaySource::new(vec![1.0], 2).is_err());
    }
}
