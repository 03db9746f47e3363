//! What the paper measures on a trained toy model, computed from `W` (n_hidden × n_features).

use serde::{Deserialize, Serialize};

/// Per-instance measures of superposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuperpositionMetrics {
    /// `WᵀW`, n_features × n_features, row-major.
    pub wtw: Vec<f32>,
    /// `‖W_i‖` per feature.
    pub norms: Vec<f32>,
    /// `Σ_{j≠i} (Ŵ_i · W_j)²` per feature: how much other features share its direction.
    pub superposition: Vec<f32>,
    /// Feature dimensionality `D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²` (0 for an unrepresented feature).
    pub dimensionality: Vec<f32>,
    /// `n_hidden / ‖W‖_F²`: hidden dimensions per embedded feature.
    pub dims_per_feature: f32,
}

/// Norms below this count as "not represented" (avoids dividing by ~0 for dropped features).
const TINY: f32 = 1e-6;

/// Computes every measure from `W` given as `n_hidden` rows of `n_features`.
pub fn superposition_metrics(w: &[Vec<f32>]) -> SuperpositionMetrics {
    let h = w.len();
    let f = w.first().map_or(0, Vec::len);
    let col = |i: usize| (0..h).map(move |k| w[k][i]);
    let mut wtw = vec![0.0f32; f * f];
    for i in 0..f {
        for j in 0..f {
            wtw[i * f + j] = col(i).zip(col(j)).map(|(a, b)| a * b).sum();
        }
    }
    let norms: Vec<f32> = (0..f).map(|i| wtw[i * f + i].max(0.0).sqrt()).collect();
    let mut superposition = vec![0.0; f];
    let mut dimensionality = vec![0.0; f];
    for i in 0..f {
        if norms[i] < TINY {
            continue;
        }
        // (Ŵ_i · W_j)² = (W_i · W_j)² / ‖W_i‖²
        let proj = |j: usize| wtw[i * f + j] * wtw[i * f + j] / (norms[i] * norms[i]);
        superposition[i] = (0..f).filter(|&j| j != i).map(proj).sum();
        let all: f32 = (0..f).map(proj).sum();
        dimensionality[i] = norms[i] * norms[i] / all;
    }
    let frob: f32 = (0..f).map(|i| wtw[i * f + i]).sum();
    SuperpositionMetrics {
        wtw,
        norms,
        superposition,
        dimensionality,
        dims_per_feature: if frob > TINY {
            h as f32 / frob
        } else {
            f32::INFINITY
        },
    }
}

/// The three phases of the 2-features-in-1-dimension model (paper, "Phase change").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The extra (last) feature is dropped.
    NotRepresented,
    /// The extra feature takes the dimension for itself.
    Dedicated,
    /// Both features share the dimension (antipodal pair).
    Superposition,
}

impl Phase {
    /// Name shown in legends and exports.
    pub fn label(self) -> &'static str {
        match self {
            Phase::NotRepresented => "not represented",
            Phase::Dedicated => "dedicated dimension",
            Phase::Superposition => "superposition",
        }
    }
}

/// A feature counts as represented when its norm exceeds this.
pub const REPRESENTED: f32 = 0.5;

/// Classifies the last feature of a trained model by norms: represented alone, sharing, or not.
pub fn classify_phase(m: &SuperpositionMetrics) -> Phase {
    let n = m.norms.len();
    let extra = m.norms[n - 1] > REPRESENTED;
    let others = m.norms[..n - 1].iter().any(|&v| v > REPRESENTED);
    match (extra, others) {
        (false, _) => Phase::NotRepresented,
        (true, false) => Phase::Dedicated,
        (true, true) => Phase::Superposition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_features_have_dimensionality_one() {
        let w = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]];
        let m = superposition_metrics(&w);
        assert_eq!(m.norms, vec![1.0, 1.0, 0.0]);
        assert_eq!(m.dimensionality, vec![1.0, 1.0, 0.0]);
        assert_eq!(m.superposition, vec![0.0, 0.0, 0.0]);
        assert!((m.dims_per_feature - 1.0).abs() < 1e-6);
    }

    #[test]
    fn antipodal_pair_has_dimensionality_half() {
        let w = vec![vec![1.0, -1.0]];
        let m = superposition_metrics(&w);
        assert!((m.dimensionality[0] - 0.5).abs() < 1e-6);
        assert!((m.superposition[0] - 1.0).abs() < 1e-6);
        assert!((m.dims_per_feature - 0.5).abs() < 1e-6);
        assert_eq!(classify_phase(&m), Phase::Superposition);
        assert_eq!(
            classify_phase(&superposition_metrics(&[vec![0.0, 1.0]])),
            Phase::Dedicated
        );
        assert_eq!(
            classify_phase(&superposition_metrics(&[vec![1.0, 0.1]])),
            Phase::NotRepresented
        );
    }

    #[test]
    fn pentagon_features_have_dimensionality_two_fifths() {
        let w: Vec<Vec<f32>> = (0..2)
            .map(|k| {
                (0..5)
                    .map(|i| {
                        let a = i as f32 * std::f32::consts::TAU / 5.0;
                        if k == 0 {
                            a.cos()
                        } else {
                            a.sin()
                        }
                    })
                    .collect()
            })
            .collect();
        let m = superposition_metrics(&w);
        for d in &m.dimensionality {
            assert!((d - 0.4).abs() < 1e-5, "{:?}", m.dimensionality);
        }
    }
}
