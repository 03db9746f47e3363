//! One transformer block on the GPU, forward and backward, as a short list of kernel calls
//! over the block's activations ([`BlockActs`]): LayerNorm, the q/k/v projections, attention,
//! the output projection and the residual sum, then (unless attention-only) LayerNorm, the
//! MLP's two products around its activation (SoLU with its own LayerNorm) and the residual
//! sum. Each hook a forward pass writes goes through [`Edits::at`], so a replaced value is what
//! every later kernel reads.

use super::acts::{BlockActs, LnActs};
use super::edits::Edits;
use crate::error::Result;
use crate::gpu::{Arena, Recording, View};
use crate::kernels::activation::{activation, Act};
use crate::kernels::add::add;
use crate::kernels::attention::{attention, attention_backward, Attention, AttentionBackward};
use crate::kernels::heads::{heads, heads_backward, Heads, HeadsBackward};
use crate::kernels::layernorm::{layernorm, layernorm_backward, LayerNorm, LayerNormBackward};
use crate::kernels::linear::{linear, linear_backward};

/// A block's shape: its layer, the positions, and the model's widths, with the MLP's
/// activation resolved once (SoLU's LayerNorm is `solu`).
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub layer: usize,
    pub attn: crate::kernels::attention::AttnShape,
    pub d_model: usize,
    pub d_mlp: usize,
    /// The MLP's activation: GeLU, GeLU-new, or SoLU (then its LayerNorm).
    pub act: Act,
}

impl Shape {
    fn rows(&self) -> usize {
        self.attn.batch * self.attn.pos
    }

    fn name(&self, n: &str) -> String {
        format!("blocks.{}.{n}", self.layer)
    }
}

/// Records `ln` of `x` (`rows` of `width`) with the arena's `{prefix}.w` and `.b`.
pub(super) async fn ln_forward(
    rec: &mut Recording<'_>,
    params: &Arena,
    prefix: &str,
    x: View<'_>,
    ln: &LnActs,
    (rows, width): (usize, usize),
) -> Result<()> {
    let t = LayerNorm {
        x,
        w: params.view(&format!("{prefix}.w"))?,
        b: params.view(&format!("{prefix}.b"))?,
        y: (&ln.out).into(),
        stats: (&ln.stats).into(),
        rows,
        width,
    };
    layernorm(rec, &t).await
}

/// A LayerNorm's backward, its weight's and bias's gradients into the gradient arena.
#[allow(clippy::too_many_arguments)]
pub(super) async fn ln_backward(
    rec: &mut Recording<'_>,
    grads: &Arena,
    params: &Arena,
    prefix: &str,
    x: View<'_>,
    dy: View<'_>,
    stats: View<'_>,
    dx: View<'_>,
    (rows, width): (usize, usize),
) -> Result<()> {
    let t = LayerNormBackward {
        x,
        w: params.view(&format!("{prefix}.w"))?,
        dy,
        stats,
        dx,
        dw: grads.view(&format!("{prefix}.w"))?,
        db: grads.view(&format!("{prefix}.b"))?,
        rows,
        width,
        accumulate: false,
    };
    layernorm_backward(rec, &t).await
}

