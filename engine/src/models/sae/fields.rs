//! The SAE config's fields: link key, the name errors use, label, hint and range, in the order
//! the page shows them (see [`crate::experiment::fields`]). Validation checks each field's own
//! range through these constants; rules between fields stay in [`super::config`].

use super::config::ARCHITECTURE_CHOICES;
use super::config::{MAX_D_IN, MAX_D_SAE, MAX_K, MAX_TRUE_FEATURES};
use crate::data::config::{MAGNITUDE_CHOICES, SOURCE_CHOICES};
use crate::experiment::fields::{Field, Range};

/// `a.kind`.
pub const A_KIND: Field = Field {
    key: "a.kind",
    name: "kind",
    label: "Architecture",
    hint: "how latents are chosen and penalised",
    range: Range::Choice(ARCHITECTURE_CHOICES),
};
/// `a.k`.
pub const A_K: Field = Field {
    key: "a.k",
    name: "k",
    label: "k",
    hint: "latents kept per input (TopK) or on average (BatchTopK)",
    range: Range::Whole {
        min: 1,
        max: MAX_K as u64,
    },
};
/// `a.k_aux`.
pub const A_K_AUX: Field = Field {
    key: "a.k_aux",
    name: "k_aux",
    label: "k_aux",
    hint: "dead latents AuxK reconstructs the residual from; 0 for d_in / 2",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `a.aux_coefficient`.
pub const A_AUX_COEFFICIENT: Field = Field {
    key: "a.aux_coefficient",
    name: "aux_coefficient",
    label: "AuxK coefficient",
    hint: "weight of the AuxK loss (Gao et al.: 1/32)",
    range: Range::NonNegative,
};
/// `a.dead_tokens`.
pub const A_DEAD_TOKENS: Field = Field {
    key: "a.dead_tokens",
    name: "dead_tokens",
    label: "Dead after",
    hint: "inputs without firing before a latent counts as dead",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `a.l1_coefficient`.
pub const A_L1_COEFFICIENT: Field = Field {
    key: "a.l1_coefficient",
    name: "l1_coefficient",
    label: "λ (L1)",
    hint: "sparsity penalty on activations × decoder norms",
    range: Range::NonNegative,
};
/// `a.l1_warmup_steps`.
pub const A_L1_WARMUP_STEPS: Field = Field {
    key: "a.l1_warmup_steps",
    name: "l1_warmup_steps",
    label: "λ warm-up",
    hint: "steps over which λ rises from 0",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `a.l0_coefficient`.
pub const A_L0_COEFFICIENT: Field = Field {
    key: "a.l0_coefficient",
    name: "l0_coefficient",
    label: "λ (L0)",
    hint: "penalty on the number of active latents",
    range: Range::NonNegative,
};
/// `a.bandwidth`.
pub const A_BANDWIDTH: Field = Field {
    key: "a.bandwidth",
    name: "bandwidth",
    label: "Bandwidth ε",
    hint: "width of the straight-through estimator's rectangle kernel",
    range: Range::Positive,
};
/// `a.initial_threshold`.
pub const A_INITIAL_THRESHOLD: Field = Field {
    key: "a.initial_threshold",
    name: "initial_threshold",
    label: "Initial θ",
    hint: "every latent's starting threshold",
    range: Range::Positive,
};
/// `a.l0_warmup_steps`.
pub const A_L0_WARMUP_STEPS: Field = Field {
    key: "a.l0_warmup_steps",
    name: "l0_warmup_steps",
    label: "λ warm-up",
    hint: "steps over which λ rises from 0",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `a.threshold_lr_scale`.
pub const A_THRESHOLD_LR_SCALE: Field = Field {
    key: "a.threshold_lr_scale",
    name: "threshold_lr_scale",
    label: "θ learning-rate scale",
    hint: "log θ's learning rate as a multiple of the shared one, so short runs can move thresholds far",
    range: Range::Positive,
};
/// `d_sae`.
pub const D_SAE: Field = Field {
    key: "d_sae",
    name: "d_sae",
    label: "Latents (d_sae)",
    hint: "size of the dictionary",
    range: Range::Whole {
        min: 1,
        max: MAX_D_SAE as u64,
    },
};
/// `s.kind`.
pub const S_KIND: Field = Field {
    key: "s.kind",
    name: "kind",
    label: "Source",
    hint: "where the activations come from",
    range: Range::Choice(SOURCE_CHOICES),
};
/// `s.d`.
pub const S_D: Field = Field {
    key: "s.d",
    name: "d",
    label: "d",
    hint: "dimension of the activations (the SAE's d_in)",
    range: Range::Whole {
        min: 1,
        max: MAX_D_IN as u64,
    },
};
/// `s.n_features`.
pub const S_N_FEATURES: Field = Field {
    key: "s.n_features",
    name: "n_features",
    label: "Features",
    hint: "true features planted (ground truth) or the toy model's inputs",
    range: Range::Whole {
        min: 1,
        max: MAX_TRUE_FEATURES as u64,
    },
};
/// `s.n_hidden`.
pub const S_N_HIDDEN: Field = Field {
    key: "s.n_hidden",
    name: "n_hidden",
    label: "Hidden dims",
    hint: "the toy model's hidden size (the SAE's d_in)",
    range: Range::Whole {
        min: 1,
        max: MAX_D_IN as u64,
    },
};
/// `s.probability`.
pub const S_PROBABILITY: Field = Field {
    key: "s.probability",
    name: "probability",
    label: "Feature probability",
    hint: "each feature (or group) fires with this probability",
    range: Range::Probability,
};
/// `s.feature_probability`.
pub const S_FEATURE_PROBABILITY: Field = Field {
    key: "s.feature_probability",
    name: "feature_probability",
    label: "Feature probability",
    hint: "1 − sparsity of the toy model's inputs",
    range: Range::Probability,
};
/// `s.importance_decay`.
pub const S_IMPORTANCE_DECAY: Field = Field {
    key: "s.importance_decay",
    name: "importance_decay",
    label: "Importance decay",
    hint: "toy feature i has importance decayⁱ",
    range: Range::Positive,
};
/// `s.toy_steps`.
pub const S_TOY_STEPS: Field = Field {
    key: "s.toy_steps",
    name: "toy_steps",
    label: "Toy model steps",
    hint: "the toy model trains this long first, then is frozen",
    range: Range::Whole {
        min: 1,
        max: u32::MAX as u64,
    },
};
/// `s.magnitude.kind`.
pub const MAG_KIND: Field = Field {
    key: "s.magnitude.kind",
    name: "magnitude.kind",
    label: "Magnitudes",
    hint: "how strongly an active feature fires",
    range: Range::Choice(MAGNITUDE_CHOICES),
};
/// `s.magnitude.low`.
pub const MAG_LOW: Field = Field {
    key: "s.magnitude.low",
    name: "magnitude.low",
    label: "Low",
    hint: "smallest magnitude",
    range: Range::NonNegative,
};
/// `s.magnitude.high`.
pub const MAG_HIGH: Field = Field {
    key: "s.magnitude.high",
    name: "magnitude.high",
    label: "High",
    hint: "largest magnitude",
    range: Range::Positive,
};
/// `s.magnitude.mean`.
pub const MAG_MEAN: Field = Field {
    key: "s.magnitude.mean",
    name: "magnitude.mean",
    label: "Mean",
    hint: "of the normal before folding",
    range: Range::NonNegative,
};
/// `s.magnitude.std`.
pub const MAG_STD: Field = Field {
    key: "s.magnitude.std",
    name: "magnitude.std",
    label: "Std",
    hint: "of the normal before folding",
    range: Range::Positive,
};
/// `s.magnitude.value`.
pub const MAG_VALUE: Field = Field {
    key: "s.magnitude.value",
    name: "magnitude.value",
    label: "Value",
    hint: "every active feature's magnitude",
    range: Range::Positive,
};
/// `s.group_size`.
pub const S_GROUP_SIZE: Field = Field {
    key: "s.group_size",
    name: "group_size",
    label: "Group size",
    hint: "features that fire together (1: independent)",
    range: Range::Whole {
        min: 1,
        max: u32::MAX as u64,
    },
};
/// `s.group_coherence`.
pub const S_GROUP_COHERENCE: Field = Field {
    key: "s.group_coherence",
    name: "group_coherence",
    label: "Group coherence",
    hint: "chance each member fires with its group",
    range: Range::Probability,
};
/// `batch_size`.
pub const BATCH_SIZE: Field = Field {
    key: "batch_size",
    name: "batch_size",
    label: "Batch size",
    hint: "activations per step",
    range: Range::Whole {
        min: 1,
        max: 65_536,
    },
};
/// `shuffle_batches`.
pub const SHUFFLE_BATCHES: Field = Field {
    key: "shuffle_batches",
    name: "shuffle_batches",
    label: "Shuffle pool",
    hint: "batches of activations mixed before training (0: none)",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `steps`.
pub const STEPS: Field = Field {
    key: "steps",
    name: "steps",
    label: "Steps",
    hint: "training steps (per run of a sweep)",
    range: Range::Whole {
        min: 1,
        max: u32::MAX as u64,
    },
};
/// `learning_rate`.
pub const LEARNING_RATE: Field = Field {
    key: "learning_rate",
    name: "learning_rate",
    label: "Learning rate",
    hint: "Adam's peak",
    range: Range::Positive,
};
/// `lr_warmup_steps`.
pub const LR_WARMUP_STEPS: Field = Field {
    key: "lr_warmup_steps",
    name: "lr_warmup_steps",
    label: "LR warm-up",
    hint: "steps of linear warm-up",
    range: Range::Whole {
        min: 0,
        max: u32::MAX as u64,
    },
};
/// `lr_decay_fraction`.
pub const LR_DECAY_FRACTION: Field = Field {
    key: "lr_decay_fraction",
    name: "lr_decay_fraction",
    label: "LR decay",
    hint: "final fraction of the run decaying to 0",
    range: Range::Fraction,
};
/// `max_grad_norm`.
pub const MAX_GRAD_NORM: Field = Field {
    key: "max_grad_norm",
    name: "max_grad_norm",
    label: "Gradient clip",
    hint: "global norm; 0 for none",
    range: Range::NonNegative,
};
/// `normalize_activations`.
pub const NORMALIZE_ACTIVATIONS: Field = Field {
    key: "normalize_activations",
    name: "normalize_activations",
    label: "Normalise inputs",
    hint: "scale to mean norm √d_in (folded back on export)",
    range: Range::Bool,
};
/// `b_dec_geometric_median`.
pub const B_DEC_GEOMETRIC_MEDIAN: Field = Field {
    key: "b_dec_geometric_median",
    name: "b_dec_geometric_median",
    label: "b_dec at geometric median",
    hint: "else the mean",
    range: Range::Bool,
};
/// `seed`.
pub const SEED: Field = Field {
    key: "seed",
    name: "seed",
    label: "Seed",
    hint: "data, initialisation and shuffle",
    range: Range::Whole {
        min: 0,
        max: u64::MAX,
    },
};
/// The toy model's `s.n_features` (the ground-truth source's is [`S_N_FEATURES`]).
pub const S_TOY_N_FEATURES: Field = Field {
    range: Range::Whole { min: 1, max: 4096 },
    ..S_N_FEATURES
};

/// Every field, in the order the page shows them; fields a config lacks are skipped there.
pub const SAE_FIELDS: &[Field] = &[
    A_KIND,
    A_K,
    A_K_AUX,
    A_AUX_COEFFICIENT,
    A_DEAD_TOKENS,
    A_L1_COEFFICIENT,
    A_L1_WARMUP_STEPS,
    A_L0_COEFFICIENT,
    A_BANDWIDTH,
    A_INITIAL_THRESHOLD,
    A_L0_WARMUP_STEPS,
    A_THRESHOLD_LR_SCALE,
    D_SAE,
    S_KIND,
    S_D,
    S_N_FEATURES,
    S_N_HIDDEN,
    S_PROBABILITY,
    S_FEATURE_PROBABILITY,
    S_IMPORTANCE_DECAY,
    S_TOY_STEPS,
    MAG_KIND,
    MAG_LOW,
    MAG_HIGH,
    MAG_MEAN,
    MAG_STD,
    MAG_VALUE,
    S_GROUP_SIZE,
    S_GROUP_COHERENCE,
    BATCH_SIZE,
    SHUFFLE_BATCHES,
    STEPS,
    LEARNING_RATE,
    LR_WARMUP_STEPS,
    LR_DECAY_FRACTION,
    MAX_GRAD_NORM,
    NORMALIZE_ACTIVATIONS,
    B_DEC_GEOMETRIC_MEDIAN,
    SEED,
];
