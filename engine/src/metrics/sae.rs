//! The field's SAE metrics: reconstruction quality, sparsity, latent health (dead, dense, the
//! log10 firing-density histogram) and, for sources with planted features, how many of them the
//! decoder recovered.

use crate::metrics::CeLossRecovered;
use serde::{Deserialize, Serialize};

/// A latent firing more often than this counts as dense.
pub const DENSE_DENSITY: f64 = 0.1;
/// A true feature counts as recovered when some decoder row has at least this cosine with it.
pub const RECOVERED_COSINE: f32 = 0.9;
/// Edges of the log10 density histogram: bins of width 0.5 from 10⁻⁸ to 1.
pub const HISTOGRAM_LOW: f32 = -8.0;
/// Width of one histogram bin in log10 units.
pub const HISTOGRAM_BIN: f32 = 0.5;

/// Reconstruction and sparsity over an evaluation batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    /// Mean squared error per element.
    pub mse: f32,
    /// `Σ ‖x̂ − x‖² / Σ ‖x‖²` over the batch.
    pub normalized_mse: f32,
    /// `1 − Σ ‖x − x̂‖² / Σ ‖x − x̄‖²`.
    pub explained_variance: f32,
    /// Mean number of active latents per input.
    pub l0: f32,
    /// Mean `Σⱼ |fⱼ|` per input.
    pub l1: f32,
}

/// Computes [`Reconstruction`] for `batch` rows of `x`, `x̂` (`d_in` wide) and `f` (`d_sae`).
pub fn reconstruction(x: &[f32], x_hat: &[f32], f: &[f32], batch: usize) -> Reconstruction {
    let d = x.len() / batch.max(1);
    let mut err = 0f64;
    let mut energy = 0f64;
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / batch as f64;
        }
    }
    let mut var = 0f64;
    for (i, (a, b)) in x.iter().zip(x_hat).enumerate() {
        err += ((a - b) as f64).powi(2);
        energy += (*a as f64).powi(2);
        var += (*a as f64 - mean[i % d]).powi(2);
    }
    let l0 = f.iter().filter(|&&v| v != 0.0).count() as f64 / batch as f64;
    let l1 = f.iter().map(|v| v.abs() as f64).sum::<f64>() / batch as f64;
    Reconstruction {
        mse: (err / x.len().max(1) as f64) as f32,
        normalized_mse: (err / energy.max(1e-30)) as f32,
        explained_variance: (1.0 - err / var.max(1e-30)) as f32,
        l0: l0 as f32,
        l1: l1 as f32,
    }
}

/// Counts of latents per log10 firing-density bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityHistogram {
    /// The lower edge of the first bin (log10 density).
    pub low: f32,
    /// The width of each bin (log10 units).
    pub bin: f32,
    /// Latents per bin; the last bin ends at log10 density 0.
    pub counts: Vec<u32>,
    /// Latents that never fired in the window (log10 density −∞, not in any bin).
    pub never_fired: u32,
}

/// Tracks how often each latent fires: over the whole run for dead-latent detection (tokens
/// since last firing), and over a recent window for densities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringTracker {
    /// Tokens since each latent last fired.
    pub tokens_since_fired: Vec<u64>,
    /// Firings of each latent in the current window.
    pub window_fires: Vec<u64>,
    /// Tokens in the current window.
    pub window_tokens: u64,
    /// Densities of the last completed window (empty before one completes).
    pub last_density: Vec<f64>,
    /// Window length in tokens.
    pub window: u64,
}

impl FiringTracker {
    /// A tracker for `d_sae` latents with a density window of `window` tokens.
    pub fn new(d_sae: usize, window: u64) -> Self {
        Self {
            tokens_since_fired: vec![0; d_sae],
            window_fires: vec![0; d_sae],
            window_tokens: 0,
            last_density: vec![],
            window: window.max(1),
        }
    }

    /// Records a batch of activations `[batch, d_sae]`.
    pub fn record(&mut self, f: &[f32], batch: usize) {
        let n = self.tokens_since_fired.len();
        let mut fired = vec![0u64; n];
        for row in f.chunks_exact(n).take(batch) {
            for (c, v) in fired.iter_mut().zip(row) {
                if *v != 0.0 {
                    *c += 1;
                }
            }
        }
        self.record_counts(&fired, batch as u64);
    }

