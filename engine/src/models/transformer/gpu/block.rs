//! One transformer block on the GPU, forward and backward, as a short list of kernel calls
//! over the block's activations ([`BlockActs`]): LayerNorm, the q/k/v projections, attention,
//! the output projection and the residual sum, then (unless attention-only) LayerNorm, the
//! MLP's two products around its activation (SoLU with its own LayerNorm) and the residual
//! sum. Each hook a forward pass writes goes through [`Edits::at`], so a replaced value is what
//! every later kernel reads.

use super::acts::{BlockActs, LnActs};
use super::edits::Edits;
use crate::error::Result;
use crate::gpu::{Arena, Recording, Tensor, TensorBuf};
use crate::kernels::activation::{activation, Act};
use crate::kernels::add::add;
use crate::kernels::attention::{attention, attention_backward, Attention, AttentionBackward};
use crate::kernels::heads::{heads, heads_backward, Heads, HeadsBackward};
use crate::kernels::layernorm::{layernorm, layernorm_backward, LayerNorm, LayerNormBackward};
use crate::kernels::linear::{linear, linear_backward};

/// A block as its passes need it: its layer, and the MLP's activation resolved once (SoLU's
/// LayerNorm is `solu`). The sizes are the tensors'.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub layer: usize,
    /// The MLP's activation: GeLU, GeLU-new, or SoLU (then its LayerNorm).
    pub act: Act,
}

impl Shape {
    fn name(&self, n: &str) -> String {
        format!("blocks.{}.{n}", self.layer)
    }
}

/// Records the LayerNorm of `x` with the arena's `{prefix}.w` and `.b` into `ln`'s output and
/// statistics.
pub(super) async fn ln_forward(
    rec: &mut Recording<'_>,
    params: &Arena,
    prefix: &str,
    x: Tensor<'_>,
    ln: (&TensorBuf, &TensorBuf),
) -> Result<()> {
    let (w, b) = (format!("{prefix}.w"), format!("{prefix}.b"));
    let t = LayerNorm {
        x,
        w: params.tensor(&w)?,
        b: params.tensor(&b)?,
        y: ln.0.t()?,
        stats: ln.1.t()?,
    };
    layernorm(rec, &t).await
}

/// A LayerNorm's backward, its weight's and bias's gradients into the gradient arena.
pub(super) async fn ln_backward(
    rec: &mut Recording<'_>,
    (params, grads): (&Arena, &Arena),
    prefix: &str,
    (x, stats): (Tensor<'_>, Tensor<'_>),
    dy: Tensor<'_>,
    dx: Tensor<'_>,
) -> Result<()> {
    let (w, b) = (format!("{prefix}.w"), format!("{prefix}.b"));
    let t = LayerNormBackward {
        x,
        w: params.tensor(&w)?,
        dy,
        stats,
        dx,
        dw: grads.tensor(&w)?,
        db: grads.tensor(&b)?,
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
    let name = |n: &str| s.name(n);
    ln_forward(rec, params, &name("ln1"), a.resid_pre.t()?, a.ln1.pair()).await?;
    for (which, out) in [("Q", &a.q), ("K", &a.k), ("V", &a.v)] {
        let t = Heads {
            x: a.ln1.out.t()?,
            w: params.tensor(&name(&format!("attn.W_{which}")))?,
            bias: params.tensor(&name(&format!("attn.b_{which}")))?,
            out: out.t()?,
        };
        heads(rec, &t).await?;
        let hook = format!("attn.hook_{}", which.to_lowercase());
        edits.at(rec, &name(&hook), out).await?;
    }
    let t = Attention {
        q: a.q.t()?,
        k: a.k.t()?,
        v: a.v.t()?,
        scores: a.scores.t()?,
        pattern: a.pattern.t()?,
        z: a.z.t()?,
    };
    attention(rec, &t).await?;
    edits.at(rec, &name("attn.hook_z"), &a.z).await?;
    let w_o = (name("attn.W_O"), name("attn.b_O"));
    linear(rec, params, (&w_o.0, &w_o.1), a.z.t()?, a.attn_out.t()?).await?;
    edits.at(rec, &name("hook_attn_out"), &a.attn_out).await?;
    add(rec, a.resid_pre.t()?, a.attn_out.t()?, a.resid_mid.t()?).await?;
    let Some(mlp) = &a.mlp else {
        return edits.at(rec, &name("hook_resid_post"), &a.resid_mid).await;
    };
    edits.at(rec, &name("hook_resid_mid"), &a.resid_mid).await?;
    ln_forward(rec, params, &name("ln2"), a.resid_mid.t()?, mlp.ln2.pair()).await?;
    let w_in = (name("mlp.W_in"), name("mlp.b_in"));
    linear(
        rec,
        params,
        (&w_in.0, &w_in.1),
        mlp.ln2.out.t()?,
        mlp.pre.t()?,
    )
    .await?;
    edits.at(rec, &name("mlp.hook_pre"), &mlp.pre).await?;
    match &mlp.mid {
        None => activation(rec, s.act, mlp.pre.t()?, None, mlp.post.t()?).await?,
        Some((mid, stats)) => {
            activation(rec, Act::Solu, mlp.pre.t()?, None, mid.t()?).await?;
            edits.at(rec, &name("mlp.hook_mid"), mid).await?;
            let ln = (&mlp.post, stats);
            ln_forward(rec, params, &name("mlp.ln"), mid.t()?, ln).await?;
        }
    }
    edits.at(rec, &name("mlp.hook_post"), &mlp.post).await?;
    let w_out = (name("mlp.W_out"), name("mlp.b_out"));
    linear(
        rec,
        params,
        (&w_out.0, &w_out.1),
        mlp.post.t()?,
        mlp.out.t()?,
    )
    .await?;
    edits.at(rec, &name("hook_mlp_out"), &mlp.out).await?;
    add(rec, a.resid_mid.t()?, mlp.out.t()?, mlp.resid_post.t()?).await?;
    edits
        .at(rec, &name("hook_resid_post"), &mlp.resid_post)
        .await
}

/// Scratch tensors of a backward pass, zeroed in its recording and given back to the pool
/// once it is submitted.
pub(super) struct Scratch<'g> {
    gpu: &'g crate::gpu::Gpu,
    pub keep: Vec<TensorBuf>,
}