/// Records the block's forward pass from `a.resid_pre` (written, and edited, by the caller).
pub(super) async fn forward(
    rec: &mut Recording<'_>,
    params: &Arena,
    s: Shape,
    a: &BlockActs,
    edits: &Edits<'_>,
) -> Result<()> {
    let (rows, d, m) = (s.rows(), s.d_model, s.d_mlp);
    let (h, dh) = (s.attn.heads, s.attn.d_head);
    let name = |n: &str| s.name(n);
    ln_forward(
        rec,
        params,
        &name("ln1"),
        (&a.resid_pre).into(),
        &a.ln1,
        (rows, d),
    )
    .await?;
    for (which, out) in [("Q", &a.q), ("K", &a.k), ("V", &a.v)] {
        let t = Heads {
            x: (&a.ln1.out).into(),
            w: params.view(&name(&format!("attn.W_{which}")))?,
            bias: params.view(&name(&format!("attn.b_{which}")))?,
            out: out.into(),
            rows,
            d_in: d,
            heads: h,
            d_head: dh,
        };
        heads(rec, &t).await?;
        let hook = format!("attn.hook_{}", which.to_lowercase());
        edits.at(rec, &name(&hook), out).await?;
    }
    let t = Attention {
        q: (&a.q).into(),
        k: (&a.k).into(),
        v: (&a.v).into(),
        scores: (&a.scores).into(),
        pattern: (&a.pattern).into(),
        z: (&a.z).into(),
    };
    attention(rec, s.attn, &t).await?;
    edits.at(rec, &name("attn.hook_z"), &a.z).await?;
    let (w_o, b_o) = (name("attn.W_O"), name("attn.b_O"));
    let z = (&a.z).into();
    linear(
        rec,
        params,
        (&w_o, &b_o),
        z,
        (&a.attn_out).into(),
        (rows, h * dh, d),
    )
    .await?;
    edits.at(rec, &name("hook_attn_out"), &a.attn_out).await?;
    let resid = (&a.resid_pre).into();
    add(
        rec,
        resid,
        (&a.attn_out).into(),
        (&a.resid_mid).into(),
        rows * d,
    )
    .await?;
    let Some(mlp) = &a.mlp else {
        return edits.at(rec, &name("hook_resid_post"), &a.resid_mid).await;
    };
    edits.at(rec, &name("hook_resid_mid"), &a.resid_mid).await?;
    let mid_in = (&a.resid_mid).into();
    ln_forward(rec, params, &name("ln2"), mid_in, &mlp.ln2, (rows, d)).await?;
    let (w_in, b_in) = (name("mlp.W_in"), name("mlp.b_in"));
    let x2 = (&mlp.ln2.out).into();
    linear(
        rec,
        params,
        (&w_in, &b_in),
        x2,
        (&mlp.pre).into(),
        (rows, d, m),
    )
    .await?;
    edits.at(rec, &name("mlp.hook_pre"), &mlp.pre).await?;
    match &mlp.mid {
        None => {
            let (pre, post) = ((&mlp.pre).into(), (&mlp.post).into());
            activation(rec, s.act, pre, None, post, rows, m).await?;
        }
        Some((mid, stats)) => {
            activation(rec, Act::Solu, (&mlp.pre).into(), None, mid.into(), rows, m).await?;
            edits.at(rec, &name("mlp.hook_mid"), mid).await?;
            let t = LayerNorm {
                x: mid.into(),
                w: params.view(&name("mlp.ln.w"))?,
                b: params.view(&name("mlp.ln.b"))?,
                y: (&mlp.post).into(),
                stats: stats.into(),
                rows,
                width: m,
            };
            layernorm(rec, &t).await?;
        }
    }
    edits.at(rec, &name("mlp.hook_post"), &mlp.post).await?;
    let (w_out, b_out) = (name("mlp.W_out"), name("mlp.b_out"));
    let post = (&mlp.post).into();
    linear(
        rec,
        params,
        (&w_out, &b_out),
        post,
        (&mlp.out).into(),
        (rows, m, d),
    )
    .await?;
    edits.at(rec, &name("hook_mlp_out"), &mlp.out).await?;
    let (mid, out) = ((&a.resid_mid).into(), (&mlp.out).into());
    add(rec, mid, out, (&mlp.resid_post).into(), rows * d).await?;
    edits
        .at(rec, &name("hook_resid_post"), &mlp.resid_post)
        .await
}

/// Scratch buffers of a backward pass, zeroed in its recording and given back to the pool
/// once it is submitted.
pub(super) struct Scratch<'g> {
    gpu: &'g crate::gpu::Gpu,
    pub keep: Vec<wgpu::Buffer>,
}

impl<'g> Scratch<'g> {
    pub fn new(gpu: &'g crate::gpu::Gpu) -> Self {
        Self { gpu, keep: vec![] }
    }

    /// A zeroed buffer of `n` floats (its index in [`Scratch::keep`]).
    pub fn zeroed(&mut self, rec: &mut Recording<'_>, what: &str, n: usize) -> Result<usize> {
        let b = self.gpu.storage_dirty::<f32>(what, n.max(1))?;
        rec.clear(&b, 0, None);
        self.keep.push(b);
        Ok(self.keep.len() - 1)
    }

    pub fn view(&self, i: usize) -> View<'_> {
        (&self.keep[i]).into()
    }
}

