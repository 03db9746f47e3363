//! CE loss recovered, as SAELens defines it: the share of a language model's loss that an SAE
//! spliced in at a hook keeps.

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
