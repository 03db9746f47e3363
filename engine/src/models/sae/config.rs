//! The SAE lab's config: architecture, source, optimiser and schedule, shared by the page, the
//! CLI and the share link, with the presets and the validation every entry point runs first.

use super::fields as f;
use crate::error::{EngineError, Result};
use crate::experiment::preset::LabPreset;
use serde::{Deserialize, Serialize};

/// Which sparse autoencoder, with the hyper-parameters only it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// `f = ReLU(W_enc (x - b_dec) + b_enc)`, loss `‖x - x̂‖² + λ Σᵢ fᵢ ‖W_dec,ᵢ‖` (Anthropic's
    /// April 2024 update), λ warmed up linearly from 0.
    ReluL1 {
        /// λ, the L1 coefficient.
        l1_coefficient: f32,
        /// Steps over which λ rises from 0 to its value.
        l1_warmup_steps: u32,
    },
    /// Keep the k largest pre-activations per row (Gao et al. 2024), with the AuxK loss.
    #[serde(rename = "topk")]
    TopK {
        /// Latents kept per row.
        k: u32,
        /// Dead latents the AuxK loss reconstructs the residual from (0: d_in / 2).
        k_aux: u32,
        /// Weight of the AuxK loss.
        aux_coefficient: f32,
        /// A latent is dead after this many tokens without firing.
        dead_tokens: u32,
    },
    /// Keep the `k · batch` largest activations across the whole batch (Bussmann et al. 2024);
    /// a threshold learned as a running estimate replaces the top-k at inference.
    #[serde(rename = "batch_topk")]
    BatchTopK {
        /// Mean latents kept per row.
        k: u32,
        /// As for TopK.
        k_aux: u32,
        /// As for TopK.
        aux_coefficient: f32,
        /// As for TopK.
        dead_tokens: u32,
    },
    /// Gated SAE (Rajamanoharan et al. 2024a): a gate and a magnitude path sharing `W_gate`.
    Gated {
        /// λ on `‖ReLU(π_gate)‖₁` (weighted by decoder norms).
        l1_coefficient: f32,
        /// Steps over which λ rises from 0 to its value.
        l1_warmup_steps: u32,
    },
    /// JumpReLU SAE (Rajamanoharan et al. 2024b): learned per-latent thresholds, L0 penalty,
    /// straight-through estimators with a rectangle kernel.
    #[serde(rename = "jumprelu")]
    JumpRelu {
        /// λ on the L0 norm.
        l0_coefficient: f32,
        /// Width ε of the rectangle kernel.
        bandwidth: f32,
        /// The thresholds' starting value.
        initial_threshold: f32,
        /// Steps over which λ rises from 0 to its value.
        l0_warmup_steps: u32,
        /// log θ's learning rate as a multiple of the shared one. Adam moves log θ by about
        /// the learning rate per step, so in a run of a few thousand steps at 1e-3 a threshold
        /// can change by a factor of a few at most; the anchors train for ~10⁵ steps and their
        /// thresholds travel much further. The scale gives short runs the same reach. Too large
        /// a scale lets thresholds outrun the encoder early on and kill latents for good (on
        /// the ground-truth preset: 3 recovers 424 of 512 features with 34% dead, 10 recovers
        /// 228 with 61% dead).
        threshold_lr_scale: f32,
    },
}

/// The five architectures as links and the CLI name them and menus label them: the one list
/// the field table, the page's menu and [`ARCHITECTURE_NAMES`] come from.
pub const ARCHITECTURE_CHOICES: &[(&str, &str)] = &[
    ("relu_l1", "ReLU + L1"),
    ("topk", "TopK"),
    ("batch_topk", "BatchTopK"),
    ("gated", "Gated"),
    ("jumprelu", "JumpReLU"),
];

/// The five architectures by name, for links and the CLI.
pub const ARCHITECTURE_NAMES: [&str; 5] = {
    let mut names = [""; 5];
    let mut i = 0;
    while i < names.len() {
        names[i] = ARCHITECTURE_CHOICES[i].0;
        i += 1;
    }
    names
};