/// Records the block's backward pass: from `dresid` (the gradient at `hook_resid_post`, a
/// scratch index) the gradients of the block's parameters into `grads`; returns the scratch
/// index of the gradient at `hook_resid_pre`.
pub(super) async fn backward(
    rec: &mut Recording<'_>,
    (params, grads): (&Arena, &Arena),
    s: Shape,
    a: &BlockActs,
    scratch: &mut Scratch<'_>,
    mut dresid: usize,
) -> Result<usize> {
    let (rows, d, m) = (s.rows(), s.d_model, s.d_mlp);
    let (h, dh) = (s.attn.heads, s.attn.d_head);
    let name = |n: &str| s.name(n);
    if let Some(mlp) = &a.mlp {
        let dpost = scratch.zeroed(rec, "d post", rows * m)?;
        let w_out = (name("mlp.W_out"), name("mlp.b_out"));
        let (post, dr, dp) = (
            (&mlp.post).into(),
            scratch.view(dresid),
            scratch.view(dpost),
        );
        linear_backward(
            rec,
            grads,
            params,
            (&w_out.0, &w_out.1),
            post,
            dr,
            dp,
            (rows, m, d),
            false,
        )
        .await?;
        let dpre = scratch.zeroed(rec, "d pre", rows * m)?;
        match &mlp.mid {
            None => {
                let (g, dp) = (scratch.view(dpost), scratch.view(dpre));
                activation(rec, s.act, (&mlp.pre).into(), Some(g), dp, rows, m).await?;
            }
            Some((mid, stats)) => {
                let dmid = scratch.zeroed(rec, "d mid", rows * m)?;
                let (g, dm) = (scratch.view(dpost), scratch.view(dmid));
                let prefix = name("mlp.ln");
                let st = stats.into();
                ln_backward(
                    rec,
                    grads,
                    params,
                    &prefix,
                    mid.into(),
                    g,
                    st,
                    dm,
                    (rows, m),
                )
                .await?;
                let (g, dp) = (scratch.view(dmid), scratch.view(dpre));
                activation(rec, Act::Solu, (&mlp.pre).into(), Some(g), dp, rows, m).await?;
            }
        }
        let dx2 = scratch.zeroed(rec, "d ln2", rows * d)?;
        let w_in = (name("mlp.W_in"), name("mlp.b_in"));
        let (x2, dp, dx) = ((&mlp.ln2.out).into(), scratch.view(dpre), scratch.view(dx2));
        linear_backward(
            rec,
            grads,
            params,
            (&w_in.0, &w_in.1),
            x2,
            dp,
            dx,
            (rows, d, m),
            false,
        )
        .await?;
        let ln2 = (name("ln2"), &a.resid_mid, &mlp.ln2);
        let pg = (params, grads);
        dresid = back_through_ln(rec, pg, ln2, scratch, (dx2, dresid), (rows, d)).await?;
    }
    // Attention.
    let n = rows * h * dh;
    let dz = scratch.zeroed(rec, "d z", n)?;
    let w_o = (name("attn.W_O"), name("attn.b_O"));
    let (z, dr, dzv) = ((&a.z).into(), scratch.view(dresid), scratch.view(dz));
    linear_backward(
        rec,
        grads,
        params,
        (&w_o.0, &w_o.1),
        z,
        dr,
        dzv,
        (rows, h * dh, d),
        false,
    )
    .await?;
    let ds = scratch.zeroed(rec, "d scores", s.attn.batch * h * s.attn.pos * s.attn.pos)?;
    let dq = scratch.zeroed(rec, "d q", n)?;
    let dkv = scratch.zeroed(rec, "d k v", 2 * n)?;
    let t = AttentionBackward {
        q: (&a.q).into(),
        k: (&a.k).into(),
        v: (&a.v).into(),
        pattern: (&a.pattern).into(),
        dz: scratch.view(dz),
        ds: scratch.view(ds),
        dq: scratch.view(dq),
        dkv: scratch.view(dkv),
    };
    attention_backward(rec, s.attn, &t).await?;
    // k's and v's gradients as buffers of their own (the second half of dkv need not start at
    // a bindable offset).
    let (dk, dv) = (
        scratch.zeroed(rec, "d k", n)?,
        scratch.zeroed(rec, "d v", n)?,
    );
    let bytes = (n * 4) as u64;
    rec.copy(&scratch.keep[dkv], 0, &scratch.keep[dk], 0, bytes);
    rec.copy(&scratch.keep[dkv], bytes, &scratch.keep[dv], 0, bytes);
    let dx1 = scratch.zeroed(rec, "d ln1", rows * d)?;
    for (i, (which, g)) in [("Q", dq), ("K", dk), ("V", dv)].into_iter().enumerate() {
        let w = name(&format!("attn.W_{which}"));
        let t = HeadsBackward {
            x: (&a.ln1.out).into(),
            w: params.view(&w)?,
            dout: scratch.view(g),
            dx: scratch.view(dx1),
            dw: grads.view(&w)?,
            dbias: grads.view(&name(&format!("attn.b_{which}")))?,
            rows,
            d_in: d,
            heads: h,
            d_head: dh,
            accumulate: i > 0,
        };
        heads_backward(rec, &t).await?;
    }
    let ln1 = (name("ln1"), &a.resid_pre, &a.ln1);
    back_through_ln(rec, (params, grads), ln1, scratch, (dx1, dresid), (rows, d)).await
}

/// A branch's gradient back through the LayerNorm `(prefix, its input x, its activations)` at
/// its start (`rows` of `width`), added to the residual stream's gradient: from the scratch
/// indices of the gradient at the LayerNorm's output and of the residual stream's, the new
/// scratch index of the residual stream's gradient before the branch.
async fn back_through_ln(
    rec: &mut Recording<'_>,
    (params, grads): (&Arena, &Arena),
    (prefix, x, ln): (String, &wgpu::Buffer, &LnActs),
    scratch: &mut Scratch<'_>,
    (dy, dresid): (usize, usize),
    (rows, width): (usize, usize),
) -> Result<usize> {
    let n = rows * width;
    let dx = scratch.zeroed(rec, "d ln input", n)?;
    let (g, st, dxv) = (scratch.view(dy), (&ln.stats).into(), scratch.view(dx));
    ln_backward(
        rec,
        grads,
        params,
        &prefix,
        x.into(),
        g,
        st,
        dxv,
        (rows, width),
    )
    .await?;
    let sum = scratch.zeroed(rec, "d resid", n)?;
    let (a, b, out) = (scratch.view(dresid), scratch.view(dx), scratch.view(sum));
    add(rec, a, b, out, n).await?;
    Ok(sum)
}
