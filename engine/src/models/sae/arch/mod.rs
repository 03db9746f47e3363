//! The five architectures' forward passes, losses and hand-written backward passes on the CPU:
//! the reference the GPU trainer is tested against, and the path without WebGPU.
//!
//! Every architecture shares the same skeleton: centre the input on `b_dec`, pre-activations
//! `pre = W_enc (x − b_dec) + b_enc`, an activation that is the architecture's own, the decoder
//! `x̂ = W_dec f + b_dec`, and the reconstruction loss `‖x − x̂‖²` (summed over d_in, averaged
//! over the batch). The modules below add their sparsity mechanism and auxiliary losses.

mod batch_topk;
mod gated;
mod jumprelu;
mod relu_l1;
mod topk;

pub use batch_topk::min_positive;
pub use topk::top_k_indices;

use super::config::Architecture;
use super::params::SaeParams;

/// A batch as the loss sees it, with the training state the architectures need.
pub struct Ctx<'a> {
    /// Inputs `[batch, d_in]` (already scaled by the input scale).
    pub x: &'a [f32],
    /// Rows in `x`.
    pub batch: usize,
    /// The sparsity coefficient in force this step (λ after warm-up).
    pub coefficient: f32,
    /// Which latents count as dead (for AuxK); empty means none.
    pub dead: &'a [bool],
    /// k_aux for AuxK.
    pub k_aux: usize,
}

/// The loss of one batch, by term.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Loss {
    /// `‖x − x̂‖²`, mean over the batch.
    pub reconstruction: f32,
    /// The sparsity penalty (L1 or L0 term, with its coefficient).
    pub sparsity: f32,
    /// The auxiliary loss (AuxK, or Gated's frozen-decoder reconstruction), with its coefficient.
    pub auxiliary: f32,
}

impl Loss {
    /// The sum the optimiser minimises.
    pub fn total(&self) -> f32 {
        self.reconstruction + self.sparsity + self.auxiliary
    }
}

/// What a forward pass produced, for metrics.
pub struct Pass {
    /// Latent activations `[batch, d_sae]`.
    pub f: Vec<f32>,
    /// Reconstructions `[batch, d_in]` (in the scaled space).
    pub x_hat: Vec<f32>,
}

/// The loss of a training step and, when `grads` is given (with `frozen` equal to `p`), its
/// gradient added into `grads`.
///
/// `frozen` holds the parameters behind stop-gradients (AuxK's residual, Gated's frozen
/// decoder); finite-difference checks perturb `p` and keep `frozen` fixed, so they differentiate
/// exactly what the hand-written backward does.
pub fn train_loss(
    arch: &Architecture,
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    grads: Option<&mut SaeParams>,
) -> (Loss, Pass) {
    match arch {
        Architecture::ReluL1 { .. } => relu_l1::train(p, ctx, grads),
        Architecture::TopK {
            k, aux_coefficient, ..
        } => topk::train(p, frozen, ctx, *k as usize, *aux_coefficient, grads),
        Architecture::BatchTopK {
            k, aux_coefficient, ..
        } => batch_topk::train(p, frozen, ctx, *k as usize, *aux_coefficient, grads),
        Architecture::Gated { .. } => gated::train(p, frozen, ctx, grads),
        Architecture::JumpRelu { bandwidth, .. } => jumprelu::train(p, ctx, *bandwidth, grads),
    }
}

/// Latent activations at inference: BatchTopK uses its learned threshold instead of the
/// batch-wide top-k, so a row's latents do not depend on the rest of its batch.
pub fn encode(arch: &Architecture, p: &SaeParams, x: &[f32], batch: usize) -> Vec<f32> {
    let pre = pre_activations(p, &centre(p, x, batch), batch);
    match arch {
        Architecture::ReluL1 { .. } => pre.iter().map(|v| v.max(0.0)).collect(),
        Architecture::TopK { k, .. } => topk::activate(&pre, p.d_sae, *k as usize),
        Architecture::BatchTopK { .. } => pre
            .iter()
            .map(|&v| if v > p.batch_threshold { v } else { 0.0 })
            .collect(),
        Architecture::Gated { .. } => gated::activate(p, &pre),
        Architecture::JumpRelu { .. } => jumprelu::activate(p, &pre),
    }
}

