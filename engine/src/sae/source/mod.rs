//! Where an SAE's training activations come from. A source produces batches of `d_in`
//! activations; later language-model sources plug in through the same trait.

mod ground_truth;
mod superposition;

pub use ground_truth::GroundTruthSource;
pub use superposition::SuperpositionSource;

use super::config::SourceConfig;
use crate::error::Result;

/// Cross-entropy loss recovered: how much of a language model's loss the SAE's reconstruction
/// keeps, `(CE_zero_ablated − CE_reconstructed) / (CE_zero_ablated − CE_clean)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CeLossRecovered {
    /// The model's loss with its own activations.
    pub clean: f32,
    /// The loss with the activations replaced by the SAE's reconstruction.
    pub reconstructed: f32,
    /// The loss with the activations zeroed.
    pub zero_ablated: f32,
}

impl CeLossRecovered {
    /// The recovered fraction (1 is perfect, 0 is no better than zeros).
    pub fn fraction(&self) -> f32 {
        (self.zero_ablated - self.reconstructed) / (self.zero_ablated - self.clean)
    }
}

/// A stream of activation batches.
pub trait ActivationSource {
    /// Dimension of one activation vector.
    fn d_in(&self) -> usize;

    /// Writes the next `out.len() / d_in` activations into `out`, row-major.
    fn next_batch(&mut self, out: &mut [f32]);

    /// The planted features, `[n_features, d_in]` row-major, when the source knows them.
    fn true_features(&self) -> Option<&[f32]> {
        None
    }

    /// The settings that generated the data, as written next to the results.
    fn describe(&self) -> serde_json::Value;

    /// Sources inside a language model run it with the SAE spliced in (`reconstruct` maps a
    /// batch of activations to their reconstructions) and report the loss recovered. Sources
    /// without a downstream model return `None`.
    fn ce_loss_recovered(
        &mut self,
        _reconstruct: &mut dyn FnMut(&[f32]) -> Vec<f32>,
    ) -> Option<CeLossRecovered> {
        None
    }
}

/// Builds the source a config asks for.
pub fn build(cfg: &SourceConfig, seed: u64) -> Result<Box<dyn ActivationSource>> {
    Ok(match cfg {
        SourceConfig::GroundTruth { .. } => Box::new(GroundTruthSource::new(cfg, seed)?),
        SourceConfig::Superposition { .. } => Box::new(SuperpositionSource::new(cfg, seed)?),
    })
}
