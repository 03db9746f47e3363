//! The CPU reference forward pass, written as TransformerLens's `HookedTransformer` computes
//! it, capturing each hook point by its TransformerLens name: the reference the GPU kernels are
//! tested against, and the path without WebGPU. Activations are row-major with TransformerLens's
//! shapes: `[batch, pos, d]`, `hook_q|k|v|z` `[batch, pos, head, d_head]`, `hook_attn_scores`
//! and `hook_pattern` `[batch, head, query_pos, key_pos]`, `hook_scale` `[batch, pos, 1]`.
//! Sums run in f32 in increasing index order.

use super::config::{Activation, TransformerConfig};
use super::params::TransformerParams;
use crate::error::{EngineError, Result};
use crate::kernels::activation::{activation_ref, Act};
use crate::kernels::attention::{attention_ref, AttnShape};
use crate::kernels::embedding::embedding_ref;
use crate::kernels::heads::heads_ref;
use crate::kernels::layernorm::layernorm_ref;

use super::hooks::{check_edits, check_stop, HookEdit, Tap};
pub use super::hooks::{hook_matches, Hooks};

/// The logits `[batch, pos, d_vocab]` for `tokens` (`batch` rows of `tokens.len() / batch`
/// positions, at most n_ctx), and the hooks `capture` accepts.
pub fn forward(
    params: &TransformerParams,
    tokens: &[u32],
    batch: usize,
    capture: &dyn Fn(&str) -> bool,
) -> Result<(Vec<f32>, Hooks)> {
    forward_with(params, tokens, batch, capture, &[])
}

/// [`forward`] with `edits` replacing hooks' values on the way (TransformerLens's
/// `run_with_hooks`): the pass goes on from each edited value, and a captured hook holds its
/// value after its edits. Edits that do not fit the model are refused before anything runs.
pub fn forward_with(
    params: &TransformerParams,
    tokens: &[u32],
    batch: usize,
    capture: &dyn Fn(&str) -> bool,
    edits: &[HookEdit],
) -> Result<(Vec<f32>, Hooks)> {
    let (logits, hooks) = pass(params, tokens, batch, capture, edits, None)?;
    Ok((logits.expect("a whole pass makes the logits"), hooks))
}

/// The hooks `capture` accepts from a pass through the first `stop_at_layer` blocks alone
/// (TransformerLens's `stop_at_layer`; all of them, without the final LayerNorm and the
/// unembedding, when it is n_layers), with `edits` on the way: what an SAE on an early hook
/// needs, without the rest of the model. A stop past the last block is refused.
pub fn forward_until(
    params: &TransformerParams,
    tokens: &[u32],
    batch: usize,
    capture: &dyn Fn(&str) -> bool,
    edits: &[HookEdit],
    stop_at_layer: usize,
) -> Result<Hooks> {
    check_stop(&params.cfg, stop_at_layer)?;
    Ok(pass(params, tokens, batch, capture, edits, Some(stop_at_layer))?.1)
}

/// A forward pass through every block, or the first `stop` alone (then without logits).
fn pass(
    params: &TransformerParams,
    tokens: &[u32],
    batch: usize,
    capture: &dyn Fn(&str) -> bool,
    edits: &[HookEdit],
    stop: Option<usize>,
) -> Result<(Option<Vec<f32>>, Hooks)> {
    let cfg = &params.cfg;
    cfg.validate()?;
    let pos = check_tokens(cfg, tokens, batch)?;
    let mut tap = Tap::new(capture, check_edits(cfg, edits, batch, pos)?);
    let d = cfg.d_model as usize;
    let rows = batch * pos;
    let resid_shape = vec![batch, pos, d];
    let w_e = params.get("embed.W_E")?;
    let w_pos = params.get("pos_embed.W_pos")?;
    let (mut embed, mut pos_embed, mut resid) = embedding_ref(tokens, pos, w_e, w_pos, d);
    let edited = tap.edit("hook_embed", &mut embed) | tap.edit("hook_pos_embed", &mut pos_embed);
    if edited {
        resid = embed.iter().zip(&pos_embed).map(|(e, p)| e + p).collect();
    }
    tap.see("hook_embed".into(), resid_shape.clone(), &embed);
    tap.see("hook_pos_embed".into(), resid_shape.clone(), &pos_embed);
    let ln_ctx = (batch, pos);
    for l in 0..stop.unwrap_or(cfg.n_layers as usize) {
        let name = |n: &str| format!("blocks.{l}.{n}");
        tap.at(name("hook_resid_pre"), resid_shape.clone(), &mut resid);
        let x = layer_norm(params, &name("ln1"), &resid, d, &mut tap, ln_ctx)?;
        let mut attn_out = attention(params, l, &x, batch, pos, &mut tap)?;
        tap.at(name("hook_attn_out"), resid_shape.clone(), &mut attn_out);
        add_into(&mut resid, &attn_out);
        if !cfg.attn_only {
            tap.at(name("hook_resid_mid"), resid_shape.clone(), &mut resid);
            let x = layer_norm(params, &name("ln2"), &resid, d, &mut tap, ln_ctx)?;
            let mut mlp_out = mlp(params, l, &x, batch, pos, &mut tap)?;
            tap.at(name("hook_mlp_out"), resid_shape.clone(), &mut mlp_out);
            add_into(&mut resid, &mlp_out);
        }
        tap.at(name("hook_resid_post"), resid_shape.clone(), &mut resid);
    }
    if stop.is_some() {
        return Ok((None, tap.hooks));
    }
    let mut x = layer_norm(params, "ln_final", &resid, d, &mut tap, ln_ctx)?;
    tap.at("unembed.hook_in".into(), resid_shape, &mut x);
    let v = cfg.d_vocab as usize;
    let logits = linear(
        &x,
        params.get("unembed.W_U")?,
        Some(params.get("unembed.b_U")?),
        rows,
        d,
        v,
    );
    tap.see("unembed.hook_out".into(), vec![batch, pos, v], &logits);
    Ok((Some(logits), tap.hooks))
}