    /// Records per-latent firing counts over `tokens` inputs (what the GPU trainer reads back).
    pub fn record_counts(&mut self, fired: &[u64], tokens: u64) {
        for ((since, w), &c) in self
            .tokens_since_fired
            .iter_mut()
            .zip(&mut self.window_fires)
            .zip(fired)
        {
            *since = if c > 0 { 0 } else { *since + tokens };
            *w += c;
        }
        self.window_tokens += tokens;
        if self.window_tokens >= self.window {
            self.last_density = self
                .window_fires
                .iter()
                .map(|&c| c as f64 / self.window_tokens as f64)
                .collect();
            self.window_fires.iter_mut().for_each(|c| *c = 0);
            self.window_tokens = 0;
        }
    }

    /// Which latents have not fired for more than `dead_tokens` tokens.
    pub fn dead_mask(&self, dead_tokens: u64) -> Vec<bool> {
        self.tokens_since_fired
            .iter()
            .map(|&t| t > dead_tokens)
            .collect()
    }

    /// Densities from the last full window, or the current partial one before that.
    pub fn density(&self) -> Vec<f64> {
        if !self.last_density.is_empty() {
            return self.last_density.clone();
        }
        let t = self.window_tokens.max(1) as f64;
        self.window_fires.iter().map(|&c| c as f64 / t).collect()
    }
}

/// The log10 histogram of `density`.
pub fn density_histogram(density: &[f64]) -> DensityHistogram {
    let bins = (-HISTOGRAM_LOW / HISTOGRAM_BIN) as usize;
    let mut counts = vec![0u32; bins];
    let mut never_fired = 0;
    for &d in density {
        if d <= 0.0 {
            never_fired += 1;
            continue;
        }
        let b = ((d.log10() as f32 - HISTOGRAM_LOW) / HISTOGRAM_BIN).floor();
        counts[(b.max(0.0) as usize).min(bins - 1)] += 1;
    }
    DensityHistogram {
        low: HISTOGRAM_LOW,
        bin: HISTOGRAM_BIN,
        counts,
        never_fired,
    }
}

/// How well the decoder's rows match planted features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthMatch {
    /// Mean over true features of the best cosine with any decoder row (MMCS).
    pub mmcs: f32,
    /// True features whose best cosine is at least [`RECOVERED_COSINE`].
    pub recovered: u32,
    /// Number of true features.
    pub n_true: u32,
    /// For each latent, the true feature its decoder row matches best, and the cosine.
    pub latent_best: Vec<(u32, f32)>,
}

/// Matches decoder rows `[d_sae, d]` against unit true features `[n_true, d]`.
pub fn match_ground_truth(w_dec: &[f32], true_features: &[f32], d: usize) -> GroundTruthMatch {
    let rows: Vec<Vec<f32>> = w_dec
        .chunks_exact(d)
        .map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(|v| v / n).collect()
        })
        .collect();
    let n_true = true_features.len() / d.max(1);
    let mut best_true = vec![f32::NEG_INFINITY; n_true];
    let mut latent_best = vec![(0u32, f32::NEG_INFINITY); rows.len()];
    for (t, feat) in true_features.chunks_exact(d).enumerate() {
        for (j, row) in rows.iter().enumerate() {
            let c: f32 = row.iter().zip(feat).map(|(a, b)| a * b).sum();
            best_true[t] = best_true[t].max(c);
            if c > latent_best[j].1 {
                latent_best[j] = (t as u32, c);
            }
        }
    }
    let mmcs = if n_true == 0 {
        0.0
    } else {
        best_true.iter().sum::<f32>() / n_true as f32
    };
    GroundTruthMatch {
        mmcs,
        recovered: best_true.iter().filter(|&&c| c >= RECOVERED_COSINE).count() as u32,
        n_true: n_true as u32,
        latent_best,
    }
}

/// Every metric of a trained (or training) SAE, as the page shows and `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeMetrics {
    /// Steps trained.
    pub step: u32,
    /// Reconstruction and sparsity on an evaluation batch.
    #[serde(flatten)]
    pub reconstruction: Reconstruction,
    /// Fraction of latents that have not fired for the dead window.
    pub fraction_dead: f32,
    /// Fraction of latents firing on more than [`DENSE_DENSITY`] of inputs.
    pub fraction_dense: f32,
    /// The log10 firing-density histogram.
    pub density_histogram: DensityHistogram,
    /// For sources with planted features.
    pub ground_truth: Option<GroundTruthSummary>,
    /// For language-model sources (none yet).
    pub ce_loss_recovered: Option<CeLossRecovered>,
}

