//! An SAE's parameters on the host, in the latent-major layout the kernels use, and their
//! initialisation as the anchors do it.
//!
//! Layout: `w_enc` and `w_dec` are both `[d_sae, d_in]` row-major, so row `j` holds latent `j`'s
//! encoder and decoder directions side by side; the sparse kernels then touch whole rows only.
//! SAELens's `W_enc` is `[d_in, d_sae]`: [`crate::io::saelens`] transposes on the way out and in.

use super::config::{Architecture, SaeConfig};
use crate::rng::{fold_seed, rng_normal};
use serde::{Deserialize, Serialize};

/// Parameters of one SAE. Tensors an architecture does not have are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeParams {
    /// Input dimension.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Encoder `[d_sae, d_in]` (the shared `W_gate` for Gated).
    pub w_enc: Vec<f32>,
    /// Encoder bias `[d_sae]` (`b_gate` for Gated).
    pub b_enc: Vec<f32>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: Vec<f32>,
    /// Decoder bias `[d_in]`, also subtracted from the input before encoding.
    pub b_dec: Vec<f32>,
    /// Gated: log-scale of the magnitude path `[d_sae]`.
    pub r_mag: Vec<f32>,
    /// Gated: bias of the magnitude path `[d_sae]`.
    pub b_mag: Vec<f32>,
    /// JumpReLU: log thresholds `[d_sae]`.
    pub log_threshold: Vec<f32>,
    /// BatchTopK: the inference threshold, a running estimate (0 before any step).
    pub batch_threshold: f32,
    /// Inputs were multiplied by this before training (1 when not normalised).
    pub input_scale: f32,
}

/// The tensors Adam updates, by name, in a fixed order (the GPU trainer uses the same order).
pub const TRAINED_TENSORS: [&str; 7] = [
    "w_enc",
    "b_enc",
    "w_dec",
    "b_dec",
    "r_mag",
    "b_mag",
    "log_threshold",
];

/// Where JumpReLU's log θ sits in [`TRAINED_TENSORS`] (it has its own learning-rate scale).
pub const LOG_THRESHOLD: usize = 6;
const _: () = assert!(matches!(
    TRAINED_TENSORS[LOG_THRESHOLD].as_bytes(),
    b"log_threshold"
));

impl SaeParams {
    /// Zeros of the right shapes for `architecture`.
    pub fn zeros(d_in: usize, d_sae: usize, architecture: &Architecture) -> Self {
        let gated = matches!(architecture, Architecture::Gated { .. });
        let jump = matches!(architecture, Architecture::JumpRelu { .. });
        SaeParams {
            d_in,
            d_sae,
            w_enc: vec![0.0; d_sae * d_in],
            b_enc: vec![0.0; d_sae],
            w_dec: vec![0.0; d_sae * d_in],
            b_dec: vec![0.0; d_in],
            r_mag: if gated { vec![0.0; d_sae] } else { vec![] },
            b_mag: if gated { vec![0.0; d_sae] } else { vec![] },
            log_threshold: if jump { vec![0.0; d_sae] } else { vec![] },
            batch_threshold: 0.0,
            input_scale: 1.0,
        }
    }

    /// The first value that is not finite: its tensor's name, its index and the value
    /// (`batch_threshold` at index 0 included).
    pub fn first_non_finite(&self) -> Option<(&'static str, usize, f32)> {
        for (name, t) in TRAINED_TENSORS.iter().zip(self.tensors()) {
            if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                return Some((name, i, t[i]));
            }
        }
        let t = self.batch_threshold;
        (!t.is_finite()).then_some(("batch_threshold", 0, t))
    }

    /// Parameters for gradient checks (the finite-difference tests and `cargo xtask oracle`):
    /// every tensor N(0, 0.35²) from `seed`, then positive encoder biases so most latents of
    /// the dense architectures fire and their gradients are exercised, and thresholds around
    /// 0.2 so latents sit on both sides of them.
    pub fn random_for_checks(
        architecture: &Architecture,
        d_in: usize,
        d_sae: usize,
        seed: u32,
    ) -> Self {
        let mut p = Self::zeros(d_in, d_sae, architecture);
        for (t, tensor) in p.tensors_mut().into_iter().enumerate() {
            for (i, v) in tensor.iter_mut().enumerate() {
                *v = 0.35 * rng_normal(seed, t as u32, i as u32);
            }
        }
        p.b_enc.iter_mut().for_each(|b| *b = b.abs() * 0.5);
        p.log_threshold
            .iter_mut()
            .for_each(|t| *t = 0.2f32.ln() + 0.3 * *t);
        p
    }

    /// The initialisation of the anchors: random decoder directions with the architecture's
    /// norm, `W_enc = W_decᵀ`, zero biases, `b_dec` as given (median or mean of a sample).
    pub fn init(cfg: &SaeConfig, b_dec: Vec<f32>, input_scale: f32) -> Self {
        let (d_in, d_sae) = (cfg.d_in() as usize, cfg.d_sae as usize);
        let mut p = Self::zeros(d_in, d_sae, &cfg.architecture);
        let norm = decoder_init_norm(&cfg.architecture);
        let seed = fold_seed(cfg.seed) ^ 0x5ae1_0001;
        for j in 0..d_sae {
            let row = &mut p.w_dec[j * d_in..(j + 1) * d_in];
            for (i, w) in row.iter_mut().enumerate() {
                *w = rng_normal(seed, j as u32, i as u32);
            }
            let n = row.iter().map(|w| w * w).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|w| *w *= norm / n);
        }
        p.w_enc.copy_from_slice(&p.w_dec);
        p.b_dec = b_dec;
        p.input_scale = input_scale;
        if let Architecture::JumpRelu {
            initial_threshold, ..
        } = cfg.architecture
        {
            p.log_threshold.fill(initial_threshold.ln());
        }
        p
    }

    /// The trained tensors in [`TRAINED_TENSORS`] order (empty ones included).
    pub fn tensors(&self) -> [&Vec<f32>; 7] {
        [
            &self.w_enc,
            &self.b_enc,
            &self.w_dec,
            &self.b_dec,
            &self.r_mag,
            &self.b_mag,
            &self.log_threshold,
        ]
    }

    /// Mutable views of the trained tensors in [`TRAINED_TENSORS`] order.
    pub fn tensors_mut(&mut self) -> [&mut Vec<f32>; 7] {
        [
            &mut self.w_enc,
            &mut self.b_enc,
            &mut self.w_dec,
            &mut self.b_dec,
            &mut self.r_mag,
            &mut self.b_mag,
            &mut self.log_threshold,
        ]
    }

    /// Norm of decoder row `j`.
    pub fn decoder_norm(&self, j: usize) -> f32 {
        let row = &self.w_dec[j * self.d_in..(j + 1) * self.d_in];
        row.iter().map(|w| w * w).sum::<f32>().sqrt()
    }

    /// Parameters for raw (unscaled) inputs: the input scale `s` folded into the weights, so
    /// that `encode(x)` equals the trained SAE's `encode(s x)` and `decode` returns `x̂ / s`.
    pub fn folded(&self) -> Self {
        let s = self.input_scale;
        let mut p = self.clone();
        p.w_enc.iter_mut().for_each(|w| *w *= s);
        p.w_dec.iter_mut().for_each(|w| *w /= s);
        p.b_dec.iter_mut().for_each(|w| *w /= s);
        p.input_scale = 1.0;
        p
    }
}

