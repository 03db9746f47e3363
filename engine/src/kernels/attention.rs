//! Causal multi-head attention, forward and backward (host of `shaders/attention.wgsl` and
//! `shaders/attention_backward.wgsl`), on queries, keys and values in TransformerLens's layout
//! `[batch, pos, head, d_head]`: scores and pattern `[batch, head, query, key]` (masked scores
//! −∞, as TransformerLens's `hook_attn_scores`), z in the queries' layout. [`attention_ref`] and
//! [`attention_backward_ref`] are the CPU references, which the transformer's CPU passes use.
//!
//! Every product (q·kᵀ, pattern·v and the backward's four) is one batched tiled product over
//! all (batch, head) pairs ([`matmul_laid_out`]), reading each head's `[pos, d_head]` matrix in
//! place; the row steps between them (scale, mask and softmax; the scores' gradient) are this
//! module's kernels.
//!
//! The forward keeps the whole pattern (the backward reads it, and hooks expose it): batch ×
//! heads × pos² floats, which the caller sizes against the device's binding limit.

use super::matmul::{matmul_laid_out, Layout, Matmul, Strided};
use super::{dim, elements, params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};

const FORWARD_WGSL: &str = include_str!("../../../shaders/attention.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../../shaders/attention_backward.wgsl");

/// The shape of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Sequences.
    pub batch: usize,
    /// Positions per sequence.
    pub pos: usize,
    /// Heads.
    pub heads: usize,
    /// Width of each head.
    pub d_head: usize,
}

impl AttnShape {
    fn dims(&self) -> Result<[u32; 4]> {
        Ok([
            dim("batch", self.batch)?,
            dim("pos", self.pos)?,
            dim("n_heads", self.heads)?,
            dim("d_head", self.d_head)?,
        ])
    }

    /// (Batch, head) pair t's `[pos, d_head]` matrix inside a `[batch, pos, head, d_head]`
    /// tensor that starts at `base`: rows heads · d_head apart, pairs grouped by batch.
    fn head(&self, base: usize) -> Strided {
        Strided {
            base,
            group_stride: self.pos * self.heads * self.d_head,
            item_stride: self.d_head,
            ..Strided::split(self.heads * self.d_head, self.d_head, 0)
        }
    }

    /// Pair t's `[pos, pos]` square in scores, pattern and their gradient.
    fn square(&self) -> Strided {
        Strided {
            group_stride: self.heads * self.pos * self.pos,
            item_stride: self.pos * self.pos,
            ..Strided::rows(self.pos)
        }
    }

    /// A product for every (batch, head) pair, its operands laid out as given.
    fn pairs(&self, a: Strided, b: Strided, c: Strided) -> Layout {
        Layout {
            a: Some(a),
            b: Some(b),
            c: Some(c),
            count: self.batch * self.heads,
            group: self.heads,
        }
    }

    fn params(&self) -> Result<super::Params> {
        let [b, p, h, d] = self.dims()?;
        Ok(params(&[
            b,
            p,
            h,
            d,
            (1.0 / (d as f32).sqrt()).to_bits(),
            0,
        ]))
    }
}

/// The tensors of [`attention`].
#[derive(Clone, Copy)]
pub struct Attention<'a> {
    /// Queries, keys and values `[batch, pos, head, d_head]`.
    pub q: Tensor<'a>,
    /// Keys.
    pub k: Tensor<'a>,
    /// Values.
    pub v: Tensor<'a>,
    /// Scores `[batch, head, pos, pos]` (written).
    pub scores: Tensor<'a>,
    /// Pattern `[batch, head, pos, pos]` (written).
    pub pattern: Tensor<'a>,
    /// z `[batch, pos, head, d_head]` (written).
    pub z: Tensor<'a>,
}