/// [`GroundTruthMatch`] without the per-latent table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthSummary {
    /// Mean max cosine similarity.
    pub mmcs: f32,
    /// True features recovered above the cosine threshold.
    pub recovered: u32,
    /// Number of true features.
    pub n_true: u32,
    /// The cosine threshold for "recovered".
    pub threshold: f32,
}

impl From<&GroundTruthMatch> for GroundTruthSummary {
    fn from(m: &GroundTruthMatch) -> Self {
        Self {
            mmcs: m.mmcs,
            recovered: m.recovered,
            n_true: m.n_true,
            threshold: RECOVERED_COSINE,
        }
    }
}

/// One row of the latent table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatentRow {
    /// Latent index.
    pub latent: u32,
    /// Fraction of inputs it fires on.
    pub density: f32,
    /// Mean activation when it fires.
    pub mean_activation: f32,
    /// The best-matching true feature and its cosine (ground-truth sources).
    pub best_feature: Option<(u32, f32)>,
}

/// The latent table from evaluation activations `f` `[batch, d_sae]`.
pub fn latent_table(f: &[f32], batch: usize, matches: Option<&GroundTruthMatch>) -> Vec<LatentRow> {
    let n = f.len() / batch.max(1);
    let mut fires = vec![0u32; n];
    let mut sum = vec![0f64; n];
    for row in f.chunks_exact(n) {
        for j in 0..n {
            if row[j] != 0.0 {
                fires[j] += 1;
                sum[j] += row[j] as f64;
            }
        }
    }
    (0..n)
        .map(|j| LatentRow {
            latent: j as u32,
            density: fires[j] as f32 / batch.max(1) as f32,
            mean_activation: if fires[j] > 0 {
                (sum[j] / fires[j] as f64) as f32
            } else {
                0.0
            },
            best_feature: matches.map(|m| m.latent_best[j]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_reconstruction_scores_perfectly() {
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, 0.5];
        let f = [0.0, 1.0, 2.0, 0.0, 0.0, 0.0];
        let r = reconstruction(&x, &x, &f, 2);
        assert_eq!(r.mse, 0.0);
        assert_eq!(r.normalized_mse, 0.0);
        assert!((r.explained_variance - 1.0).abs() < 1e-6);
        assert_eq!(r.l0, 1.0);
        assert_eq!(r.l1, 1.5);
        // Predicting zeros: NMSE is exactly 1.
        let r = reconstruction(&x, &[0.0; 6], &f, 2);
        assert!((r.normalized_mse - 1.0).abs() < 1e-6);
    }

    #[test]
    fn tracker_flags_dead_latents_and_measures_density() {
        let mut t = FiringTracker::new(3, 4);
        // Latent 0 always fires, 1 fires once, 2 never.
        t.record(&[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], 2);
        t.record(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 2);
        assert_eq!(t.density(), vec![1.0, 0.25, 0.0]);
        assert_eq!(t.dead_mask(3), vec![false, false, true]);
        assert_eq!(t.dead_mask(1), vec![false, true, true]);
        let h = density_histogram(&t.density());
        assert_eq!(h.never_fired, 1);
        assert_eq!(h.counts.iter().sum::<u32>(), 2);
        assert_eq!(
            *h.counts.last().unwrap(),
            1,
            "density 1 lands in the top bin"
        );
    }

    #[test]
    fn ground_truth_match_counts_recovered_features() {
        // Two true features; the decoder has one exact (scaled) match and one at 45°.
        let truth = [1.0, 0.0, 0.0, 1.0];
        let dec = [3.0, 0.0, 1.0, 1.0, -1.0, 0.0];
        let m = match_ground_truth(&dec, &truth, 2);
        assert_eq!(m.recovered, 1);
        assert!((m.mmcs - (1.0 + 0.5f32.sqrt()) / 2.0).abs() < 1e-6);
        assert_eq!(m.latent_best[0], (0, 1.0));
        assert_eq!(
            m.latent_best[2].0, 1,
            "ties go to the first best; -x matches y at 0"
        );
    }
}
