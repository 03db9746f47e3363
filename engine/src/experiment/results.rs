//! The result bundle of a superposition run, as the CLI writes it and the app exports it.

use super::superposition::{InstanceSpec, SuperpositionConfig};
use crate::metrics::superposition::{superposition_metrics, SuperpositionMetrics};
use crate::models::toy::{unflatten, InstanceWeights};
use serde::{Deserialize, Serialize};

/// One trained instance with its settings, weights, final loss and measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// Probability that each feature is non-zero.
    pub feature_probability: f32,
    /// Relative importance of the last feature (phase diagram), if swept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub relative_importance: Option<f32>,
    /// Importance per feature.
    pub importance: Vec<f32>,
    /// Trained weights.
    #[serde(flatten)]
    pub weights: InstanceWeights,
    /// Mean loss over the last chunk of training.
    pub loss: f32,
    /// Measures of superposition.
    pub metrics: SuperpositionMetrics,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuperpositionResult {
    /// The config that produced it (reproduces it with the same seed).
    pub config: SuperpositionConfig,
    /// Steps trained.
    pub steps: u32,
    /// The adapter it ran on.
    pub adapter: String,
    /// Every instance, in the config's order.
    pub instances: Vec<InstanceResult>,
}

impl SuperpositionResult {
    /// Builds the bundle from flat parameters and the last losses.
    pub fn new(
        cfg: &SuperpositionConfig,
        steps: u32,
        adapter: String,
        params: &[f32],
        losses: &[f32],
    ) -> Self {
        let p = cfg.params_per_instance();
        let instances = cfg
            .instances()
            .into_iter()
            .zip(params.chunks(p))
            .zip(losses)
            .map(|((spec, block), &loss)| instance_result(cfg, spec, block, loss))
            .collect();
        Self {
            config: cfg.clone(),
            steps,
            adapter,
            instances,
        }
    }
}

fn instance_result(
    cfg: &SuperpositionConfig,
    spec: InstanceSpec,
    block: &[f32],
    loss: f32,
) -> InstanceResult {
    let weights = unflatten(block, cfg.n_hidden as usize, cfg.n_features as usize);
    let metrics = superposition_metrics(&weights.w);
    InstanceResult {
        feature_probability: spec.feature_probability,
        relative_importance: spec.relative_importance,
        importance: spec.importance,
        weights,
        loss,
        metrics,
    }
}