impl Architecture {
    /// The default hyper-parameters of the architecture called `name` (see
    /// [`ARCHITECTURE_NAMES`]).
    pub fn by_name(name: &str) -> Result<Self> {
        Ok(match name {
            "relu_l1" => Architecture::ReluL1 {
                l1_coefficient: 3.0,
                l1_warmup_steps: 500,
            },
            "topk" => Architecture::TopK {
                k: 16,
                k_aux: 0,
                aux_coefficient: 1.0 / 32.0,
                dead_tokens: 100_000,
            },
            "batch_topk" => Architecture::BatchTopK {
                k: 16,
                k_aux: 0,
                aux_coefficient: 1.0 / 32.0,
                dead_tokens: 100_000,
            },
            "gated" => Architecture::Gated {
                l1_coefficient: 5.0,
                l1_warmup_steps: 500,
            },
            "jumprelu" => Architecture::JumpRelu {
                l0_coefficient: 1.0,
                bandwidth: 0.05,
                initial_threshold: 0.1,
                l0_warmup_steps: 500,
                threshold_lr_scale: 3.0,
            },
            other => {
                return Err(EngineError::invalid(
                    "architecture",
                    other,
                    format!("expected one of {}", ARCHITECTURE_NAMES.join(", ")),
                ))
            }
        })
    }

    /// The architecture's name, as in [`ARCHITECTURE_NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::ReluL1 { .. } => "relu_l1",
            Architecture::TopK { .. } => "topk",
            Architecture::BatchTopK { .. } => "batch_topk",
            Architecture::Gated { .. } => "gated",
            Architecture::JumpRelu { .. } => "jumprelu",
        }
    }

    /// A human name for charts and tables.
    pub fn label(&self) -> &'static str {
        match self {
            Architecture::ReluL1 { .. } => "ReLU + L1",
            Architecture::TopK { .. } => "TopK",
            Architecture::BatchTopK { .. } => "BatchTopK",
            Architecture::Gated { .. } => "Gated",
            Architecture::JumpRelu { .. } => "JumpReLU",
        }
    }

    /// k for the TopK family.
    pub fn k(&self) -> Option<u32> {
        match self {
            Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } => Some(*k),
            _ => None,
        }
    }

    /// The sparsity coefficient (λ) of the penalised architectures.
    pub fn sparsity_coefficient(&self) -> Option<f32> {
        match self {
            Architecture::ReluL1 { l1_coefficient, .. }
            | Architecture::Gated { l1_coefficient, .. } => Some(*l1_coefficient),
            Architecture::JumpRelu { l0_coefficient, .. } => Some(*l0_coefficient),
            _ => None,
        }
    }

    /// The same architecture with its sparsity knob (k, or λ) set to `value`: what a frontier
    /// sweep varies.
    pub fn with_sparsity(&self, value: f32) -> Self {
        let mut a = self.clone();
        match &mut a {
            Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } => {
                *k = value.round().max(1.0) as u32
            }
            Architecture::ReluL1 { l1_coefficient, .. }
            | Architecture::Gated { l1_coefficient, .. } => *l1_coefficient = value,
            Architecture::JumpRelu { l0_coefficient, .. } => *l0_coefficient = value,
        }
        a
    }

    /// Whether decoder rows are held at unit norm: the TopK family (Gao et al.) and Gated,
    /// whose reference trainer (Rajamanoharan et al., and the dictionary_learning library)
    /// constrains them; unconstrained, the gate's L1 is cheated by latents with vanishing
    /// decoder rows that fire freely.
    pub fn unit_norm_decoder(&self) -> bool {
        matches!(
            self,
            Architecture::TopK { .. } | Architecture::BatchTopK { .. } | Architecture::Gated { .. }
        )
    }
}

pub use crate::data::config::{Magnitude, SourceConfig};

/// A sparse autoencoder training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaeConfig {
    /// The activation source.
    pub source: SourceConfig,
    /// The architecture and its own hyper-parameters.
    pub architecture: Architecture,
    /// Number of latents.
    pub d_sae: u32,
    /// Activations per step.
    pub batch_size: u32,
    /// Batches of activations pooled and mixed before training: each step draws its batch at
    /// random from a pool of `shuffle_batches × batch_size` recent activations and refills the
    /// drawn slots from the source (0 or 1: no pool, batches straight from the source).
    pub shuffle_batches: u32,
    /// Training steps.
    pub steps: u32,
    /// Peak Adam learning rate.
    pub learning_rate: f32,
    /// Steps of linear learning-rate warm-up.
    pub lr_warmup_steps: u32,
    /// Fraction of the run, at its end, over which the learning rate decays linearly to 0.
    pub lr_decay_fraction: f32,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f32,
    /// Scale inputs so their mean norm is √d_in (folded back into the weights on export).
    pub normalize_activations: bool,
    /// Start b_dec at the geometric median of a sample (else the mean).
    pub b_dec_geometric_median: bool,
    /// Seed for the source, the initialisation and the shuffle.
    pub seed: u64,
}

