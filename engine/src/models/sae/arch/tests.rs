//! Every architecture's hand-written backward pass against central finite differences of its
//! loss (the independent oracle: it only evaluates the forward pass), on awkward shapes.
//!
//! Coordinates where a perturbation crosses a kink (ReLU, a top-k swap, a gate or threshold)
//! show up as one-sided differences that disagree; those are skipped and counted, and a test
//! fails if more than a few percent are skipped.

use super::*;
use crate::models::sae::config::Architecture;
use crate::models::sae::params::{SaeParams, TRAINED_TENSORS};
use crate::rng::rng_unit;

const D_IN: usize = 5;
const D_SAE: usize = 7;
const BATCH: usize = 6;
const H: f32 = 1e-3;
/// Finite differences in f32 with h = 1e-3 resolve gradients to about this.
const ATOL: f32 = 3e-3;
const RTOL: f32 = 2e-2;

fn random_params(arch: &Architecture, seed: u32) -> SaeParams {
    SaeParams::random_for_checks(arch, D_IN, D_SAE, seed)
}

fn inputs(seed: u32) -> Vec<f32> {
    (0..BATCH * D_IN)
        .map(|i| rng_unit(seed, 99, i as u32, 0) * 1.5 - 0.4)
        .collect()
}

fn ctx<'a>(x: &'a [f32], dead: &'a [bool]) -> Ctx<'a> {
    Ctx {
        x,
        batch: BATCH,
        coefficient: 0.3,
        dead,
        k_aux: 3,
    }
}

fn check(arch: &Architecture, skip: &[&str]) {
    let mut skipped = 0;
    let mut checked = 0;
    for seed in 1..=3u32 {
        let p = random_params(arch, seed);
        let x = inputs(seed);
        let dead: Vec<bool> = (0..D_SAE).map(|j| j % 3 == 1).collect();
        let c = ctx(&x, &dead);
        let mut g = SaeParams::zeros(D_IN, D_SAE, arch);
        train_loss(arch, &p, &p, &c, Some(&mut g));
        let loss_at = |q: &SaeParams| train_loss(arch, q, &p, &c, None).0.total();
        let l0 = loss_at(&p);
        for (t, name) in TRAINED_TENSORS.iter().enumerate() {
            if skip.contains(name) {
                continue;
            }
            let analytic = g.tensors()[t].clone();
            for i in 0..analytic.len() {
                let mut q = p.clone();
                q.tensors_mut()[t][i] += H;
                let lp = loss_at(&q);
                q.tensors_mut()[t][i] -= 2.0 * H;
                let lm = loss_at(&q);
                let (fwd, bwd) = ((lp - l0) / H, (l0 - lm) / H);
                if (fwd - bwd).abs() > ATOL + RTOL * fwd.abs().max(bwd.abs()) * 2.0 {
                    skipped += 1;
                    continue;
                }
                checked += 1;
                let fd = (lp - lm) / (2.0 * H);
                let a = analytic[i];
                assert!(
                    (a - fd).abs() <= ATOL + RTOL * fd.abs(),
                    "{}: d loss / d {name}[{i}] (seed {seed}) = {a}, finite differences say {fd}",
                    arch.name()
                );
            }
        }
    }
    assert!(checked > 0);
    let frac = skipped as f32 / (skipped + checked) as f32;
    assert!(
        frac < 0.05,
        "{}: {skipped} of {} coordinates crossed a kink",
        arch.name(),
        skipped + checked
    );
}

#[test]
fn relu_l1_gradient_matches_finite_differences() {
    check(&Architecture::by_name("relu_l1").unwrap(), &[]);
}

#[test]
fn topk_gradient_with_aux_k_matches_finite_differences() {
    let arch = Architecture::TopK {
        k: 3,
        k_aux: 3,
        aux_coefficient: 0.5,
        dead_tokens: 0,
    };
    check(&arch, &[]);
}

#[test]
fn batch_topk_gradient_with_aux_k_matches_finite_differences() {
    let arch = Architecture::BatchTopK {
        k: 2,
        k_aux: 3,
        aux_coefficient: 0.5,
        dead_tokens: 0,
    };
    check(&arch, &[]);
}

#[test]
fn gated_gradient_matches_finite_differences() {
    check(&Architecture::by_name("gated").unwrap(), &[]);
}

#[test]
fn jumprelu_gradient_matches_finite_differences_away_from_thresholds() {
    // θ's gradient is the straight-through estimate, not a derivative: checked below by hand.
    let arch = Architecture::JumpRelu {
        l0_coefficient: 0.3,
        bandwidth: 1e-4,
        initial_threshold: 0.2,
        l0_warmup_steps: 0,
        threshold_lr_scale: 1.0,
    };
    check(&arch, &["log_threshold"]);
}

#[test]
fn jumprelu_threshold_estimator_follows_the_paper() {
    // One latent, one input: pre = 0.55 sits inside the kernel around θ = 0.5 (ε = 0.2).
    let arch = Architecture::JumpRelu {
        l0_coefficient: 1.0,
        bandwidth: 0.2,
        initial_threshold: 0.5,
        l0_warmup_steps: 0,
        threshold_lr_scale: 1.0,
    };
    let mut p = SaeParams::zeros(1, 1, &arch);
    p.w_enc[0] = 1.0;
    p.log_threshold[0] = 0.5f32.ln();
    let x = [0.55];
    let c = Ctx {
        x: &x,
        batch: 1,
        coefficient: 1.0,
        dead: &[],
        k_aux: 0,
    };
    // A perfect decoder: only the L0 term pulls on θ: ∂/∂θ = −(1/ε)·K = −5, times θ.
    p.w_dec[0] = 1.0;
    let mut g = SaeParams::zeros(1, 1, &arch);
    train_loss(&arch, &p, &p, &c, Some(&mut g));
    assert!(
        (g.log_threshold[0] - (-2.5)).abs() < 1e-5,
        "{}",
        g.log_threshold[0]
    );
    // Decoder weight 2: x̂ = 1.1, dL/dx̂ = 1.1, dL/df = 2.2, so the jump adds −(θ/ε)·2.2 = −5.5.
    p.w_dec[0] = 2.0;
    let mut g = SaeParams::zeros(1, 1, &arch);
    train_loss(&arch, &p, &p, &c, Some(&mut g));
    assert!(
        (g.log_threshold[0] - 0.5 * (-10.5)).abs() < 1e-4,
        "{}",
        g.log_threshold[0]
    );
}