/// Positions per row of `tokens`, refused (naming the problem) unless they are `batch` equal
/// rows of at most n_ctx ids below d_vocab.
pub(crate) fn check_tokens(cfg: &TransformerConfig, tokens: &[u32], batch: usize) -> Result<usize> {
    if batch == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(batch) {
        return Err(EngineError::invalid(
            "tokens",
            tokens.len(),
            format!("must be {batch} rows of equal length"),
        ));
    }
    let pos = tokens.len() / batch;
    if pos > cfg.n_ctx as usize {
        return Err(EngineError::invalid(
            "tokens",
            pos,
            format!("a row is longer than n_ctx = {}", cfg.n_ctx),
        ));
    }
    if let Some(&t) = tokens.iter().find(|&&t| t >= cfg.d_vocab) {
        return Err(EngineError::invalid(
            "tokens",
            t,
            format!("a token id must be below d_vocab = {}", cfg.d_vocab),
        ));
    }
    Ok(pos)
}

fn add_into(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// `x [rows, k] · w [k, n] (+ bias [n])`.
fn linear(x: &[f32], w: &[f32], bias: Option<&[f32]>, rows: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        let o = &mut out[r * n..(r + 1) * n];
        for (i, &xv) in x[r * k..(r + 1) * k].iter().enumerate() {
            for (oj, &wv) in o.iter_mut().zip(&w[i * n..(i + 1) * n]) {
                *oj += xv * wv;
            }
        }
        if let Some(b) = bias {
            o.iter_mut().zip(b).for_each(|(oj, bj)| *oj += bj);
        }
    }
    out
}

/// LayerNorm over rows of `width` as TransformerLens 3.x computes it: centre, `hook_scale` =
/// √(mean(x²) + ε), `hook_normalized` = x / scale (before the weight and bias; TransformerLens
/// 2.x took it after), and the output `hook_normalized · w + b`.
fn layer_norm(
    params: &TransformerParams,
    prefix: &str,
    x: &[f32],
    width: usize,
    tap: &mut Tap<'_>,
    (batch, pos): (usize, usize),
) -> Result<Vec<f32>> {
    let w = params.get(&format!("{prefix}.w"))?;
    let b = params.get(&format!("{prefix}.b"))?;
    let rows = batch * pos;
    let (_, stats) = layernorm_ref(&x[..rows * width], w, b, width);
    let normalized = normalized(&x[..rows * width], &stats, width);
    let extra = |n: &str| format!("{prefix}.{n}");
    tap.see(extra("hook_scale"), vec![batch, pos, 1], &stats[..rows]);
    tap.see(
        extra("hook_normalized"),
        vec![batch, pos, width],
        &normalized,
    );
    Ok(affine(&normalized, w, b))
}

/// LayerNorm's `hook_normalized`, `(x − mean) / scale`, from its input and the
/// `[scale; mean]` statistics [`layernorm_ref`] and the GPU kernel keep.
pub(crate) fn normalized(x: &[f32], stats: &[f32], width: usize) -> Vec<f32> {
    let rows = x.len() / width;
    x.chunks_exact(width)
        .enumerate()
        .flat_map(|(r, row)| {
            let (s, mean) = (stats[r], stats[rows + r]);
            row.iter().map(move |v| (v - mean) / s)
        })
        .collect()
}