/// `x − b_dec`, row by row.
pub fn centre(p: &SaeParams, x: &[f32], batch: usize) -> Vec<f32> {
    let mut xc = x[..batch * p.d_in].to_vec();
    for row in xc.chunks_exact_mut(p.d_in) {
        for (v, b) in row.iter_mut().zip(&p.b_dec) {
            *v -= b;
        }
    }
    xc
}

/// `pre[b, j] = W_enc[j] · xc[b] + b_enc[j]`.
pub fn pre_activations(p: &SaeParams, xc: &[f32], batch: usize) -> Vec<f32> {
    let (d, n) = (p.d_in, p.d_sae);
    let mut pre = vec![0f32; batch * n];
    for (row, out) in xc.chunks_exact(d).zip(pre.chunks_exact_mut(n)) {
        for j in 0..n {
            out[j] = dot(&p.w_enc[j * d..(j + 1) * d], row) + p.b_enc[j];
        }
    }
    pre
}

/// `x̂[b] = Σ_j f[b, j] W_dec[j] + b_dec` (skipping zeros, which most latents are).
pub fn decode(p: &SaeParams, f: &[f32], batch: usize) -> Vec<f32> {
    let (d, n) = (p.d_in, p.d_sae);
    let mut x_hat = vec![0f32; batch * d];
    for (fr, out) in f.chunks_exact(n).zip(x_hat.chunks_exact_mut(d)) {
        out.copy_from_slice(&p.b_dec);
        for (j, &a) in fr.iter().enumerate() {
            if a != 0.0 {
                axpy(out, a, &p.w_dec[j * d..(j + 1) * d]);
            }
        }
    }
    x_hat
}

/// `‖x − x̂‖²` averaged over the batch (accumulated in f64: finite-difference checks need
/// the extra digits), and its gradient `2 (x̂ − x) / batch`.
pub fn reconstruction(x: &[f32], x_hat: &[f32], batch: usize) -> (f32, Vec<f32>) {
    let mut sum = 0f64;
    let g = x_hat
        .iter()
        .zip(x)
        .map(|(a, b)| {
            let e = a - b;
            sum += (e as f64) * (e as f64);
            2.0 * e / batch as f32
        })
        .collect();
    ((sum / batch as f64) as f32, g)
}

/// Backward through the decoder: adds `Σ_b f[b,j] g[b]` to `gW_dec[j]` and `Σ_b g[b]` to
/// `gb_dec`, and returns `gf[b, j] = W_dec[j] · g[b]`. Latents with `f = 0` whose `gf` the
/// caller will not use are skipped when `only_active` is set (the sparse backward).
pub fn decoder_backward(
    p: &SaeParams,
    f: &[f32],
    g: &[f32],
    batch: usize,
    only_active: bool,
    grads: &mut SaeParams,
) -> Vec<f32> {
    let (d, n) = (p.d_in, p.d_sae);
    let mut gf = vec![0f32; batch * n];
    for b in 0..batch {
        let gr = &g[b * d..(b + 1) * d];
        axpy(&mut grads.b_dec, 1.0, gr);
        for j in 0..n {
            let a = f[b * n + j];
            if only_active && a == 0.0 {
                continue;
            }
            gf[b * n + j] = dot(&p.w_dec[j * d..(j + 1) * d], gr);
            if a != 0.0 {
                axpy(&mut grads.w_dec[j * d..(j + 1) * d], a, gr);
            }
        }
    }
    gf
}

/// Backward through `pre = W_enc (x − b_dec) + b_enc` given `gpre` (the gradient reaching
/// `W_enc xc`) and `gbias` (reaching `b_enc`; the same as `gpre` except for Gated).
pub fn encoder_backward(
    p: &SaeParams,
    xc: &[f32],
    gpre: &[f32],
    gbias: &[f32],
    batch: usize,
    grads: &mut SaeParams,
) {
    let (d, n) = (p.d_in, p.d_sae);
    for b in 0..batch {
        let xr = &xc[b * d..(b + 1) * d];
        for j in 0..n {
            grads.b_enc[j] += gbias[b * n + j];
            let g = gpre[b * n + j];
            if g != 0.0 {
                axpy(&mut grads.w_enc[j * d..(j + 1) * d], g, xr);
                axpy(&mut grads.b_dec, -g, &p.w_enc[j * d..(j + 1) * d]);
            }
        }
    }
}

