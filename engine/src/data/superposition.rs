//! The hidden layer of a toy model of superposition: `h = W x` with `x` drawn as the toy model
//! was trained on. The model's feature directions (the normalised columns of `W` that it
//! represents) are the ground truth an SAE should find. Host of
//! `shaders/data/superposition.wgsl`, which draws the same batches on the device; this file's
//! `next_batch` is its CPU reference.

use super::device::{record_draw, Draw};
use super::LocalFuture;
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, View};
use crate::models::sae::config::SourceConfig;
use crate::models::toy::config::{Axis, SuperpositionConfig};
use crate::models::toy::cpu::CpuToyTrainer;
use crate::models::toy::sample_feature;
use crate::rng::fold_seed;

/// A column of `W` shorter than this is a feature the toy model dropped: it is left out of the
/// ground truth, since no SAE could recover it from `h`.
pub const REPRESENTED_NORM: f32 = 0.5;

const SUPERPOSITION_WGSL: &str = concat!(
    include_str!("../../../shaders/rng.wgsl"),
    include_str!("../../../shaders/data/superposition.wgsl")
);

/// Hidden activations of a frozen toy model.
#[derive(Debug, Clone)]
pub struct SuperpositionSource {
    n_features: usize,
    n_hidden: usize,
    feature_probability: f32,
    /// `W`, n_hidden rows of n_features.
    w: Vec<f32>,
    /// Unit columns of `W` for the represented features, `[n_represented, n_hidden]`.
    features: Vec<f32>,
    seed: u32,
    drawn: u64,
    describe: serde_json::Value,
    /// `w` on the device, uploaded by the first [`Self::record_rows`].
    device_w: Option<wgpu::Buffer>,
}

impl SuperpositionSource {
    /// Trains the toy model `cfg` describes on the CPU (it is small), then freezes it.
    pub fn new(cfg: &SourceConfig, seed: u64) -> Result<Self> {
        let SourceConfig::Superposition {
            n_features,
            n_hidden,
            feature_probability,
            importance_decay,
            toy_steps,
        } = *cfg
        else {
            return Err(EngineError::invalid(
                "source",
                cfg.name(),
                "not a superposition source",
            ));
        };
        let toy = SuperpositionConfig {
            n_features,
            n_hidden,
            relu: true,
            importance_decay,
            feature_probability: Axis::List(vec![feature_probability]),
            relative_importance: None,
            batch_size: 1024,
            steps: toy_steps,
            learning_rate: 1e-2,
            seed,
        };
        let mut trainer = CpuToyTrainer::new(&toy)?;
        let mut left = toy_steps;
        while left > 0 {
            let n = left.min(500);
            trainer.run_steps(n);
            left -= n;
        }
        trainer.check_diverged()?;
        let w = trainer.params()[..(n_hidden * n_features) as usize].to_vec();
        let mut s = Self::from_weights(w, n_hidden, n_features, feature_probability, seed)?;
        s.describe["importance_decay"] = importance_decay.into();
        s.describe["toy_steps"] = toy_steps.into();
        Ok(s)
    }

    /// Wraps an already trained `W` (n_hidden rows of n_features), e.g. one from the
    /// superposition page.
    pub fn from_weights(
        w: Vec<f32>,
        n_hidden: u32,
        n_features: u32,
        feature_probability: f32,
        seed: u64,
    ) -> Result<Self> {
        let (h, f) = (n_hidden as usize, n_features as usize);
        if w.len() != h * f {
            return Err(EngineError::invalid(
                "W",
                format!("{} numbers", w.len()),
                format!("expected n_hidden × n_features = {h} × {f}"),
            ));
        }
        let mut features = Vec::new();
        for i in 0..f {
            let col: Vec<f32> = (0..h).map(|k| w[k * f + i]).collect();
            let norm = col.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm >= REPRESENTED_NORM {
                features.extend(col.iter().map(|v| v / norm));
            }
        }
        Ok(Self {
            n_features: f,
            n_hidden: h,
            feature_probability,
            w,
            features,
            seed: fold_seed(seed) ^ 0x70f0_0003,
            drawn: 0,
            device_w: None,
            describe: serde_json::json!({
                "kind": "superposition",
                "n_features": n_features,
                "n_hidden": n_hidden,
                "feature_probability": feature_probability,
                "represented_norm": REPRESENTED_NORM,
            }),
        })
    }

