//! Gated SAE (Rajamanoharan et al. 2024a). A gate path decides which latents fire and a
//! magnitude path how strongly, sharing `W_gate` (stored as `w_enc`, with `b_gate` as `b_enc`):
//! `π_gate = W_gate xc + b_gate`, `π_mag = exp(r_mag) ⊙ (W_gate xc) + b_mag`,
//! `f = 1[π_gate > 0] ⊙ ReLU(π_mag)`. Loss: reconstruction, `λ Σⱼ ReLU(π_gate)ⱼ ‖W_dec,ⱼ‖`, and the
//! reconstruction of `x` from `ReLU(π_gate)` through a frozen (stop-gradient) decoder, which is
//! what trains the gate, since the Heaviside passes it no gradient.

use super::{
    centre, decode, decoder_backward, dot, encoder_backward, norm_weighted_penalty,
    pre_activations, reconstruction, Ctx, Loss, Pass,
};
use crate::models::sae::params::SaeParams;

/// `f` from the gate pre-activations `pre = π_gate`.
pub(super) fn activate(p: &SaeParams, pre: &[f32]) -> Vec<f32> {
    let n = p.d_sae;
    pre.iter()
        .enumerate()
        .map(|(i, &g)| {
            let j = i % n;
            if g > 0.0 {
                let mag = p.r_mag[j].exp() * (g - p.b_enc[j]) + p.b_mag[j];
                mag.max(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

pub(super) fn train(
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    let (batch, d, n) = (ctx.batch, p.d_in, p.d_sae);
    let xc = centre(p, ctx.x, batch);
    let pre = pre_activations(p, &xc, batch);
    let f = activate(p, &pre);
    let gate: Vec<f32> = pre.iter().map(|v| v.max(0.0)).collect();
    let x_hat = decode(p, &f, batch);
    let (recon, g) = reconstruction(ctx.x, &x_hat, batch);
    let x_aux = decode(frozen, &gate, batch);
    let (aux, g_aux) = reconstruction(ctx.x, &x_aux, batch);
    let sparsity;
    if let Some(grads) = grads {
        sparsity = norm_weighted_penalty(p, &gate, batch, ctx.coefficient, Some(grads));
        let gf = decoder_backward(p, &f, &g, batch, true, grads);
        let mut gpre = vec![0f32; batch * n];
        let mut gbias = vec![0f32; batch * n];
        let scale = ctx.coefficient / batch as f32;
        for b in 0..batch {
            let ga_row = &g_aux[b * d..(b + 1) * d];
            for j in 0..n {
                let i = b * n + j;
                let u = pre[i] - p.b_enc[j];
                let e = p.r_mag[j].exp();
                if f[i] > 0.0 {
                    grads.b_mag[j] += gf[i];
                    grads.r_mag[j] += gf[i] * e * u;
                    gpre[i] += gf[i] * e;
                }
                if pre[i] > 0.0 {
                    let ga =
                        scale * p.decoder_norm(j) + dot(&frozen.w_dec[j * d..(j + 1) * d], ga_row);
                    gpre[i] += ga;
                    gbias[i] = ga;
                }
            }
        }
        encoder_backward(p, &xc, &gpre, &gbias, batch, grads);
    } else {
        sparsity = norm_weighted_penalty(p, &gate, batch, ctx.coefficient, None);
    }
    (
        Loss {
            reconstruction: recon,
            sparsity,
            auxiliary: aux,
        },
        Pass { f, x_hat },
    )
}
