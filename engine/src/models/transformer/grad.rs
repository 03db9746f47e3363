//! The language-modelling loss and its gradient on the CPU: TransformerLens's
//! `lm_cross_entropy_loss` (each position predicts the next token; the mean over every position
//! but the last of each row) and the backward pass through every parameter, by hand from the
//! activations the forward pass captured. This is the reference the GPU backward kernels are
//! tested against, and the CPU trainer's gradient.

use super::config::Activation;
use super::cpu::{affine, forward, Hooks};
use super::params::TransformerParams;
use crate::error::Result;
use crate::kernels::activation::{activation_backward_ref, Act};
use crate::kernels::attention::{attention_backward_ref, AttnShape};
use crate::kernels::cross_entropy::cross_entropy_ref;
use crate::kernels::embedding::embedding_backward_ref;
use crate::kernels::heads::heads_backward_ref;
use crate::kernels::layernorm::layernorm_backward_ref;
use crate::kernels::sum_rows::sum_rows_ref;
use std::collections::HashMap;

/// The mean next-token cross-entropy of `logits` `[batch, pos, d_vocab]` for `tokens`, and its
/// gradient at the logits ([`cross_entropy_ref`]).
pub fn lm_loss(logits: &[f32], tokens: &[u32], batch: usize, vocab: usize) -> (f32, Vec<f32>) {
    cross_entropy_ref(logits, tokens, tokens.len() / batch, vocab)
}

/// Gradients being gathered, by parameter name.
struct Grads(HashMap<String, Vec<f32>>);

impl Grads {
    fn of(&mut self, name: &str, len: usize) -> &mut Vec<f32> {
        self.0
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; len])
    }
}

fn hook<'a>(h: &'a Hooks, name: &str) -> &'a [f32] {
    h.get(name)
        .map(|(_, v)| v)
        .expect("the forward pass captured every hook")
}

/// A LayerNorm's output (`hook_normalized · w + b`, what the next layer reads), from the
/// captured `hook_normalized`.
fn ln_out(params: &TransformerParams, h: &Hooks, prefix: &str) -> Result<Vec<f32>> {
    let n = hook(h, &format!("{prefix}.hook_normalized"));
    let w = params.get(&format!("{prefix}.w"))?;
    Ok(affine(n, w, params.get(&format!("{prefix}.b"))?))
}

/// `out += aᵀ [k, n] from a [rows, k] and g [rows, n]`: a weight's gradient.
fn add_at_b(out: &mut [f32], a: &[f32], g: &[f32], rows: usize, k: usize, n: usize) {
    for r in 0..rows {
        for i in 0..k {
            let av = a[r * k + i];
            for (o, gv) in out[i * n..(i + 1) * n]
                .iter_mut()
                .zip(&g[r * n..(r + 1) * n])
            {
                *o += av * gv;
            }
        }
    }
}

/// `g [rows, n] · wᵀ` for `w [k, n]`: the gradient at a linear layer's input.
fn g_wt(g: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * k];
    for r in 0..rows {
        for i in 0..k {
            let mut s = 0f32;
            for j in 0..n {
                s += g[r * n + j] * w[i * n + j];
            }
            out[r * k + i] = s;
        }
    }
    out
}

/// Adds the column sums of `g` `[rows, n]` (a bias's gradient) to `out`.
fn add_bias_grad(out: &mut [f32], g: &[f32], n: usize) {
    add_into(out, &sum_rows_ref(g, n));
}

/// LayerNorm's backward: from the gradient at its output and its input `x`, the gradient at
/// `x`, adding to its weight's and bias's.
fn layer_norm_back(
    grads: &mut Grads,
    params: &TransformerParams,
    prefix: &str,
    x: &[f32],
    dy: &[f32],
    width: usize,
) -> Result<Vec<f32>> {
    let w = params.get(&format!("{prefix}.w"))?;
    let (dx, dw, db) = layernorm_backward_ref(x, w, dy, width);
    add_into(grads.of(&format!("{prefix}.w"), width), &dw);
    add_into(grads.of(&format!("{prefix}.b"), width), &db);
    Ok(dx)
}

