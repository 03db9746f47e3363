//! The toy model of superposition: shared layout, initialisation and data, a CPU reference
//! trainer, and two GPU trainers (fused one-workgroup-per-instance, and general).
//!
//! Parameters of one instance live in one flat block: `W` row-major (n_hidden × n_features),
//! then `b` (n_features). Adam's `m` and `v` use the same layout.

pub mod config;
pub mod cpu;
pub mod gpu;
mod trainer;

pub use trainer::{ToyLab, ToyTrainer};

use crate::error::{EngineError, Result};
use crate::models::toy::config::{InstanceSpec, SuperpositionConfig};
use crate::rng::{fold_seed, rng_normal, rng_unit};
use crate::train::adam::AdamConfig;

/// The optimiser's settings (Adam, β₁ 0.9, β₂ 0.999, ε 1e-8, no weight decay).
pub const ADAM: AdamConfig = AdamConfig::DEFAULT;
/// Stream key for initialisation, so init draws never coincide with data draws.
const INIT_STREAM: u32 = 0x1417_0000;
/// Marks an instance that has not diverged.
pub const NOT_DIVERGED: u32 = u32::MAX;

/// One instance's trained parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceWeights {
    /// `W`, n_hidden rows of n_features.
    #[serde(rename = "W")]
    pub w: Vec<Vec<f32>>,
    /// `b`, n_features.
    pub b: Vec<f32>,
}

/// Splits a flat parameter block into `W` rows and `b`.
pub fn unflatten(block: &[f32], n_hidden: usize, n_features: usize) -> InstanceWeights {
    InstanceWeights {
        w: (0..n_hidden)
            .map(|k| block[k * n_features..(k + 1) * n_features].to_vec())
            .collect(),
        b: block[n_hidden * n_features..(n_hidden + 1) * n_features].to_vec(),
    }
}

/// Xavier-normal `W` and zero `b` for every instance, flat, instance-major.
pub fn init_params(cfg: &SuperpositionConfig) -> Vec<f32> {
    let (f, h) = (cfg.n_features as usize, cfg.n_hidden as usize);
    let p = cfg.params_per_instance();
    let n = cfg.n_instances();
    let std = (2.0 / (f + h) as f32).sqrt();
    let seed = fold_seed(cfg.seed) ^ INIT_STREAM;
    let mut out = vec![0.0; n * p];
    for i in 0..n {
        for j in 0..h * f {
            out[i * p + j] = std * rng_normal(seed, i as u32, j as u32);
        }
    }
    out
}

/// Per-instance constants as the kernels read them: `[feature_probability, importance[F]]`.
pub fn instance_table(instances: &[InstanceSpec]) -> Vec<f32> {
    instances
        .iter()
        .flat_map(|s| std::iter::once(s.feature_probability).chain(s.importance.iter().copied()))
        .collect()
}

/// Feature `f` of sample `sample` at `step` for `instance`: zero with probability 1 − p, else
/// uniform in [0, 1). Matches `toy_sample` in `shaders/toy/gpu.wgsl`.
pub fn sample_feature(
    seed: u32,
    instance: u32,
    step: u32,
    sample: u32,
    n_features: u32,
    f: u32,
    p: f32,
) -> f32 {
    let idx = (sample * n_features + f) * 2;
    if rng_unit(seed, instance, step, idx) < p {
        rng_unit(seed, instance, step, idx + 1)
    } else {
        0.0
    }
}

/// The step number whose batch is the evaluation batch: training counts steps from 0 and a
/// config allows far fewer, so no training step ever draws it.
pub const EVAL_STEP: u32 = u32::MAX;

/// Instance `i`'s loss with parameters `block` on the evaluation batch: `batch_size` samples
/// drawn with the run's seed at [`EVAL_STEP`], the training loss's definition (importance-
/// weighted squared error), computed by the CPU reference. Two runs with the same weights get
/// the same number, whatever the device or its speed.
pub fn eval_loss(cfg: &SuperpositionConfig, spec: &InstanceSpec, block: &[f32], i: u32) -> f32 {
    let row = instance_table(std::slice::from_ref(spec));
    cpu::CpuToyTrainer::grad(cfg, &row, block, i, EVAL_STEP).loss
}

/// Turns per-instance divergence steps into the error for the earliest one.
pub(crate) fn diverged_error(diverged: &[u32]) -> Result<()> {
    match diverged
        .iter()
        .enumerate()
        .filter(|(_, &s)| s != NOT_DIVERGED)
        .min_by_key(|(_, &s)| s)
    {
        Some((i, &step)) => Err(EngineError::Diverged {
            step,
            instance: i as u32,
            value: "NaN or infinite".into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
