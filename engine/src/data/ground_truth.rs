//! Planted ground-truth features (as in Sharkey et al. 2022): `n_features` random unit vectors
//! in `d` dimensions; a sample is the sum of the active ones, each scaled by a random magnitude.
//! Host of `shaders/data/ground_truth.wgsl`, which draws the same batches on the device; this
//! file's `next_batch` is its CPU reference.

use super::device::{record_draw, Draw};
use super::LocalFuture;
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, View};
use crate::models::sae::config::{Magnitude, SourceConfig};
use crate::rng::{fold_seed, rng_normal, rng_unit};

/// The ground-truth generator; deterministic in its seed and the sample counter.
#[derive(Debug, Clone)]
pub struct GroundTruthSource {
    d: usize,
    n_features: usize,
    probability: f32,
    magnitude: Magnitude,
    group_size: usize,
    group_coherence: f32,
    features: Vec<f32>,
    seed: u32,
    /// Samples drawn so far: the counter the RNG is keyed on.
    drawn: u64,
    /// `features` on the device, uploaded by the first [`Self::record_rows`].
    device_features: Option<wgpu::Buffer>,
}

const GROUND_TRUTH_WGSL: &str = concat!(
    include_str!("../../../shaders/rng.wgsl"),
    include_str!("../../../shaders/data/ground_truth.wgsl")
);

const FEATURE_STREAM: u32 = 0x6d00_0001;
const DATA_STREAM: u32 = 0x6d00_0002;

impl GroundTruthSource {
    /// Plants the features for `cfg` (which must be [`SourceConfig::GroundTruth`]).
    pub fn new(cfg: &SourceConfig, seed: u64) -> Result<Self> {
        let SourceConfig::GroundTruth {
            d,
            n_features,
            probability,
            magnitude,
            group_size,
            group_coherence,
        } = *cfg
        else {
            return Err(EngineError::invalid(
                "source",
                cfg.name(),
                "not a ground-truth source",
            ));
        };
        let (d, n) = (d as usize, n_features as usize);
        let key = fold_seed(seed) ^ FEATURE_STREAM;
        let mut features = vec![0f32; n * d];
        for (f, row) in features.chunks_exact_mut(d).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v = rng_normal(key, f as u32, i as u32);
            }
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(Self {
            d,
            n_features: n,
            probability,
            magnitude,
            group_size: group_size as usize,
            group_coherence,
            features,
            seed: fold_seed(seed) ^ DATA_STREAM,
            drawn: 0,
            device_features: None,
        })
    }

    /// The coefficients of sample number `sample`: `(feature, magnitude)` for each active one.
    pub fn active(&self, sample: u64) -> Vec<(usize, f32)> {
        let (hi, lo) = ((sample >> 32) as u32, sample as u32);
        let mut out = Vec::new();
        let groups = self.n_features.div_ceil(self.group_size);
        for g in 0..groups {
            let fires = rng_unit(self.seed, lo, hi, g as u32 * 4) < self.probability;
            if !fires {
                continue;
            }
            let start = g * self.group_size;
            for f in start..(start + self.group_size).min(self.n_features) {
                let key = (self.n_features + f) as u32 * 4;
                if self.group_size > 1 && rng_unit(self.seed, lo, hi, key) >= self.group_coherence {
                    continue;
                }
                let u = rng_unit(self.seed, lo, hi, key + 1);
                let m = match self.magnitude {
                    Magnitude::Uniform { low, high } => low + (high - low) * u,
                    Magnitude::FoldedNormal { mean, std } => {
                        (mean + std * rng_normal(self.seed ^ 0x77, lo ^ key, hi)).abs()
                    }
                    Magnitude::Constant { value } => value,
                };
                out.push((f, m));
            }
        }
        out
    }

    /// Number of planted features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Records the next `rows` samples into `out` on the device (see
    /// `shaders/data/ground_truth.wgsl`).
    async fn record_rows(
        &mut self,
        rec: &mut Recording<'_>,
        out: View<'_>,
        rows: usize,
    ) -> Result<()> {
        let (magnitude, a, b) = match self.magnitude {
            Magnitude::Uniform { low, high } => (0, low, high),
            Magnitude::FoldedNormal { mean, std } => (1, mean, std),
            Magnitude::Constant { value } => (2, value, 0.0),
        };
        let rest = [
            self.group_size as u32,
            magnitude,
            self.probability.to_bits(),
            self.group_coherence.to_bits(),
            a.to_bits(),
            b.to_bits(),
        ];
        let draw = Draw {
            entry: "ground_truth",
            wgsl: GROUND_TRUTH_WGSL,
            table: &self.features,
            width: self.d,
            n_features: self.n_features,
            seed: self.seed,
            drawn: self.drawn,
            rest: &rest,
            workgroup_per_row: true,
        };
        record_draw(rec, out, rows, &draw, &mut self.device_features).await?;
        self.drawn += rows as u64;
        Ok(())
    }
}

impl super::ActivationSource for GroundTruthSource {
    fn d_in(&self) -> usize {
        self.d
    }

