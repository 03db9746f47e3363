//! BatchTopK (Bussmann et al. 2024): keep the `k · batch` largest activations across the
//! whole batch, so rows get more or fewer latents as they need. The trainer keeps a running
//! estimate of the smallest kept activation as the inference threshold.

use super::topk::train_with;
use super::{Ctx, Loss, Pass};
use crate::models::sae::params::SaeParams;

/// Keeps the `keep` largest of `ReLU(pre)` over the whole matrix (ties by lower flat index).
pub(super) fn activate_batch(pre: &[f32], keep: usize) -> Vec<f32> {
    let keep = keep.min(pre.len());
    let mut f = vec![0f32; pre.len()];
    for i in super::top_k_indices(pre, keep) {
        f[i] = pre[i].max(0.0);
    }
    f
}

pub(super) fn train(
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    k: usize,
    aux_coefficient: f32,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    let keep = k * ctx.batch;
    train_with(
        p,
        frozen,
        ctx,
        aux_coefficient,
        &|pre| activate_batch(pre, keep),
        grads,
    )
}

/// The smallest positive activation kept in a batch: what the threshold estimate tracks.
pub fn min_positive(f: &[f32]) -> Option<f32> {
    f.iter().copied().filter(|&v| v > 0.0).reduce(f32::min)
}
