//! The CPU reference trainer: the model, its hand-written backward pass and Adam, written for
//! clarity. The GPU trainers are tested against it, and the app falls back to it without WebGPU.

use super::{diverged_error, init_params, instance_table, sample_feature, ADAM, NOT_DIVERGED};
use crate::error::Result;
use crate::models::toy::config::SuperpositionConfig;
use crate::rng::fold_seed;
use crate::train::adam;

/// Trains every instance of a config on the CPU.
pub struct CpuToyTrainer {
    cfg: SuperpositionConfig,
    table: Vec<f32>,
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u32,
    diverged: Vec<u32>,
}

/// Gradient and loss of one instance on one batch (used by tests as the reference backward).
pub struct Grad {
    /// d loss / d params, in the flat layout.
    pub grad: Vec<f32>,
    /// The batch loss: Σ_f I_f (x_f − x'_f)², averaged over the batch.
    pub loss: f32,
}

impl CpuToyTrainer {
    /// Validates the config and initialises every instance.
    pub fn new(cfg: &SuperpositionConfig) -> Result<Self> {
        cfg.validate()?;
        let n = cfg.n_instances();
        let p = cfg.params_per_instance();
        Ok(Self {
            table: instance_table(&cfg.instances()),
            params: init_params(cfg),
            m: vec![0.0; n * p],
            v: vec![0.0; n * p],
            step: 0,
            diverged: vec![NOT_DIVERGED; n],
            cfg: cfg.clone(),
        })
    }

    /// The config it trains.
    pub fn config(&self) -> &SuperpositionConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// All parameters, instance-major.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Loss and gradient of instance `i` at `step` with parameters `params` (one instance block).
    pub fn grad(
        cfg: &SuperpositionConfig,
        table_row: &[f32],
        params: &[f32],
        i: u32,
        step: u32,
    ) -> Grad {
        let (nf, nh) = (cfg.n_features as usize, cfg.n_hidden as usize);
        let seed = fold_seed(cfg.seed);
        let prob = table_row[0];
        let imp = &table_row[1..];
        let (w, b) = params.split_at(nh * nf);
        let mut grad = vec![0.0f32; params.len()];
        let (gw, gb) = grad.split_at_mut(nh * nf);
        let bsz = cfg.batch_size;
        let mut loss = 0.0f64;
        let mut x = vec![0.0f32; nf];
        let mut h = vec![0.0f32; nh];
        let mut g = vec![0.0f32; nf];
        let mut gh = vec![0.0f32; nh];
        for s in 0..bsz {
            for f in 0..nf {
                x[f] = sample_feature(seed, i, step, s, nf as u32, f as u32, prob);
            }
            for k in 0..nh {
                h[k] = (0..nf).map(|f| w[k * nf + f] * x[f]).sum();
            }
            gh.iter_mut().for_each(|v| *v = 0.0);
            for f in 0..nf {
                let pre: f32 = b[f] + (0..nh).map(|k| w[k * nf + f] * h[k]).sum::<f32>();
                let (out, active) = if cfg.relu {
                    (pre.max(0.0), pre > 0.0)
                } else {
                    (pre, true)
                };
                let r = out - x[f];
                loss += (imp[f] * r * r) as f64;
                g[f] = if active {
                    2.0 * imp[f] * r / bsz as f32
                } else {
                    0.0
                };
                for k in 0..nh {
                    gh[k] += w[k * nf + f] * g[f];
                }
            }
            for f in 0..nf {
                gb[f] += g[f];
                for k in 0..nh {
                    // W appears twice: in h = W x and in x' = Wᵀ h.
                    gw[k * nf + f] += g[f] * h[k] + gh[k] * x[f];
                }
            }
        }
        Grad {
            grad,
            loss: (loss / bsz as f64) as f32,
        }
    }