/// LayerNorm's output from its `hook_normalized`: `n · w + b`, the same operations in the same
/// order as [`layernorm_ref`] and the kernel, so the same bits.
pub(crate) fn affine(normalized: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let width = w.len();
    normalized
        .iter()
        .enumerate()
        .map(|(i, n)| n * w[i % width] + b[i % width])
        .collect()
}

/// Causal multi-head attention of layer `l` on the normalised residual `x`.
fn attention(
    params: &TransformerParams,
    l: usize,
    x: &[f32],
    batch: usize,
    pos: usize,
    tap: &mut Tap<'_>,
) -> Result<Vec<f32>> {
    let cfg = &params.cfg;
    let (d, h, dh) = (
        cfg.d_model as usize,
        cfg.n_heads as usize,
        cfg.d_head as usize,
    );
    let p = |n: &str| params.get(&format!("blocks.{l}.attn.{n}"));
    // q, k, v as [batch, pos, head, d_head].
    let project = |w: &[f32], bias: &[f32]| heads_ref(x, w, bias, d, h, dh);
    let mut q = project(p("W_Q")?, p("b_Q")?);
    let mut k = project(p("W_K")?, p("b_K")?);
    let mut v = project(p("W_V")?, p("b_V")?);
    let name = |n: &str| format!("blocks.{l}.attn.{n}");
    let qkv_shape = vec![batch, pos, h, dh];
    tap.at(name("hook_q"), qkv_shape.clone(), &mut q);
    tap.at(name("hook_k"), qkv_shape.clone(), &mut k);
    tap.at(name("hook_v"), qkv_shape.clone(), &mut v);
    let shape = AttnShape {
        batch,
        pos,
        heads: h,
        d_head: dh,
    };
    let (scores, pattern, mut z) = attention_ref(shape, &q, &k, &v);
    let score_shape = vec![batch, h, pos, pos];
    tap.see(name("hook_attn_scores"), score_shape.clone(), &scores);
    tap.see(name("hook_pattern"), score_shape, &pattern);
    tap.at(name("hook_z"), qkv_shape, &mut z);
    // W_O [head, d_head, d_model] is a [head · d_head, d_model] matrix on z's rows.
    Ok(linear(
        &z,
        p("W_O")?,
        Some(p("b_O")?),
        batch * pos,
        h * dh,
        d,
    ))
}

/// The MLP of layer `l` on the normalised residual `x`.
fn mlp(
    params: &TransformerParams,
    l: usize,
    x: &[f32],
    batch: usize,
    pos: usize,
    tap: &mut Tap<'_>,
) -> Result<Vec<f32>> {
    let cfg = &params.cfg;
    let (d, m, rows) = (cfg.d_model as usize, cfg.d_mlp as usize, batch * pos);
    let p = |n: &str| params.get(&format!("blocks.{l}.mlp.{n}"));
    let name = |n: &str| format!("blocks.{l}.mlp.{n}");
    let shape = vec![batch, pos, m];
    let mut pre = linear(x, p("W_in")?, Some(p("b_in")?), rows, d, m);
    tap.at(name("hook_pre"), shape.clone(), &mut pre);
    let mut post = match cfg.act_fn {
        Activation::Gelu => activation_ref(Act::Gelu, &pre, m),
        Activation::GeluNew => activation_ref(Act::GeluNew, &pre, m),
        Activation::SoluLn => {
            let mut mid = activation_ref(Act::Solu, &pre, m);
            tap.at(name("hook_mid"), shape.clone(), &mut mid);
            layer_norm(params, &name("ln"), &mid, m, tap, (batch, pos))?
        }
    };
    tap.at(name("hook_post"), shape, &mut post);
    Ok(linear(&post, p("W_out")?, Some(p("b_out")?), rows, m, d))
}

#[cfg(test)]
mod tests {
    use super::super::config::TransformerConfig;
    use super::*;

    #[test]
    fn bad_token_batches_are_named() {
        let cfg = TransformerConfig {
            d_vocab: 10,
            n_ctx: 4,
            ..TransformerConfig::default()
        };
        let p = TransformerParams::init(&cfg, 0).unwrap();
        let all = |_: &str| true;
        assert!(forward(&p, &[1, 2, 3], 2, &all).is_err());
        let long = forward(&p, &[1; 10], 2, &all).unwrap_err().to_string();
        assert!(long.contains("n_ctx = 4"), "{long}");
        let id = forward(&p, &[1, 10], 1, &all).unwrap_err().to_string();
        assert!(id.contains("d_vocab = 10"), "{id}");
        let (logits, hooks) = forward(&p, &[1, 2, 3, 4], 2, &|n| n.ends_with("hook_mid")).unwrap();
        assert_eq!(logits.len(), 2 * 2 * 10);
        assert_eq!(hooks.names().collect::<Vec<_>>(), ["blocks.0.mlp.hook_mid"]);
    }
}