impl Default for SaeConfig {
    fn default() -> Self {
        SaePreset::GroundTruth.config()
    }
}

/// Named configs that reproduce the anchors' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaePreset {
    /// d = 64, N = 512 planted features, d_sae = 1024, TopK.
    GroundTruth,
    /// A sweep of k or λ per architecture on the ground-truth source (see [`frontier_sweep`]).
    Frontier,
    /// An SAE on the hidden layer of a toy model of superposition.
    SuperpositionHidden,
}

impl LabPreset for SaePreset {
    const ALL: &'static [SaePreset] = &[
        SaePreset::GroundTruth,
        SaePreset::Frontier,
        SaePreset::SuperpositionHidden,
    ];

    fn name(self) -> &'static str {
        match self {
            SaePreset::GroundTruth => "ground-truth",
            SaePreset::Frontier => "frontier",
            SaePreset::SuperpositionHidden => "superposition-hidden",
        }
    }

    fn shows(self) -> &'static str {
        match self {
            SaePreset::GroundTruth => {
                "A TopK SAE on 512 planted features in 64 dimensions: with the truth known, \
                 watch MMCS and the count of recovered features climb as the SAE finds them."
            }
            SaePreset::Frontier => {
                "Every architecture over its k or λ sweep: the MSE-against-L0 frontier, where \
                 lower and further left is better (long: an hour or more on a software GPU)."
            }
            SaePreset::SuperpositionHidden => {
                "An SAE reads the hidden layer of a toy model of superposition and recovers the \
                 40 features the toy model squeezed into fewer dimensions, in seconds."
            }
        }
    }
}

impl SaePreset {
    /// The preset's config (for `frontier`, the base config that [`frontier_sweep`] varies).
    pub fn config(&self) -> SaeConfig {
        let ground_truth = SourceConfig::GroundTruth {
            d: 64,
            n_features: 512,
            probability: 1.0 / 64.0,
            magnitude: Magnitude::Uniform {
                low: 0.5,
                high: 1.5,
            },
            group_size: 1,
            group_coherence: 1.0,
        };
        let base = SaeConfig {
            source: ground_truth,
            architecture: Architecture::by_name("topk").expect("known"),
            d_sae: 1024,
            batch_size: 1024,
            shuffle_batches: 0,
            steps: 3000,
            learning_rate: 1e-3,
            lr_warmup_steps: 100,
            lr_decay_fraction: 0.2,
            max_grad_norm: 1.0,
            normalize_activations: true,
            b_dec_geometric_median: true,
            seed: 0,
        };
        match self {
            SaePreset::GroundTruth => base,
            SaePreset::Frontier => SaeConfig {
                steps: 1500,
                ..base
            },
            SaePreset::SuperpositionHidden => SaeConfig {
                source: SourceConfig::Superposition {
                    n_features: 40,
                    n_hidden: 10,
                    feature_probability: 0.05,
                    importance_decay: 1.0,
                    toy_steps: 4000,
                },
                architecture: Architecture::TopK {
                    k: 4,
                    k_aux: 0,
                    aux_coefficient: 1.0 / 32.0,
                    dead_tokens: 100_000,
                },
                d_sae: 80,
                batch_size: 1024,
                steps: 2000,
                ..base
            },
        }
    }
}

/// The sparsity values a frontier sweep tries for an architecture: k for the TopK family, λ for
/// the penalised ones, from sparse to dense.
pub fn frontier_sweep(architecture: &Architecture) -> Vec<f32> {
    match architecture {
        Architecture::TopK { .. } | Architecture::BatchTopK { .. } => {
            vec![2.0, 4.0, 8.0, 16.0, 32.0]
        }
        Architecture::ReluL1 { .. } | Architecture::Gated { .. } => {
            vec![20.0, 10.0, 5.0, 2.0, 1.0]
        }
        Architecture::JumpRelu { .. } => vec![4.0, 2.0, 1.0, 0.5, 0.25],
    }
}