impl AttnShape {
    /// The shape of queries `[batch, pos, head, d_head]`, with `same` (keys, values, z, their
    /// gradients) checked to be theirs and `squares` (scores, pattern) `[batch, head, pos,
    /// pos]`.
    fn of(q: &Tensor<'_>, same: &[Tensor<'_>], squares: &[Tensor<'_>]) -> Result<Self> {
        let [b, p, h, d] = q.shape()?;
        for t in same {
            t.expect(&[b, p, h, d])?;
        }
        for t in squares {
            t.expect(&[b, h, p, p])?;
        }
        let [batch, pos, heads, d_head] = [b, p, h, d].map(|v| v as usize);
        Ok(Self {
            batch,
            pos,
            heads,
            d_head,
        })
    }
}

/// A product of one (batch, head) pair's operands: `c = op(a) · op(b)`, `[m, k] · [k, n]`.
fn pair_product<'a>(
    (a, b, c): (View<'a>, View<'a>, View<'a>),
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
) -> Matmul<'a> {
    Matmul {
        a,
        b,
        c,
        m,
        n,
        k,
        trans_a,
        trans_b,
        bias: None,
        centre: None,
        accumulate: false,
    }
}

/// Records the forward: q·kᵀ for every (batch, head) pair in one product, each row scaled,
/// masked and soft-maxed by a segment of a workgroup, then pattern · v in one product.
pub async fn attention(rec: &mut Recording<'_>, t: &Attention<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let s = AttnShape::of(&t.q, &[t.k, t.v, t.z], &[t.scores, t.pattern])?;
    let [b, p, h, _] = s.dims()?;
    let (pos, e) = (s.pos, s.d_head);
    let (head, square) = (s.head(0), s.square());
    let qk = s.pairs(head, head, square);
    let mm = pair_product(
        (t.q.view, t.k.view, t.scores.view),
        (pos, pos, e),
        (false, true),
    );
    matmul_laid_out(rec, &mm, &qk).await?;
    let storage = vec![t.scores.view, t.pattern.view];
    let kern = Kernel::new(gpu, "attention", "", FORWARD_WGSL, storage, &[]).await?;
    let n_rows = elements("pattern rows", &[b, h, p])?;
    let groups = n_rows.div_ceil(super::seg_rows(gpu));
    kern.dispatch(rec, "attn_softmax", s.params()?, groups)
        .await?;
    let pv = s.pairs(square, head, head);
    let mm = pair_product(
        (t.pattern.view, t.v.view, t.z.view),
        (pos, e, pos),
        (false, false),
    );
    matmul_laid_out(rec, &mm, &pv).await
}

/// The tensors of [`attention_backward`].
#[derive(Clone, Copy)]
pub struct AttentionBackward<'a> {
    /// The forward's queries, keys and values.
    pub q: Tensor<'a>,
    /// Keys.
    pub k: Tensor<'a>,
    /// Values.
    pub v: Tensor<'a>,
    /// The forward's pattern.
    pub pattern: Tensor<'a>,
    /// The gradient at z.
    pub dz: Tensor<'a>,
    /// Scratch `[batch, head, pos, pos]`: the gradient at the scores.
    pub ds: Tensor<'a>,
    /// The gradient at q (written).
    pub dq: Tensor<'a>,
    /// The gradients at k, then v: `[2, batch, pos, head, d_head]` (written).
    pub dkv: Tensor<'a>,
}

