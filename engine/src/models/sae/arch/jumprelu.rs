//! JumpReLU SAE (Rajamanoharan et al. 2024b): `f = pre · H(pre − θ)` with per-latent
//! thresholds `θ = exp(log_threshold)`, loss `‖x − x̂‖² + λ Σⱼ H(preⱼ − θⱼ)` (an L0 penalty).
//! The jump and the Heaviside have no useful derivative in θ, so θ learns through the paper's
//! straight-through estimators with the rectangle kernel `K(u) = 1[|u| < ½]` of bandwidth ε:
//! `∂f/∂θ = −(θ/ε) K((pre − θ)/ε)` and `∂H/∂θ = −(1/ε) K((pre − θ)/ε)`.

use super::{
    centre, decode, decoder_backward, encoder_backward, pre_activations, reconstruction, Ctx, Loss,
    Pass,
};
use crate::models::sae::params::SaeParams;

/// `f = pre · H(pre − θ)`.
pub(super) fn activate(p: &SaeParams, pre: &[f32]) -> Vec<f32> {
    let n = p.d_sae;
    pre.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v > p.log_threshold[i % n].exp() {
                v
            } else {
                0.0
            }
        })
        .collect()
}

fn rectangle(u: f32) -> f32 {
    if u.abs() < 0.5 {
        1.0
    } else {
        0.0
    }
}

pub(super) fn train(
    p: &SaeParams,
    ctx: &Ctx,
    bandwidth: f32,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    let (batch, n) = (ctx.batch, p.d_sae);
    let xc = centre(p, ctx.x, batch);
    let pre = pre_activations(p, &xc, batch);
    let f = activate(p, &pre);
    let x_hat = decode(p, &f, batch);
    let (recon, g) = reconstruction(ctx.x, &x_hat, batch);
    let active = f.iter().filter(|&&v| v != 0.0).count();
    let sparsity = ctx.coefficient * active as f32 / batch as f32;
    if let Some(grads) = grads {
        // gf is needed near the threshold too (for θ's estimator), not only where f ≠ 0.
        let mut gf = decoder_backward(p, &f, &g, batch, false, grads);
        let l0_scale = ctx.coefficient / batch as f32;
        for (i, gv) in gf.iter_mut().enumerate() {
            let j = i % n;
            let theta = p.log_threshold[j].exp();
            let k = rectangle((pre[i] - theta) / bandwidth) / bandwidth;
            if k != 0.0 {
                let d_theta = -theta * k * *gv - k * l0_scale;
                // The chain rule through θ = exp(log θ).
                grads.log_threshold[j] += theta * d_theta;
            }
            if f[i] == 0.0 {
                *gv = 0.0;
            }
        }
        encoder_backward(p, &xc, &gf, &gf, batch, grads);
    }
    (
        Loss {
            reconstruction: recon,
            sparsity,
            auxiliary: 0.0,
        },
        Pass { f, x_hat },
    )
}
