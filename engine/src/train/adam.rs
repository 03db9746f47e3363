//! Adam and AdamW on the CPU: the one optimiser every lab uses, and the reference that the GPU
//! kernel ([`crate::kernels::adam`], `shaders/adam.wgsl`) and the toy model's fused kernel
//! (`shaders/adam_update.wgsl`) are tested against. Each element's update is written once here
//! and once in WGSL, in the same order of operations.

use serde::{Deserialize, Serialize};

/// Adam's hyper-parameters. `weight_decay` is AdamW's decoupled decay (Loshchilov & Hutter
/// 2019, as PyTorch's `AdamW`): each step first scales the parameter by `1 − lr · decay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// ε added to the second moment's root.
    pub eps: f32,
    /// Decoupled weight decay (0: plain Adam).
    pub weight_decay: f32,
}

impl AdamConfig {
    /// β₁ 0.9, β₂ 0.999, ε 1e-8, no weight decay: what both labs train with.
    pub const DEFAULT: AdamConfig = AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };

    /// The bias corrections `1 − β₁ᵗ` and `1 − β₂ᵗ` at 1-based step `t`.
    pub fn bias_corrections(&self, t: u32) -> (f32, f32) {
        (
            1.0 - self.beta1.powi(t as i32),
            1.0 - self.beta2.powi(t as i32),
        )
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One element's update: moments first, then the (decayed) parameter, given the step's bias
/// corrections `c1`, `c2`. Returns the new parameter.
#[inline]
pub fn update(
    cfg: &AdamConfig,
    p: f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    lr: f32,
    (c1, c2): (f32, f32),
) -> f32 {
    *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
    *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
    let p = if cfg.weight_decay != 0.0 {
        p * (1.0 - lr * cfg.weight_decay)
    } else {
        p
    };
    p - lr * (*m / c1) / ((*v / c2).sqrt() + cfg.eps)
}

/// One step over a tensor with gradient `g` and moments `m`, `v` at 1-based step `t`.
pub fn step(
    cfg: &AdamConfig,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    t: u32,
) {
    let c = cfg.bias_corrections(t);
    for i in 0..p.len() {
        p[i] = update(cfg, p[i], g[i], &mut m[i], &mut v[i], lr, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_moves_each_parameter_by_the_learning_rate() {
        // At t = 1 the corrected moments are g and g², so the step is lr · g / (|g| + ε).
        let cfg = AdamConfig::DEFAULT;
        let mut p = vec![1.0, -2.0, 0.5];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        step(&cfg, &mut p, &[0.3, -4.0, 1e-3], &mut m, &mut v, 0.01, 1);
        for (got, want) in p.iter().zip([0.99, -1.99, 0.49]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_gradient() {
        // With a zero gradient Adam does not move; AdamW still shrinks by 1 − lr · decay.
        let cfg = AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::DEFAULT
        };
        let mut p = vec![2.0, -3.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        step(&cfg, &mut p, &[0.0, 0.0], &mut m, &mut v, 0.5, 1);
        assert_eq!(p, vec![2.0 * 0.95, -3.0 * 0.95]);
        let mut q = vec![2.0];
        step(
            &AdamConfig::DEFAULT,
            &mut q,
            &[0.0],
            &mut [0.0],
            &mut [0.0],
            0.5,
            1,
        );
        assert_eq!(q, vec![2.0]);
    }
}