/// Records the backward: dP = dz · vᵀ for every pair in one product, each row's dS by a
/// segment of a workgroup, then dq = dS · k, dk = dSᵀ · q and dv = Pᵀ · dz, a product each.
pub async fn attention_backward(rec: &mut Recording<'_>, t: &AttentionBackward<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let s = AttnShape::of(&t.q, &[t.k, t.v, t.dz, t.dq], &[t.pattern, t.ds])?;
    let [b, p, h, d] = s.dims()?;
    t.dkv.expect(&[2, b, p, h, d])?;
    let (pos, e) = (s.pos, s.d_head);
    let (head, square) = (s.head(0), s.square());
    // dP = dz · vᵀ, into ds.
    let lay = s.pairs(head, head, square);
    let mm = pair_product(
        (t.dz.view, t.v.view, t.ds.view),
        (pos, pos, e),
        (false, true),
    );
    matmul_laid_out(rec, &mm, &lay).await?;
    let storage = vec![t.pattern.view, t.ds.view];
    let kern = Kernel::new(gpu, "attention_backward", "", BACKWARD_WGSL, storage, &[]).await?;
    let n_rows = elements("pattern rows", &[b, h, p])?;
    kern.dispatch(
        rec,
        "attn_backward_ds",
        s.params()?,
        n_rows.div_ceil(super::seg_rows(gpu)),
    )
    .await?;
    // dq = dS · k; dk = dSᵀ · q and dv = Pᵀ · dz, the two halves of dkv.
    let square_by_head = s.pairs(square, head, head);
    let mm = pair_product(
        (t.ds.view, t.k.view, t.dq.view),
        (pos, e, pos),
        (false, false),
    );
    matmul_laid_out(rec, &mm, &square_by_head).await?;
    let n = t.q.len as usize;
    for (a, bv, base) in [(t.ds, t.q, 0), (t.pattern, t.dz, n)] {
        let lay = s.pairs(square, head, s.head(base));
        let mm = pair_product((a.view, bv.view, t.dkv.view), (pos, e, pos), (true, false));
        matmul_laid_out(rec, &mm, &lay).await?;
    }
    Ok(())
}

/// Where head `h`'s vector at `(b, p)` starts.
fn vec_at(s: &AttnShape, b: usize, p: usize, h: usize) -> usize {
    ((b * s.pos + p) * s.heads + h) * s.d_head
}

/// CPU reference of [`attention`]: `(scores, pattern, z)`.
pub fn attention_ref(
    s: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (pos, dh) = (s.pos, s.d_head);
    let scale = (dh as f32).sqrt();
    let mut scores = vec![f32::NEG_INFINITY; s.batch * s.heads * pos * pos];
    let mut pattern = vec![0f32; scores.len()];
    let mut z = vec![0f32; q.len()];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..pos {
                let row = ((b * s.heads + h) * pos + i) * pos;
                let qi = vec_at(&s, b, i, h);
                for j in 0..=i {
                    let kj = vec_at(&s, b, j, h);
                    let mut d = 0f32;
                    for e in 0..dh {
                        d += q[qi + e] * k[kj + e];
                    }
                    scores[row + j] = d / scale;
                }
                let max = scores[row..=row + i]
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                let sum: f32 = scores[row..=row + i].iter().map(|x| (x - max).exp()).sum();
                for j in 0..=i {
                    pattern[row + j] = (scores[row + j] - max).exp() / sum;
                }
                for e in 0..dh {
                    let mut acc = 0f32;
                    for j in 0..=i {
                        acc += pattern[row + j] * v[vec_at(&s, b, j, h) + e];
                    }
                    z[qi + e] = acc;
                }
            }
        }
    }
    (scores, pattern, z)
}

