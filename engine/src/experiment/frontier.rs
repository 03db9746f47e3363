//! The MSE-vs-L0 frontier (Gao et al. 2024, Rajamanoharan et al. 2024): each architecture
//! trained across its sparsity sweep ([`frontier_sweep`]), one point per run. The CLI and the
//! page both build their runs and points here.

use crate::error::Result;
use crate::metrics::sae::{GroundTruthSummary, SaeMetrics};
use crate::models::sae::config::{frontier_sweep, Architecture, SaeConfig};
use serde::{Deserialize, Serialize};

/// The runs of a frontier over `architectures` (names): for each, `base` with that
/// architecture and each value of its sweep. The base's own architecture keeps its
/// hyper-parameters other than the swept one; the others take their defaults.
pub fn runs(base: &SaeConfig, architectures: &[&str]) -> Result<Vec<SaeConfig>> {
    let mut out = Vec::new();
    for name in architectures {
        let arch = if base.architecture.name() == *name {
            base.architecture.clone()
        } else {
            Architecture::by_name(name)?
        };
        for v in frontier_sweep(&arch) {
            let cfg = SaeConfig {
                architecture: arch.with_sparsity(v),
                ..base.clone()
            };
            cfg.validate()?;
            out.push(cfg);
        }
    }
    Ok(out)
}

/// The value a run's sparsity is set by: k for the TopK family, λ otherwise.
pub fn knob(arch: &Architecture) -> f32 {
    arch.k()
        .map(|k| k as f32)
        .or(arch.sparsity_coefficient())
        .unwrap_or(0.0)
}

/// One trained run on the frontier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontierPoint {
    /// The architecture's name.
    pub architecture: String,
    /// Its k or λ ([`knob`]).
    pub sparsity: f32,
    /// Mean active latents per input.
    pub l0: f32,
    /// Mean squared reconstruction error.
    pub mse: f32,
    /// `‖x̂ − x‖² / ‖x‖²`.
    pub normalized_mse: f32,
    /// Fraction of variance explained.
    pub explained_variance: f32,
    /// Fraction of latents dead at the end.
    pub fraction_dead: f32,
    /// MMCS and recovered features, for planted ground truth.
    pub ground_truth: Option<GroundTruthSummary>,
}

impl FrontierPoint {
    /// The point of a run of `cfg` that ended with `metrics`.
    pub fn new(cfg: &SaeConfig, metrics: &SaeMetrics) -> Self {
        let r = &metrics.reconstruction;
        Self {
            architecture: cfg.architecture.name().to_string(),
            sparsity: knob(&cfg.architecture),
            l0: r.l0,
            mse: r.mse,
            normalized_mse: r.normalized_mse,
            explained_variance: r.explained_variance,
            fraction_dead: metrics.fraction_dead,
            ground_truth: metrics.ground_truth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::config::{SaePreset, ARCHITECTURE_NAMES};

    #[test]
    fn runs_sweep_each_architecture_and_keep_the_base_hyper_parameters() {
        let mut base = SaePreset::Frontier.config();
        base.architecture = Architecture::TopK {
            k: 16,
            k_aux: 7,
            aux_coefficient: 0.1,
            dead_tokens: 5000,
        };
        let all = runs(&base, &ARCHITECTURE_NAMES).unwrap();
        let expected: usize = ARCHITECTURE_NAMES
            .iter()
            .map(|n| frontier_sweep(&Architecture::by_name(n).unwrap()).len())
            .sum();
        assert_eq!(all.len(), expected);
        let topk: Vec<_> = all
            .iter()
            .filter(|c| c.architecture.name() == "topk")
            .collect();
        assert_eq!(
            topk.iter()
                .map(|c| knob(&c.architecture))
                .collect::<Vec<_>>(),
            vec![2.0, 4.0, 8.0, 16.0, 32.0]
        );
        assert!(topk
            .iter()
            .all(|c| matches!(c.architecture, Architecture::TopK { k_aux: 7, .. })));
        let gated = all
            .iter()
            .find(|c| c.architecture.name() == "gated")
            .unwrap();
        assert_eq!(knob(&gated.architecture), 20.0);
        assert!(all
            .iter()
            .all(|c| c.d_sae == base.d_sae && c.steps == base.steps));
    }

    #[test]
    fn a_sweep_value_the_base_cannot_take_is_refused() {
        let mut base = SaePreset::Frontier.config();
        base.d_sae = 8;
        let err = runs(&base, &["topk"]).unwrap_err().to_string();
        assert!(err.contains("k = 16"), "{err}");
    }
}