    /// Runs `n` steps on every live instance and returns each instance's mean loss over them.
    /// A non-finite loss stops that instance before its update and is reported as
    /// [`crate::EngineError::Diverged`] by [`CpuToyTrainer::check_diverged`].
    pub fn run_steps(&mut self, n: u32) -> Vec<f32> {
        let p = self.cfg.params_per_instance();
        let row = 1 + self.cfg.n_features as usize;
        let n_inst = self.cfg.n_instances();
        let mut means = vec![0.0f32; n_inst];
        for i in 0..n_inst {
            let mut done = 0;
            let mut total = 0.0;
            for s in 0..n {
                if self.diverged[i] != NOT_DIVERGED {
                    break;
                }
                let step = self.step + s;
                let Grad { grad, loss } = Self::grad(
                    &self.cfg,
                    &self.table[i * row..(i + 1) * row],
                    &self.params[i * p..(i + 1) * p],
                    i as u32,
                    step,
                );
                if !loss.is_finite() {
                    self.diverged[i] = step;
                    break;
                }
                total += loss;
                done += 1;
                let at = i * p..(i + 1) * p;
                adam::step(
                    &ADAM,
                    &mut self.params[at.clone()],
                    &grad,
                    &mut self.m[at.clone()],
                    &mut self.v[at],
                    self.cfg.learning_rate,
                    step + 1,
                );
            }
            means[i] = if done > 0 {
                total / done as f32
            } else {
                f32::NAN
            };
        }
        self.step += n;
        means
    }

    /// The first divergence, if any instance's loss became non-finite.
    pub fn check_diverged(&self) -> Result<()> {
        diverged_error(&self.diverged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use crate::models::toy::config::{Axis, Preset};

    fn tiny() -> SuperpositionConfig {
        SuperpositionConfig {
            n_features: 5,
            n_hidden: 2,
            batch_size: 7,
            feature_probability: Axis::List(vec![0.7]),
            ..Preset::Intro.config()
        }
    }

    /// The hand-written backward against central finite differences in f64-ish precision.
    #[test]
    fn backward_matches_finite_differences() {
        for relu in [true, false] {
            let cfg = SuperpositionConfig { relu, ..tiny() };
            let t = CpuToyTrainer::new(&cfg).unwrap();
            let row = &t.table[..6];
            let params: Vec<f32> = t
                .params
                .iter()
                .enumerate()
                .map(|(j, v)| v + 0.05 * j as f32 % 0.3)
                .collect();
            let Grad { grad, .. } = CpuToyTrainer::grad(&cfg, row, &params, 0, 3);
            for j in 0..params.len() {
                let eps = 1e-3;
                let mut hi = params.clone();
                hi[j] += eps;
                let mut lo = params.clone();
                lo[j] -= eps;
                let num = (CpuToyTrainer::grad(&cfg, row, &hi, 0, 3).loss
                    - CpuToyTrainer::grad(&cfg, row, &lo, 0, 3).loss)
                    / (2.0 * eps);
                assert!(
                    (num - grad[j]).abs() < 2e-3 + 2e-2 * num.abs(),
                    "relu={relu} param {j}: analytic {} vs numeric {num}",
                    grad[j]
                );
            }
        }
    }

    #[test]
    fn training_lowers_the_loss() {
        let cfg = SuperpositionConfig {
            batch_size: 64,
            ..tiny()
        };
        let mut t = CpuToyTrainer::new(&cfg).unwrap();
        let first = t.run_steps(20)[0];
        t.run_steps(400);
        let last = t.run_steps(20)[0];
        assert!(last < first * 0.8, "loss {first} -> {last}");
        t.check_diverged().unwrap();
    }

    #[test]
    fn huge_learning_rate_reports_divergence_step() {
        let cfg = SuperpositionConfig {
            learning_rate: 1e30,
            batch_size: 16,
            ..tiny()
        };
        let mut t = CpuToyTrainer::new(&cfg).unwrap();
        t.run_steps(50);
        let err = t.check_diverged().unwrap_err();
        assert!(matches!(err, EngineError::Diverged { .. }), "{err}");
        assert!(err.to_string().contains("diverged at step"));
    }
}