fn add_into(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// The loss on `tokens` and its gradient for every parameter, in `params.tensors` order.
pub fn loss_and_grad(
    params: &TransformerParams,
    tokens: &[u32],
    batch: usize,
) -> Result<(f32, Vec<Vec<f32>>)> {
    let cfg = &params.cfg;
    let (logits, h) = forward(params, tokens, batch, &|_| true)?;
    let pos = tokens.len() / batch;
    let rows = batch * pos;
    let (d, nh, dh, m, v) = (
        cfg.d_model as usize,
        cfg.n_heads as usize,
        cfg.d_head as usize,
        cfg.d_mlp as usize,
        cfg.d_vocab as usize,
    );
    let (loss, dlogits) = lm_loss(&logits, tokens, batch, v);
    let mut grads = Grads(HashMap::new());
    // Unembedding and the final LayerNorm.
    let xf = &ln_out(params, &h, "ln_final")?;
    add_at_b(grads.of("unembed.W_U", d * v), xf, &dlogits, rows, d, v);
    add_bias_grad(grads.of("unembed.b_U", v), &dlogits, v);
    let dxf = g_wt(&dlogits, params.get("unembed.W_U")?, rows, d, v);
    let last = format!("blocks.{}.hook_resid_post", cfg.n_layers - 1);
    let mut dresid = layer_norm_back(&mut grads, params, "ln_final", hook(&h, &last), &dxf, d)?;
    for l in (0..cfg.n_layers as usize).rev() {
        let name = |n: &str| format!("blocks.{l}.{n}");
        if !cfg.attn_only {
            let dmlp_out = dresid.clone();
            let x2 = &ln_out(params, &h, &name("ln2"))?;
            let post = hook(&h, &name("mlp.hook_post"));
            add_at_b(
                grads.of(&name("mlp.W_out"), m * d),
                post,
                &dmlp_out,
                rows,
                m,
                d,
            );
            add_bias_grad(grads.of(&name("mlp.b_out"), d), &dmlp_out, d);
            let dpost = g_wt(&dmlp_out, params.get(&name("mlp.W_out"))?, rows, m, d);
            let pre = hook(&h, &name("mlp.hook_pre"));
            let dpre: Vec<f32> = match cfg.act_fn {
                Activation::Gelu => activation_backward_ref(Act::Gelu, pre, &dpost, m),
                Activation::GeluNew => activation_backward_ref(Act::GeluNew, pre, &dpost, m),
                Activation::SoluLn => {
                    let mid = hook(&h, &name("mlp.hook_mid"));
                    let dmid =
                        layer_norm_back(&mut grads, params, &name("mlp.ln"), mid, &dpost, m)?;
                    activation_backward_ref(Act::Solu, pre, &dmid, m)
                }
            };
            add_at_b(grads.of(&name("mlp.W_in"), d * m), x2, &dpre, rows, d, m);
            add_bias_grad(grads.of(&name("mlp.b_in"), m), &dpre, m);
            let dx2 = g_wt(&dpre, params.get(&name("mlp.W_in"))?, rows, d, m);
            let resid_mid = hook(&h, &name("hook_resid_mid"));
            let dmid_ln = layer_norm_back(&mut grads, params, &name("ln2"), resid_mid, &dx2, d)?;
            add_into(&mut dresid, &dmid_ln);
        }
        // Attention.
        let dout = dresid.clone();
        let z = hook(&h, &name("attn.hook_z"));
        add_at_b(
            grads.of(&name("attn.W_O"), nh * dh * d),
            z,
            &dout,
            rows,
            nh * dh,
            d,
        );
        add_bias_grad(grads.of(&name("attn.b_O"), d), &dout, d);
        let dz = g_wt(&dout, params.get(&name("attn.W_O"))?, rows, nh * dh, d);
        let (q, k, vv) = (
            hook(&h, &name("attn.hook_q")),
            hook(&h, &name("attn.hook_k")),
            hook(&h, &name("attn.hook_v")),
        );
        let pattern = hook(&h, &name("attn.hook_pattern"));
        let shape = AttnShape {
            batch,
            pos,
            heads: nh,
            d_head: dh,
        };
        let (dq, dk, dv) = attention_backward_ref(shape, q, k, vv, pattern, &dz);
        let x1 = &ln_out(params, &h, &name("ln1"))?;
        let mut dx1 = vec![0f32; rows * d];
        for (w, bias, g) in [
            ("W_Q", "b_Q", &dq),
            ("W_K", "b_K", &dk),
            ("W_V", "b_V", &dv),
        ] {
            let wv = params.get(&name(&format!("attn.{w}")))?;
            let (dx, dw, db) = heads_backward_ref(x1, wv, g, d, nh, dh);
            add_into(&mut dx1, &dx);
            add_into(grads.of(&name(&format!("attn.{w}")), nh * d * dh), &dw);
            add_into(grads.of(&name(&format!("attn.{bias}")), nh * dh), &db);
        }
        let resid_pre = hook(&h, &name("hook_resid_pre"));
        let dpre_ln = layer_norm_back(&mut grads, params, &name("ln1"), resid_pre, &dx1, d)?;
        add_into(&mut dresid, &dpre_ln);
    }
    // Embeddings.
    let (dw_e, dw_pos) = embedding_backward_ref(
        tokens,
        pos,
        &dresid,
        d,
        (cfg.d_vocab as usize, cfg.n_ctx as usize),
    );
    add_into(grads.of("embed.W_E", dw_e.len()), &dw_e);
    add_into(grads.of("pos_embed.W_pos", dw_pos.len()), &dw_pos);
    let out = params
        .tensors
        .iter()
        .map(|t| {
            grads
                .0
                .remove(&t.name)
                .unwrap_or_else(|| vec![0.0; t.values.len()])
        })
        .collect();
    Ok((loss, out))
}

#[cfg(test)]
mod tests {
    use super::super::config::{Activation, TransformerConfig};
    use super::*;

    /// Central differences on a sample of every tensor's entries, against the hand-written
    /// backward. The forward runs in f32, so the step is large (1e-2) and the tolerance is
    /// 2e-3 absolute plus 3% relative, which a wrong term (a missing LayerNorm weight, a
    /// transposed product) exceeds by orders of magnitude.
    fn check(cfg: TransformerConfig) {
        let mut params = TransformerParams::init(&cfg, 7).unwrap();
        // Perturb the LayerNorms and biases away from 1 and 0.
        for (t, tensor) in params.tensors.iter_mut().enumerate() {
            for (i, v) in tensor.values.iter_mut().enumerate() {
                *v += 0.2 * crate::rng::rng_normal(99, t as u32, i as u32);
            }
        }
        let tokens: Vec<u32> = (0..2 * 6).map(|i| (i * 7 + 3) % cfg.d_vocab).collect();
        let (_, grads) = loss_and_grad(&params, &tokens, 2).unwrap();
        let loss = |p: &TransformerParams| {
            let (logits, _) = forward(p, &tokens, 2, &|_| false).unwrap();
            lm_loss(&logits, &tokens, 2, cfg.d_vocab as usize).0
        };
        let eps = 1e-2;
        for t in 0..params.tensors.len() {
            let n = params.tensors[t].values.len();
            for i in (0..n).step_by((n / 5).max(1)) {
                let old = params.tensors[t].values[i];
                params.tensors[t].values[i] = old + eps;
                let up = loss(&params);
                params.tensors[t].values[i] = old - eps;
                let down = loss(&params);
                params.tensors[t].values[i] = old;
                let fd = (up - down) / (2.0 * eps);
                let g = grads[t][i];
                assert!(
                    (fd - g).abs() <= 2e-3 + 0.03 * fd.abs(),
                    "{} {:?}: d loss / d [{i}] = {g}, finite differences give {fd}",
                    params.tensors[t].name,
                    cfg.act_fn
                );
            }
        }
    }

    fn tiny(act_fn: Activation, attn_only: bool) -> TransformerConfig {
        TransformerConfig {
            n_layers: 2,
            d_model: 8,
            n_heads: 2,
            d_head: 3,
            d_mlp: 10,
            n_ctx: 8,
            d_vocab: 11,
            act_fn,
            attn_only,
        }
    }

    #[test]
    fn solu_ln_gradients_match_finite_differences() {
        check(tiny(Activation::SoluLn, false));
    }

    #[test]
    fn gelu_gradients_match_finite_differences() {
        check(tiny(Activation::Gelu, false));
        check(tiny(Activation::GeluNew, false));
    }

    #[test]
    fn attention_only_gradients_match_finite_differences() {
        check(tiny(Activation::Gelu, true));
    }
}