    /// The frozen `W`, n_hidden rows of n_features.
    pub fn weights(&self) -> &[f32] {
        &self.w
    }

    /// Records the next `rows` samples into `out` on the device (see
    /// `shaders/data/superposition.wgsl`).
    async fn record_rows(
        &mut self,
        rec: &mut Recording<'_>,
        out: View<'_>,
        rows: usize,
    ) -> Result<()> {
        let draw = Draw {
            entry: "superposition",
            wgsl: SUPERPOSITION_WGSL,
            table: &self.w,
            width: self.n_hidden,
            n_features: self.n_features,
            seed: self.seed,
            drawn: self.drawn,
            rest: &[self.feature_probability.to_bits()],
            workgroup_per_row: false,
        };
        record_draw(rec, out, rows, &draw, &mut self.device_w).await?;
        self.drawn += rows as u64;
        Ok(())
    }
}

impl super::ActivationSource for SuperpositionSource {
    fn d_in(&self) -> usize {
        self.n_hidden
    }

    fn next_batch(&mut self, out: &mut [f32]) {
        let (h, f) = (self.n_hidden, self.n_features);
        let mut x = vec![0f32; f];
        for row in out.chunks_exact_mut(h) {
            // The sample counter splits into (step, sample) coordinates of the toy RNG.
            let (step, sample) = ((self.drawn >> 20) as u32, (self.drawn & 0xf_ffff) as u32);
            for (i, xi) in x.iter_mut().enumerate() {
                *xi = sample_feature(
                    self.seed,
                    0,
                    step,
                    sample,
                    f as u32,
                    i as u32,
                    self.feature_probability,
                );
            }
            for (k, o) in row.iter_mut().enumerate() {
                *o = (0..f).map(|i| self.w[k * f + i] * x[i]).sum();
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
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::device::testing::assert_device_matches_host;
    use crate::data::ActivationSource;

    #[test]
    fn hidden_activations_are_w_times_x_and_features_are_unit_columns() {
        // Two hidden dims, three features: two represented, one dropped.
        let w = vec![1.0, 0.0, 0.1, 0.0, 2.0, 0.0];
        let mut s = SuperpositionSource::from_weights(w, 2, 3, 0.5, 1).unwrap();
        assert_eq!(s.true_features().unwrap(), &[1.0, 0.0, 0.0, 1.0]);
        let mut h = vec![0.0; 2 * 100];
        s.next_batch(&mut h);
        for row in h.chunks_exact(2) {
            // h0 = x0 + 0.1 x2 in [0, 1.1); h1 = 2 x1 in [0, 2).
            assert!((0.0..1.1).contains(&row[0]) && (0.0..2.0).contains(&row[1]));
        }
        assert!(h.iter().any(|v| *v > 0.0));
        assert!(SuperpositionSource::from_weights(vec![0.0; 5], 2, 3, 0.5, 1).is_err());
    }

    /// The device's batches against `next_batch` on a twin source: two batches in a row (then
    /// one more of each on the host, alike), the first crossing a toy-RNG step (2^20 samples) and the second the counter's 2^32 carry, on
    /// a `W` of awkward shape. The same products are added in the same order, so they agree to
    /// an ulp (a device may fuse the multiply-add): 1e-6 relative.
    async fn device_batches_match_the_host(gpu: &crate::gpu::Gpu) {
        let (h, f, rows) = (3usize, 11usize, 37usize);
        let w = crate::kernels::test_data::values(5, h * f);
        let mut host = SuperpositionSource::from_weights(w, h as u32, f as u32, 0.3, 2).unwrap();
        for start in [(1u64 << 20) - 7, u32::MAX as u64 - 20] {
            host.drawn = start;
            let mut dev = host.clone();
            let label = format!("from sample {start}");
            assert_device_matches_host(gpu, &mut dev, &mut host, rows, 1e-6, &label).await;
        }
    }
    crate::gpu_test!(
        gpu_superposition_batches_match_the_host,
        device_batches_match_the_host
    );
}
