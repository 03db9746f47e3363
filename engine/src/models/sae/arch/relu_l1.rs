//! ReLU + L1 (Anthropic's April 2024 update): `f = ReLU(pre)`, loss
//! `‖x − x̂‖² + λ Σⱼ fⱼ ‖W_dec,ⱼ‖`.

use super::{
    centre, decode, decoder_backward, encoder_backward, norm_weighted_penalty, pre_activations,
    reconstruction, Ctx, Loss, Pass,
};
use crate::models::sae::params::SaeParams;

pub(super) fn train(p: &SaeParams, ctx: &Ctx, grads: Option<&mut SaeParams>) -> (Loss, Pass) {
    let batch = ctx.batch;
    let xc = centre(p, ctx.x, batch);
    let pre = pre_activations(p, &xc, batch);
    let f: Vec<f32> = pre.iter().map(|v| v.max(0.0)).collect();
    let x_hat = decode(p, &f, batch);
    let (recon, g) = reconstruction(ctx.x, &x_hat, batch);
    let sparsity;
    if let Some(grads) = grads {
        sparsity = norm_weighted_penalty(p, &f, batch, ctx.coefficient, Some(grads));
        let mut gf = decoder_backward(p, &f, &g, batch, true, grads);
        let scale = ctx.coefficient / batch as f32;
        for (i, gv) in gf.iter_mut().enumerate() {
            // d/df of the penalty is λ‖W_dec,ⱼ‖ / batch; ReLU passes gradient only where f > 0.
            *gv = if f[i] > 0.0 {
                *gv + scale * p.decoder_norm(i % p.d_sae)
            } else {
                0.0
            };
        }
        encoder_backward(p, &xc, &gf, &gf, batch, grads);
    } else {
        sparsity = norm_weighted_penalty(p, &f, batch, ctx.coefficient, None);
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