impl<'g> Scratch<'g> {
    pub fn new(gpu: &'g crate::gpu::Gpu) -> Self {
        Self { gpu, keep: vec![] }
    }

    /// A zeroed tensor of `dims` (its index in [`Scratch::keep`]).
    pub fn zeroed(
        &mut self,
        rec: &mut Recording<'_>,
        what: &'static str,
        dims: &[usize],
    ) -> Result<usize> {
        let b = TensorBuf::dirty(self.gpu, what, dims)?;
        rec.clear(&b.buffer, 0, None);
        self.keep.push(b);
        Ok(self.keep.len() - 1)
    }

    /// Scratch tensor `i`, to bind.
    pub fn t(&self, i: usize) -> Result<Tensor<'_>> {
        self.keep[i].t()
    }
}

/// Records the block's backward pass: from `dresid` (the gradient at `hook_resid_post`, a
/// scratch index) the gradients of the block's parameters into `grads`; returns the scratch
/// index of the gradient at `hook_resid_pre`.
pub(super) async fn backward(
    rec: &mut Recording<'_>,
    pg: (&Arena, &Arena),
    s: Shape,
    a: &BlockActs,
    scratch: &mut Scratch<'_>,
    mut dresid: usize,
) -> Result<usize> {
    let (params, grads) = pg;
    let name = |n: &str| s.name(n);
    let resid = a.resid_pre.dims();
    if let Some(mlp) = &a.mlp {
        let dpost = scratch.zeroed(rec, "d post", mlp.post.dims())?;
        let w_out = (name("mlp.W_out"), name("mlp.b_out"));
        let (dr, dp) = (scratch.t(dresid)?, scratch.t(dpost)?);
        let w = (w_out.0.as_str(), w_out.1.as_str());
        linear_backward(rec, grads, params, w, mlp.post.t()?, dr, dp, false).await?;
        let dpre = scratch.zeroed(rec, "d pre", mlp.pre.dims())?;
        match &mlp.mid {
            None => {
                let (g, dp) = (scratch.t(dpost)?, scratch.t(dpre)?);
                activation(rec, s.act, mlp.pre.t()?, Some(g), dp).await?;
            }
            Some((mid, stats)) => {
                let dmid = scratch.zeroed(rec, "d mid", mid.dims())?;
                let (g, dm) = (scratch.t(dpost)?, scratch.t(dmid)?);
                let prefix = name("mlp.ln");
                ln_backward(rec, pg, &prefix, (mid.t()?, stats.t()?), g, dm).await?;
                let (g, dp) = (scratch.t(dmid)?, scratch.t(dpre)?);
                activation(rec, Act::Solu, mlp.pre.t()?, Some(g), dp).await?;
            }
        }
        let dx2 = scratch.zeroed(rec, "d ln2", resid)?;
        let w_in = (name("mlp.W_in"), name("mlp.b_in"));
        let (dp, dx) = (scratch.t(dpre)?, scratch.t(dx2)?);
        let w = (w_in.0.as_str(), w_in.1.as_str());
        linear_backward(rec, grads, params, w, mlp.ln2.out.t()?, dp, dx, false).await?;
        let ln2 = (name("ln2"), &a.resid_mid, &mlp.ln2);
        dresid = back_through_ln(rec, pg, ln2, scratch, (dx2, dresid)).await?;
    }
    // Attention.
    let heads_dims = a.q.dims();
    let dz = scratch.zeroed(rec, "d z", heads_dims)?;
    let w_o = (name("attn.W_O"), name("attn.b_O"));
    let (dr, dzv) = (scratch.t(dresid)?, scratch.t(dz)?);
    let w = (w_o.0.as_str(), w_o.1.as_str());
    linear_backward(rec, grads, params, w, a.z.t()?, dr, dzv, false).await?;
    let ds = scratch.zeroed(rec, "d scores", a.scores.dims())?;
    let dq = scratch.zeroed(rec, "d q", heads_dims)?;
    let two: Vec<usize> = [2].iter().chain(heads_dims).copied().collect();
    let dkv = scratch.zeroed(rec, "d k v", &two)?;
    let t = AttentionBackward {
        q: a.q.t()?,
        k: a.k.t()?,
        v: a.v.t()?,
        pattern: a.pattern.t()?,
        dz: scratch.t(dz)?,
        ds: scratch.t(ds)?,
        dq: scratch.t(dq)?,
        dkv: scratch.t(dkv)?,
    };
    attention_backward(rec, &t).await?;
    // k's and v's gradients as buffers of their own (the second half of dkv need not start at
    // a bindable offset).
    let (dk, dv) = (
        scratch.zeroed(rec, "d k", heads_dims)?,
        scratch.zeroed(rec, "d v", heads_dims)?,
    );
    let bytes = a.q.len() as u64 * 4;
    let buf = |i: usize| &scratch.keep[i].buffer;
    rec.copy(buf(dkv), 0, buf(dk), 0, bytes);
    rec.copy(buf(dkv), bytes, buf(dv), 0, bytes);
    let dx1 = scratch.zeroed(rec, "d ln1", resid)?;
    for (i, (which, g)) in [("Q", dq), ("K", dk), ("V", dv)].into_iter().enumerate() {
        let w = name(&format!("attn.W_{which}"));
        let t = HeadsBackward {
            x: a.ln1.out.t()?,
            w: params.tensor(&w)?,
            dout: scratch.t(g)?,
            dx: scratch.t(dx1)?,
            dw: grads.tensor(&w)?,
            dbias: grads.tensor(&name(&format!("attn.b_{which}")))?,
            accumulate: i > 0,
        };
        heads_backward(rec, &t).await?;
    }
    let ln1 = (name("ln1"), &a.resid_pre, &a.ln1);
    back_through_ln(rec, pg, ln1, scratch, (dx1, dresid)).await
}

/// A branch's gradient back through the LayerNorm `(prefix, its input x, its activations)` at
/// its start, added to the residual stream's gradient: from the scratch indices of the
/// gradient at the LayerNorm's output and of the residual stream's, the new scratch index of
/// the residual stream's gradient before the branch.
async fn back_through_ln(
    rec: &mut Recording<'_>,
    pg: (&Arena, &Arena),
    (prefix, x, ln): (String, &TensorBuf, &LnActs),
    scratch: &mut Scratch<'_>,
    (dy, dresid): (usize, usize),
) -> Result<usize> {
    let dx = scratch.zeroed(rec, "d ln input", x.dims())?;
    let (g, dxv) = (scratch.t(dy)?, scratch.t(dx)?);
    ln_backward(rec, pg, &prefix, (x.t()?, ln.stats.t()?), g, dxv).await?;
    let sum = scratch.zeroed(rec, "d resid", x.dims())?;
    let (a, b, out) = (scratch.t(dresid)?, scratch.t(dx)?, scratch.t(sum)?);
    add(rec, a, b, out).await?;
    Ok(sum)
}
