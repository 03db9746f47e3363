//! What a source of activations is, as configs and links spell it: planted ground-truth
//! features or a toy model's hidden layer (the SAE lab's `source`).

use serde::{Deserialize, Serialize};

/// How the magnitude of an active ground-truth feature is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Magnitude {
    /// Uniform in `[low, high]`.
    Uniform {
        /// Lower bound.
        low: f32,
        /// Upper bound.
        high: f32,
    },
    /// `|N(mean, std)|`.
    FoldedNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Always this value.
    Constant {
        /// The value.
        value: f32,
    },
}

/// Where the SAE's training activations come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Planted ground-truth features (Sharkey et al. 2022's toy data): `n_features` random unit
    /// vectors in `d` dimensions, each active independently with `probability`.
    GroundTruth {
        /// Dimension of the activations (the SAE's d_in).
        d: u32,
        /// Number of true features (more than d, so they are in superposition).
        n_features: u32,
        /// Probability that each feature is active in a sample.
        probability: f32,
        /// Magnitude of an active feature.
        magnitude: Magnitude,
        /// Features come in groups of this size that fire together (1: independent).
        group_size: u32,
        /// Within a firing group, the probability each member fires.
        group_coherence: f32,
    },
    /// The hidden layer `h = W x` of a toy model of superposition trained with these settings
    /// (the model is trained first, on the same device, then frozen).
    Superposition {
        /// The toy model's number of features.
        n_features: u32,
        /// The toy model's hidden size (the SAE's d_in).
        n_hidden: u32,
        /// Probability that each toy feature is non-zero.
        feature_probability: f32,
        /// Importance decay of the toy model.
        importance_decay: f32,
        /// Steps to train the toy model for.
        toy_steps: u32,
    },
}

impl SourceConfig {
    /// The activations' dimension, which is the SAE's d_in.
    pub fn d_in(&self) -> u32 {
        match self {
            SourceConfig::GroundTruth { d, .. } => *d,
            SourceConfig::Superposition { n_hidden, .. } => *n_hidden,
        }
    }

    /// A short name for the UI and links.
    pub fn name(&self) -> &'static str {
        match self {
            SourceConfig::GroundTruth { .. } => "ground_truth",
            SourceConfig::Superposition { .. } => "superposition",
        }
    }
}

/// Every source kind as links spell it (`s.kind`) and as menus label it.
pub const SOURCE_CHOICES: &[(&str, &str)] = &[
    ("ground_truth", "planted ground-truth features"),
    ("superposition", "a toy model's hidden layer"),
];

/// Every magnitude kind as links spell it (`s.magnitude.kind`) and as menus label it.
pub const MAGNITUDE_CHOICES: &[(&str, &str)] = &[
    ("uniform", "uniform"),
    ("folded_normal", "folded normal"),
    ("constant", "constant"),
];