/// Limits that keep a config meaningful before any device limit is consulted.
pub const MAX_D_IN: u32 = 16_384;
/// The largest dictionary accepted (the TopK kernel's bound).
pub const MAX_D_SAE: u32 = 131_072;
/// The largest k the per-row TopK kernel supports.
pub const MAX_K: u32 = 256;
/// The most true features a ground-truth source may plant.
pub const MAX_TRUE_FEATURES: u32 = 1 << 20;
/// The most bytes of activations a shuffle pool may hold (the common browser limit on one
/// buffer).
pub const MAX_SHUFFLE_POOL_BYTES: u64 = 256 << 20;

impl SaeConfig {
    /// The SAE's input dimension.
    pub fn d_in(&self) -> u32 {
        self.source.d_in()
    }

    /// k_aux as used: the configured value, or d_in / 2 when 0 (Gao et al.'s default).
    pub fn k_aux(&self) -> u32 {
        match self.architecture {
            Architecture::TopK { k_aux, .. } | Architecture::BatchTopK { k_aux, .. } => {
                if k_aux == 0 {
                    (self.d_in() / 2).max(1)
                } else {
                    k_aux
                }
                .min(self.d_sae)
            }
            _ => 0,
        }
    }

    /// Rows of the shuffle pool, or `None` when batches come straight from the source.
    pub fn shuffle_pool_rows(&self) -> Option<usize> {
        (self.shuffle_batches > 1).then(|| self.shuffle_batches as usize * self.batch_size as usize)
    }