/// Adds the gradient of `coefficient · Σ_b Σ_j a[b, j] ‖W_dec[j]‖ / batch` (a penalty weighted
/// by decoder norms) with respect to the norms into `gW_dec`, and returns the penalty.
pub fn norm_weighted_penalty(
    p: &SaeParams,
    a: &[f32],
    batch: usize,
    coefficient: f32,
    grads: Option<&mut SaeParams>,
) -> f32 {
    let (d, n) = (p.d_in, p.d_sae);
    let norms: Vec<f32> = (0..n).map(|j| p.decoder_norm(j)).collect();
    let mut col = vec![0f64; n];
    for row in a.chunks_exact(n) {
        for (c, v) in col.iter_mut().zip(row) {
            *c += *v as f64;
        }
    }
    let penalty: f64 = col.iter().zip(&norms).map(|(c, nm)| c * *nm as f64).sum();
    if let Some(g) = grads {
        for j in 0..n {
            if col[j] != 0.0 && norms[j] > 0.0 {
                let s = coefficient * (col[j] / batch as f64) as f32 / norms[j];
                axpy(
                    &mut g.w_dec[j * d..(j + 1) * d],
                    s,
                    &p.w_dec[j * d..(j + 1) * d],
                );
            }
        }
    }
    coefficient * (penalty / batch as f64) as f32
}

/// AuxK (Gao et al.): reconstruct the main residual `e = x − x̂` (stop-gradient, from
/// `frozen`) from the top `k_aux` dead latents, without `b_dec`. The loss is
/// `coefficient · min(n_dead / k_aux, 1) · ‖ê − e‖²` averaged over the batch. Adds its gradient
/// into `grads` and `gpre` and returns the loss. `residual`, when given, is `x − x̂` of the
/// main path (it must come from `frozen`). `main` maps pre-activations to the main path's
/// activations (the architecture's top-k).
#[allow(clippy::too_many_arguments)]
pub fn aux_k(
    p: &SaeParams,
    frozen: &SaeParams,
    ctx: &Ctx,
    pre: &[f32],
    coefficient: f32,
    main: &dyn Fn(&[f32]) -> Vec<f32>,
    residual: Option<&[f32]>,
    grads: Option<(&mut SaeParams, &mut [f32])>,
) -> f32 {
    let (d, n, batch) = (p.d_in, p.d_sae, ctx.batch);
    let n_dead = ctx.dead.iter().filter(|&&x| x).count();
    if n_dead == 0 || coefficient == 0.0 || ctx.k_aux == 0 {
        return 0.0;
    }
    let scale = coefficient * (n_dead as f32 / ctx.k_aux as f32).min(1.0);
    // The residual of the main path, computed with the frozen parameters (the caller passes it
    // when it already has it, i.e. when `frozen` is `p`).
    let residual: Vec<f32> = if let Some(r) = residual {
        r.to_vec()
    } else {
        let xc = centre(frozen, ctx.x, batch);
        let fpre = pre_activations(frozen, &xc, batch);
        let x_hat = decode(frozen, &main(&fpre), batch);
        ctx.x[..batch * d]
            .iter()
            .zip(&x_hat)
            .map(|(a, b)| a - b)
            .collect()
    };
    let mut f_aux = vec![0f32; batch * n];
    for b in 0..batch {
        let row = &pre[b * n..(b + 1) * n];
        for j in topk::top_k_masked(row, ctx.k_aux, ctx.dead) {
            f_aux[b * n + j] = row[j].max(0.0);
        }
    }
    let mut e_hat = vec![0f32; batch * d];
    for b in 0..batch {
        for j in 0..n {
            let a = f_aux[b * n + j];
            if a != 0.0 {
                axpy(
                    &mut e_hat[b * d..(b + 1) * d],
                    a,
                    &p.w_dec[j * d..(j + 1) * d],
                );
            }
        }
    }
    let (loss, g) = reconstruction(&residual, &e_hat, batch);
    if let Some((grads, gpre)) = grads {
        let g: Vec<f32> = g.iter().map(|v| v * scale).collect();
        for b in 0..batch {
            let gr = &g[b * d..(b + 1) * d];
            for j in 0..n {
                let a = f_aux[b * n + j];
                if a > 0.0 {
                    gpre[b * n + j] += dot(&p.w_dec[j * d..(j + 1) * d], gr);
                    axpy(&mut grads.w_dec[j * d..(j + 1) * d], a, gr);
                }
            }
        }
    }
    scale * loss
}

/// The dot product the reference uses everywhere (and the training loop's projections).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (v, w) in y.iter_mut().zip(x) {
        *v += a * w;
    }
}

#[cfg(test)]
mod tests;
