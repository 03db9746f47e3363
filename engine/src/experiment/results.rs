//! The result bundle of a superposition run, as the CLI writes it and the app exports it.

use crate::metrics::superposition::{superposition_metrics, SuperpositionMetrics};
use crate::models::toy::config::{InstanceSpec, SuperpositionConfig};
use crate::models::toy::{eval_loss, unflatten, InstanceWeights};
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
    /// The loss on a fixed evaluation batch ([`crate::models::toy::eval_loss`]): the same for
    /// the same weights on every run, unlike a mean over the last chunk of training, whose
    /// length depends on the device's speed.
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
    /// Builds the bundle from flat parameters, each instance's loss measured on the fixed
    /// evaluation batch.
    pub fn new(cfg: &SuperpositionConfig, steps: u32, adapter: String, params: &[f32]) -> Self {
        let p = cfg.params_per_instance();
        let instances = cfg
            .instances()
            .into_iter()
            .zip(params.chunks(p))
            .enumerate()
            .map(|(i, (spec, block))| {
                let loss = eval_loss(cfg, &spec, block, i as u32);
                instance_result(cfg, spec, block, loss)
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::toy::config::Preset;

    #[test]
    fn losses_are_measured_on_a_fixed_batch() {
        let cfg = Preset::Intro.config();
        let zeros = vec![0.0f32; cfg.params_per_instance() * cfg.n_instances()];
        let a = SuperpositionResult::new(&cfg, 10, "x".into(), &zeros);
        let b = SuperpositionResult::new(&cfg, 99, "y".into(), &zeros);
        let losses =
            |r: &SuperpositionResult| r.instances.iter().map(|i| i.loss).collect::<Vec<_>>();
        // The same weights, the same numbers, however long or wherever the run went.
        assert_eq!(losses(&a), losses(&b));
        // With W = 0 and b = 0 the model outputs 0, so the loss is Σ importance · E[x²], and
        // E[x²] = p / 3 for a feature that is uniform on [0, 1) with probability p.
        for inst in &a.instances {
            let expected: f32 = inst
                .importance
                .iter()
                .map(|imp| imp * inst.feature_probability / 3.0)
                .sum();
            let rel = (inst.loss - expected).abs() / expected;
            // 1024 samples: a few standard errors at the sparsest instance (p = 0.01).
            assert!(
                rel < 0.35,
                "p {}: {} vs {expected}",
                inst.feature_probability,
                inst.loss
            );
        }
    }
}
