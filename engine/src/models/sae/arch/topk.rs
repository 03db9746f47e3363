//! TopK (Gao et al. 2024): keep the k largest of `ReLU(pre)` per row, with the AuxK loss on dead
//! latents. Decoder rows stay at unit norm (the trainer projects and renormalises).

use super::{
    aux_k, centre, decode, decoder_backward, encoder_backward, pre_activations, reconstruction,
    Ctx, Loss, Pass,
};
use crate::models::sae::params::SaeParams;

/// Indices of the `k` largest of `ReLU(row)`, ordered by value descending then index
/// ascending: the order the GPU kernel produces, so the two agree exactly.
pub fn top_k_indices(row: &[f32], k: usize) -> Vec<usize> {
    top_k_masked(row, k, &[])
}

/// As [`top_k_indices`], among the latents where `eligible` is true (all when empty); fewer
/// than `k` eligible gives fewer indices.
pub(crate) fn top_k_masked(row: &[f32], k: usize, eligible: &[bool]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len())
        .filter(|&j| eligible.is_empty() || eligible[j])
        .collect();
    let key = |j: usize| row[j].max(0.0);
    let k = k.min(idx.len());
    if k == 0 {
        return vec![];
    }
    let cmp = |a: &usize, b: &usize| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx
}

/// Per-row TopK activations of a `[batch, d_sae]` matrix.
pub(super) fn activate(pre: &[f32], d_sae: usize, k: usize) -> Vec<f32> {
    let mut f = vec![0f32; pre.len()];
    for (row, out) in pre.chunks_exact(d_sae).zip(f.chunks_exact_mut(d_sae)) {
        for j in top_k_indices(row, k) {
            out[j] = row[j].max(0.0);
        }
    }
    f
}

/// Shared by TopK and BatchTopK: the main reconstruction through `f = act(pre)` plus AuxK.
pub(super) fn train_with(
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    aux_coefficient: f32,
    act: &dyn Fn(&[f32]) -> Vec<f32>,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    let batch = ctx.batch;
    let xc = centre(p, ctx.x, batch);
    let pre = pre_activations(p, &xc, batch);
    let f = act(&pre);
    let x_hat = decode(p, &f, batch);
    let (recon, g) = reconstruction(ctx.x, &x_hat, batch);
    let auxiliary;
    if let Some(grads) = grads {
        let mut gf = decoder_backward(p, &f, &g, batch, true, grads);
        for (gv, &a) in gf.iter_mut().zip(&f) {
            if a <= 0.0 {
                *gv = 0.0;
            }
        }
        // Gradients are only taken with `frozen` equal to `p`, so the residual is this pass's.
        let residual: Vec<f32> = ctx.x[..x_hat.len()]
            .iter()
            .zip(&x_hat)
            .map(|(a, b)| a - b)
            .collect();
        auxiliary = aux_k(
            p,
            frozen,
            ctx,
            &pre,
            aux_coefficient,
            act,
            Some(&residual),
            Some((&mut *grads, &mut gf)),
        );
        encoder_backward(p, &xc, &gf, &gf, batch, grads);
    } else {
        auxiliary = aux_k(p, frozen, ctx, &pre, aux_coefficient, act, None, None);
    }
    (
        Loss {
            reconstruction: recon,
            sparsity: 0.0,
            auxiliary,
        },
        Pass { f, x_hat },
    )
}

pub(super) fn train(
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    k: usize,
    aux_coefficient: f32,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    let d_sae = p.d_sae;
    train_with(
        p,
        frozen,
        ctx,
        aux_coefficient,
        &|pre| activate(pre, d_sae, k),
        grads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_value_then_index_and_ignores_negatives() {
        let row = [0.5, -1.0, 2.0, 0.5, 0.0, 3.0];
        assert_eq!(top_k_indices(&row, 3), vec![5, 2, 0]);
        assert_eq!(top_k_indices(&row, 4), vec![5, 2, 0, 3]);
        // Negative values count as zero, and zeros tie by index.
        assert_eq!(top_k_indices(&row, 6), vec![5, 2, 0, 3, 1, 4]);
        let mask = [true, true, false, true, true, false];
        assert_eq!(top_k_masked(&row, 2, &mask), vec![0, 3]);
        assert_eq!(top_k_masked(&row, 9, &mask).len(), 4);
    }
}