    fn next_batch(&mut self, out: &mut [f32]) {
        out.fill(0.0);
        for row in out.chunks_exact_mut(self.d) {
            for (f, m) in self.active(self.drawn) {
                let feat = &self.features[f * self.d..(f + 1) * self.d];
                for (o, v) in row.iter_mut().zip(feat) {
                    *o += m * v;
                }
            }
            self.drawn += 1;
        }
    }

    fn record_batch<'a, 'r: 'a>(
        &'a mut self,
        rec: &'a mut Recording<'r>,
        out: View<'a>,
        rows: usize,
    ) -> LocalFuture<'a, Result<bool>> {
        Box::pin(async move { self.record_rows(rec, out, rows).await.map(|()| true) })
    }

    fn true_features(&self) -> Option<&[f32]> {
        Some(&self.features)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "ground_truth",
            "d": self.d,
            "n_features": self.n_features,
            "probability": self.probability,
            "magnitude": self.magnitude,
            "group_size": self.group_size,
            "group_coherence": self.group_coherence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::device::testing::assert_device_matches_host;
    use crate::data::ActivationSource;

    fn cfg(p: f32, group_size: u32) -> SourceConfig {
        SourceConfig::GroundTruth {
            d: 16,
            n_features: 64,
            probability: p,
            magnitude: Magnitude::Uniform {
                low: 0.5,
                high: 1.5,
            },
            group_size,
            group_coherence: 1.0,
        }
    }

    #[test]
    fn features_are_unit_and_firing_rate_matches() {
        let s = GroundTruthSource::new(&cfg(0.05, 1), 3).unwrap();
        for row in s.true_features().unwrap().chunks_exact(16) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        let samples = 4000;
        let active: usize = (0..samples).map(|i| s.active(i).len()).sum();
        let rate = active as f64 / (samples as f64 * 64.0);
        assert!((rate - 0.05).abs() < 0.005, "firing rate {rate}");
        for (_, m) in s.active(17) {
            assert!((0.5..=1.5).contains(&m));
        }
    }

    #[test]
    fn batches_are_sums_of_active_features_and_reproducible() {
        let mut a = GroundTruthSource::new(&cfg(0.1, 1), 9).unwrap();
        let mut b = GroundTruthSource::new(&cfg(0.1, 1), 9).unwrap();
        let (mut x, mut y) = (vec![0.0; 16 * 5], vec![0.0; 16 * 5]);
        a.next_batch(&mut x);
        b.next_batch(&mut y);
        assert_eq!(x, y);
        let feats = a.true_features().unwrap().to_vec();
        let mut want = [0.0f32; 16];
        for (f, m) in a.active(2) {
            for i in 0..16 {
                want[i] += m * feats[f * 16 + i];
            }
        }
        assert_eq!(&x[32..48], &want[..]);
        a.next_batch(&mut x);
        assert_ne!(x, y, "the stream moves on");
    }

    /// The device's batches against `next_batch` on a twin source: two batches in a row, then
    /// one more of each on the host (the streams moved on alike), starting 3 samples short of 2^32 (the counter's carry), with more
    /// features than one workgroup's chunk, d not a multiple of anything, groups, and every
    /// magnitude. Uniform and constant magnitudes add the same products in the same order, so
    /// they agree to an ulp (a device may fuse the multiply-add): 1e-6 relative. Folded normals
    /// draw through WGSL's `log` and `cos`, whose precision is the device's (WGSL bounds `cos`
    /// only to 2^-11 absolute; SwiftShader's was 2.3e-4 relative, lavapipe's 1e-6): 5e-3.
    async fn device_batches_match_the_host(gpu: &crate::gpu::Gpu) {
        let magnitudes = [
            (
                Magnitude::Uniform {
                    low: 0.5,
                    high: 1.5,
                },
                1e-6,
            ),
            (Magnitude::Constant { value: 2.0 }, 1e-6),
            (
                Magnitude::FoldedNormal {
                    mean: 0.2,
                    std: 1.0,
                },
                5e-3,
            ),
        ];
        for (d, n, group_size, rows) in [(7, 300, 1, 37), (16, 64, 4, 5), (1, 513, 3, 260)] {
            for (magnitude, tol) in magnitudes {
                let cfg = SourceConfig::GroundTruth {
                    d,
                    n_features: n,
                    probability: 0.08,
                    magnitude,
                    group_size,
                    group_coherence: 0.7,
                };
                let mut host = GroundTruthSource::new(&cfg, 4).unwrap();
                host.drawn = u32::MAX as u64 - 3;
                let mut dev = host.clone();
                let label = format!("d {d}, {n} features, groups of {group_size}, {magnitude:?}");
                assert_device_matches_host(gpu, &mut dev, &mut host, rows, tol, &label).await;
            }
        }
    }
    crate::gpu_test!(
        gpu_ground_truth_batches_match_the_host,
        device_batches_match_the_host
    );

    #[test]
    fn groups_fire_together() {
        let s = GroundTruthSource::new(&cfg(0.05, 4), 1).unwrap();
        for i in 0..500 {
            let act: Vec<usize> = s.active(i).iter().map(|a| a.0).collect();
            for f in &act {
                let g = f / 4;
                assert!((g * 4..g * 4 + 4).all(|m| act.contains(&m)));
            }
        }
    }
}