    /// Checks every field, naming the first that is out of range.
    pub fn validate(&self) -> Result<()> {
        let d_in = self.d_in();
        // d_in is not a field of its own: the source field that sets it is checked.
        match self.source {
            SourceConfig::GroundTruth { .. } => f::S_D.check_whole(d_in as u64)?,
            SourceConfig::Superposition { .. } => f::S_N_HIDDEN.check_whole(d_in as u64)?,
        }
        f::D_SAE.check_whole(self.d_sae as u64)?;
        f::BATCH_SIZE.check_whole(self.batch_size as u64)?;
        let pool_bytes = self.shuffle_batches as u64 * self.batch_size as u64 * d_in as u64 * 4;
        if self.shuffle_batches > 1 && pool_bytes > MAX_SHUFFLE_POOL_BYTES {
            return Err(EngineError::invalid(
                "shuffle_batches",
                self.shuffle_batches,
                format!(
                    "a pool of {} × batch_size {} × d_in {d_in} activations takes {} MiB, over \
                     the limit of {} MiB",
                    self.shuffle_batches,
                    self.batch_size,
                    pool_bytes >> 20,
                    MAX_SHUFFLE_POOL_BYTES >> 20
                ),
            ));
        }
        f::STEPS.check_whole(self.steps as u64)?;
        f::LEARNING_RATE.check_real(self.learning_rate)?;
        f::LR_DECAY_FRACTION.check_real(self.lr_decay_fraction)?;
        f::MAX_GRAD_NORM.check_real(self.max_grad_norm)?;
        match &self.architecture {
            Architecture::ReluL1 { l1_coefficient, .. }
            | Architecture::Gated { l1_coefficient, .. } => {
                f::A_L1_COEFFICIENT.check_real(*l1_coefficient)?
            }
            Architecture::TopK {
                k, aux_coefficient, ..
            }
            | Architecture::BatchTopK {
                k, aux_coefficient, ..
            } => {
                if *k == 0 || *k > self.d_sae {
                    return Err(EngineError::invalid(
                        "k",
                        k,
                        format!("must be between 1 and d_sae = {}", self.d_sae),
                    ));
                }
                // The TopK kernels' own bound.
                f::A_K.check_whole(*k as u64)?;
                f::A_AUX_COEFFICIENT.check_real(*aux_coefficient)?;
            }
            Architecture::JumpRelu {
                l0_coefficient,
                bandwidth,
                initial_threshold,
                threshold_lr_scale,
                ..
            } => {
                f::A_L0_COEFFICIENT.check_real(*l0_coefficient)?;
                f::A_BANDWIDTH.check_real(*bandwidth)?;
                f::A_INITIAL_THRESHOLD.check_real(*initial_threshold)?;
                f::A_THRESHOLD_LR_SCALE.check_real(*threshold_lr_scale)?;
            }
        }
        match &self.source {
            SourceConfig::GroundTruth {
                d,
                n_features,
                probability: p,
                magnitude,
                group_size,
                group_coherence,
            } => {
                f::S_N_FEATURES.check_whole(*n_features as u64)?;
                if (*n_features as u64) * (*d as u64) > 1 << 26 {
                    return Err(EngineError::invalid(
                        "n_features",
                        n_features,
                        format!("{n_features} features × d = {d} is over 2^26 numbers"),
                    ));
                }
                f::S_PROBABILITY.check_real(*p)?;
                match *magnitude {
                    Magnitude::Uniform { low, high } => {
                        f::MAG_LOW.check_real(low)?;
                        f::MAG_HIGH.check_real(high)?;
                        if low > high {
                            return Err(EngineError::invalid(
                                "magnitude.low",
                                low,
                                format!("must not exceed magnitude.high = {high}"),
                            ));
                        }
                    }
                    Magnitude::FoldedNormal { mean, std } => {
                        f::MAG_MEAN.check_real(mean)?;
                        f::MAG_STD.check_real(std)?;
                    }
                    Magnitude::Constant { value } => f::MAG_VALUE.check_real(value)?,
                }
                if *group_size == 0 || *group_size > *n_features {
                    return Err(EngineError::invalid(
                        "group_size",
                        group_size,
                        "must be between 1 and n_features",
                    ));
                }
                f::S_GROUP_COHERENCE.check_real(*group_coherence)?;
            }
            SourceConfig::Superposition {
                n_features,
                n_hidden,
                feature_probability,
                importance_decay,
                toy_steps,
            } => {
                f::S_TOY_N_FEATURES.check_whole(*n_features as u64)?;
                if *n_hidden > *n_features {
                    return Err(EngineError::invalid(
                        "n_hidden",
                        n_hidden,
                        "must not exceed n_features",
                    ));
                }
                f::S_FEATURE_PROBABILITY.check_real(*feature_probability)?;
                f::S_IMPORTANCE_DECAY.check_real(*importance_decay)?;
                f::S_TOY_STEPS.check_whole(*toy_steps as u64)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_their_names() {
        for &p in SaePreset::ALL {
            p.config().validate().unwrap();
            assert_eq!(SaePreset::from_name(p.name()).unwrap(), p);
        }
        for name in ARCHITECTURE_NAMES {
            let a = Architecture::by_name(name).unwrap();
            assert_eq!(a.name(), name);
            let cfg = SaeConfig {
                architecture: a,
                ..SaeConfig::default()
            };
            cfg.validate().unwrap();
        }
        assert!(SaePreset::from_name("nope").is_err());
        assert!(Architecture::by_name("relu").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |f: &dyn Fn(&mut SaeConfig)| {
            let mut c = SaeConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(&|c| c.architecture = Architecture::TopK {
            k: 2000,
            k_aux: 0,
            aux_coefficient: 0.1,
            dead_tokens: 10
        })
        .contains("k = 2000"));
        assert!(bad(&|c| c.architecture = Architecture::ReluL1 {
            l1_coefficient: -1.0,
            l1_warmup_steps: 0
        })
        .contains("l1_coefficient = -1"));
        assert!(bad(&|c| c.learning_rate = f32::NAN).contains("learning_rate"));
        assert!(bad(&|c| c.d_sae = 0).contains("d_sae"));
        assert!(bad(&|c| c.d_sae = MAX_D_SAE + 1).contains("d_sae"));
        // A batch of 1024 × 64 activations takes 256 KiB: 1024 of them fill the 256 MiB pool.
        let full = SaeConfig {
            shuffle_batches: 1024,
            ..SaeConfig::default()
        };
        full.validate().unwrap();
        assert!(bad(&|c| c.shuffle_batches = 1025).contains("shuffle_batches = 1025"));
        // d_in comes from the source: the error names the source's own field.
        let hidden = |c: &mut SaeConfig| {
            c.source = SourceConfig::Superposition {
                n_features: 20,
                n_hidden: 0,
                feature_probability: 0.05,
                importance_decay: 1.0,
                toy_steps: 10,
            }
        };
        assert!(bad(&hidden).contains("n_hidden = 0"), "{}", bad(&hidden));
        assert!(bad(&|c| c.architecture = Architecture::JumpRelu {
            l0_coefficient: 1.0,
            bandwidth: 0.05,
            initial_threshold: 0.1,
            l0_warmup_steps: 0,
            threshold_lr_scale: 0.0,
        })
        .contains("threshold_lr_scale = 0"));
    }

    #[test]
    fn k_aux_defaults_to_half_d_in() {
        let c = SaeConfig::default();
        assert_eq!(c.k_aux(), 32);
    }
}