/// CPU reference of [`attention_backward`]: `(dq, dk, dv)`.
pub fn attention_backward_ref(
    s: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pattern: &[f32],
    dz: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (pos, dh) = (s.pos, s.d_head);
    let scale = (dh as f32).sqrt();
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; q.len()],
        vec![0f32; q.len()],
    );
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..pos {
                let row = ((b * s.heads + h) * pos + i) * pos;
                let zi = vec_at(&s, b, i, h);
                let dp: Vec<f32> = (0..=i)
                    .map(|j| {
                        let vj = vec_at(&s, b, j, h);
                        (0..dh).map(|e| dz[zi + e] * v[vj + e]).sum()
                    })
                    .collect();
                let dot: f32 = (0..=i).map(|j| pattern[row + j] * dp[j]).sum();
                for j in 0..=i {
                    let ds = pattern[row + j] * (dp[j] - dot) / scale;
                    let kj = vec_at(&s, b, j, h);
                    for e in 0..dh {
                        dq[zi + e] += ds * k[kj + e];
                        dk[kj + e] += ds * q[zi + e];
                        dv[kj + e] += pattern[row + j] * dz[zi + e];
                    }
                }
            }
        }
    }
    (dq, dk, dv)
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::testing::assert_close;

    /// Equal infinities agree; finite values to `atol + rtol |reference|`.
    fn close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
        let mask = |v: &[f32]| {
            v.iter()
                .map(|x| if x.is_finite() { *x } else { 0.0 })
                .collect::<Vec<_>>()
        };
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.is_finite(), w.is_finite(), "{what}[{i}]: {g} vs {w}");
        }
        assert_close(what, &mask(got), &mask(want), atol, rtol);
    }

    async fn forward_and_backward(gpu: &Gpu) {
        // One position; odd sizes and rows that fill no whole workgroup; more positions than a
        // workgroup has invocations; heads wider than a row's segment.
        for s in [
            AttnShape {
                batch: 1,
                pos: 1,
                heads: 1,
                d_head: 1,
            },
            AttnShape {
                batch: 2,
                pos: 9,
                heads: 3,
                d_head: 5,
            },
            AttnShape {
                batch: 1,
                pos: 300,
                heads: 2,
                d_head: 8,
            },
            AttnShape {
                batch: 1,
                pos: 11,
                heads: 1,
                d_head: 40,
            },
        ] {
            let n = s.batch * s.pos * s.heads * s.d_head;
            let np = s.batch * s.heads * s.pos * s.pos;
            let (q, k, v, dz) = (values(1, n), values(2, n), values(3, n), values(4, n));
            let up = |name: &str, x: &[f32]| gpu.storage_from(name, x).unwrap();
            let (bq, bk, bv, bdz) = (up("q", &q), up("k", &k), up("v", &v), up("dz", &dz));
            let z0 = |name: &str, len: usize| gpu.storage_zeroed::<f32>(name, len).unwrap();
            let (scores, pattern, z) = (z0("scores", np), z0("pattern", np), z0("z", n));
            let (ds, dq, dkv) = (z0("ds", np), z0("dq", n), z0("dkv", 2 * n));
            let qs = [s.batch, s.pos, s.heads, s.d_head];
            let sq = [s.batch, s.heads, s.pos, s.pos];
            record(gpu, async |rec: &mut Recording<'_>| {
                let (q, k, v) = (t(&bq, "q", &qs), t(&bk, "k", &qs), t(&bv, "v", &qs));
                let pattern = t(&pattern, "pattern", &sq);
                let f = Attention {
                    q,
                    k,
                    v,
                    scores: t(&scores, "scores", &sq),
                    pattern,
                    z: t(&z, "z", &qs),
                };
                attention(rec, &f).await?;
                let bw = AttentionBackward {
                    q,
                    k,
                    v,
                    pattern,
                    dz: t(&bdz, "dz", &qs),
                    ds: t(&ds, "ds", &sq),
                    dq: t(&dq, "dq", &qs),
                    dkv: t(&dkv, "dkv", &[2, s.batch, s.pos, s.heads, s.d_head]),
                };
                attention_backward(rec, &bw).await
            })
            .await;
            let (ws, wp, wz) = attention_ref(s, &q, &k, &v);
            let (wdq, wdk, wdv) = attention_backward_ref(s, &q, &k, &v, &wp, &dz);
            let what = |n: &str| format!("{n} {s:?}");
            let read = |b: &wgpu::Buffer, len: usize| (b.clone(), len);
            for (name, (buf, len), want) in [
                ("scores", read(&scores, np), &ws),
                ("pattern", read(&pattern, np), &wp),
                ("z", read(&z, n), &wz),
                ("dq", read(&dq, n), &wdq),
            ] {
                let got: Vec<f32> = gpu.read(&buf, len).await.unwrap();
                close(&what(name), &got, want, 1e-5, 1e-4);
            }
            let got: Vec<f32> = gpu.read(&dkv, 2 * n).await.unwrap();
            close(&what("dk"), &got[..n], &wdk, 1e-5, 1e-4);
            close(&what("dv"), &got[n..], &wdv, 1e-5, 1e-4);
        }
    }
    crate::gpu_rows_test!(
        gpu_attention_forward_and_backward_match_reference,
        forward_and_backward
    );
}
