//! What a Superposition chunk tells the page (the worker's [`super::work`] sends it, the page's
//! charts draw it), as [`crate::protocol::Update`] carries it.

use mechlab_engine::metrics::superposition::SuperpositionMetrics;
use serde::{Deserialize, Serialize};

/// Everything the Superposition charts draw except the loss history, which the page
/// accumulates from `losses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyUpdate {
    /// Each instance's mean loss over the chunk.
    pub losses: Vec<f32>,
    /// All parameters, flat, instance-major (`W` then `b` per instance).
    pub params: Vec<f32>,
    /// Each instance's measures of superposition, computed in the worker.
    pub metrics: Vec<SuperpositionMetrics>,
}