/// Decoder row norms at initialisation: unit for the TopK family and Gated (their anchors), 0.1
/// for the penalised ReLU and JumpReLU SAEs (small decoder norms keep the initial L1 and L0
/// terms from swamping reconstruction).
pub fn decoder_init_norm(architecture: &Architecture) -> f32 {
    match architecture {
        Architecture::TopK { .. } | Architecture::BatchTopK { .. } | Architecture::Gated { .. } => {
            1.0
        }
        Architecture::ReluL1 { .. } | Architecture::JumpRelu { .. } => 0.1,
    }
}

/// The geometric median of `n` points of dimension `d` (Weiszfeld's iterations from the mean),
/// which SAELens and Gao et al. use for `b_dec`: robust to the heavy tails of activations.
pub fn geometric_median(points: &[f32], d: usize, iterations: usize) -> Vec<f32> {
    let n = points.len() / d.max(1);
    let mut m = mean(points, d);
    for _ in 0..iterations {
        let mut num = vec![0f64; d];
        let mut den = 0f64;
        for p in points.chunks_exact(d).take(n) {
            let dist = p
                .iter()
                .zip(&m)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-8);
            den += 1.0 / dist;
            for (acc, a) in num.iter_mut().zip(p) {
                *acc += *a as f64 / dist;
            }
        }
        m = num.iter().map(|v| (v / den) as f32).collect();
    }
    m
}

/// The mean of `n` points of dimension `d`.
pub fn mean(points: &[f32], d: usize) -> Vec<f32> {
    let n = (points.len() / d.max(1)).max(1);
    let mut m = vec![0f64; d];
    for p in points.chunks_exact(d) {
        for (acc, a) in m.iter_mut().zip(p) {
            *acc += *a as f64;
        }
    }
    m.iter().map(|v| (v / n as f64) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::config::SaeConfig;

    #[test]
    fn init_ties_encoder_to_decoder_with_the_architecture_norm() {
        for name in crate::models::sae::config::ARCHITECTURE_NAMES {
            let cfg = SaeConfig {
                architecture: Architecture::by_name(name).unwrap(),
                d_sae: 40,
                ..SaeConfig::default()
            };
            let p = SaeParams::init(&cfg, vec![0.0; 64], 1.0);
            assert_eq!(p.w_enc, p.w_dec);
            let want = decoder_init_norm(&cfg.architecture);
            for j in 0..40 {
                assert!((p.decoder_norm(j) - want).abs() < 1e-5, "{name} row {j}");
            }
        }
    }

    #[test]
    fn geometric_median_resists_an_outlier() {
        // Four points around the origin and one far away: the mean moves, the median barely.
        let pts = [1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, -1.0, 100.0, 100.0];
        let m = geometric_median(&pts, 2, 50);
        let avg = mean(&pts, 2);
        assert!(avg[0] > 19.0);
        assert!(m[0].abs() < 0.6 && m[1].abs() < 0.6, "{m:?}");
    }

    #[test]
    fn folding_the_input_scale_keeps_the_function() {
        let cfg = SaeConfig {
            d_sae: 8,
            ..SaeConfig::default()
        };
        let mut p = SaeParams::init(&cfg, vec![0.3; 64], 2.5);
        p.b_enc
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as f32 * 0.01);
        let f = p.folded();
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let xs: Vec<f32> = x.iter().map(|v| v * 2.5).collect();
        for j in 0..8 {
            let pre = |q: &SaeParams, x: &[f32]| {
                (0..64)
                    .map(|i| q.w_enc[j * 64 + i] * (x[i] - q.b_dec[i]))
                    .sum::<f32>()
                    + q.b_enc[j]
            };
            assert!((pre(&p, &xs) - pre(&f, &x)).abs() < 1e-4);
        }
    }
}
