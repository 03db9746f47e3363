//! Causal multi-head attention, forward and backward (host of `shaders/attention.wgsl` and
//! `shaders/attention_backward.wgsl`), on queries, keys and values in TransformerLens's layout
//! `[batch, pos, head, d_head]`: scores and pattern `[batch, head, query, key]` (masked scores
//! −∞, as TransformerLens's `hook_attn_scores`), z in the queries' layout. [`attention_ref`] and
//! [`attention_backward_ref`] are the CPU references, which the transformer's CPU passes use.
//!
//! The forward keeps the whole pattern (the backward reads it, and hooks expose it): batch ×
//! heads × pos² floats, which the caller sizes against the device's binding limit.

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
    pub q: View<'a>,
    /// Keys.
    pub k: View<'a>,
    /// Values.
    pub v: View<'a>,
    /// Scores `[batch, head, pos, pos]` (written).
    pub scores: View<'a>,
    /// Pattern `[batch, head, pos, pos]` (written).
    pub pattern: View<'a>,
    /// z `[batch, pos, head, d_head]` (written).
    pub z: View<'a>,
}

/// Records the forward: a segment of a workgroup a (batch, head, query) row.
pub async fn attention(rec: &mut Recording<'_>, s: AttnShape, t: &Attention<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let [b, p, h, d] = s.dims()?;
    for (name, v) in [("q", t.q), ("k", t.k), ("v", t.v), ("z", t.z)] {
        Tensor::new(gpu, name, v, &[b, p, h, d])?;
    }
    for (name, v) in [("scores", t.scores), ("pattern", t.pattern)] {
        Tensor::new(gpu, name, v, &[b, h, p, p])?;
    }
    let storage = vec![t.q, t.k, t.v, t.scores, t.pattern, t.z];
    let kern = Kernel::new(gpu, "attention", "", FORWARD_WGSL, storage, &[]).await?;
    let rows = elements("pattern rows", &[b, h, p])?;
    let groups = rows.div_ceil(super::SEG_ROWS);
    kern.dispatch(rec, "attn_forward", s.params()?, groups)
        .await
}

/// The tensors of [`attention_backward`].
#[derive(Clone, Copy)]
pub struct AttentionBackward<'a> {
    /// The forward's queries, keys and values.
    pub q: View<'a>,
    /// Keys.
    pub k: View<'a>,
    /// Values.
    pub v: View<'a>,
    /// The forward's pattern.
    pub pattern: View<'a>,
    /// The gradient at z.
    pub dz: View<'a>,
    /// Scratch `[batch, head, pos, pos]`: the gradient at the scores.
    pub ds: View<'a>,
    /// The gradient at q (written).
    pub dq: View<'a>,
    /// The gradients at k, then v: `[2, batch, pos, head, d_head]` (written).
    pub dkv: View<'a>,
}

/// Records the backward: the scores' gradient a row a workgroup, then dq, dk and dv an
/// element an invocation.
pub async fn attention_backward(
    rec: &mut Recording<'_>,
    s: AttnShape,
    t: &AttentionBackward<'_>,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let [b, p, h, d] = s.dims()?;
    for (name, v) in [
        ("q", t.q),
        ("k", t.k),
        ("v", t.v),
        ("dz", t.dz),
        ("dq", t.dq),
    ] {
        Tensor::new(gpu, name, v, &[b, p, h, d])?;
    }
    Tensor::new(gpu, "dkv", t.dkv, &[2, b, p, h, d])?;
    for (name, v) in [("pattern", t.pattern), ("ds", t.ds)] {
        Tensor::new(gpu, name, v, &[b, h, p, p])?;
    }
    let storage = vec![t.q, t.k, t.v, t.pattern, t.dz, t.ds, t.dq, t.dkv];
    let kern = Kernel::new(gpu, "attention_backward", "", BACKWARD_WGSL, storage, &[]).await?;
    let rows = elements("pattern rows", &[b, h, p])?;
    let n = elements("q", &[b, p, h, d])?;
    let prm = s.params()?;
    kern.dispatch(
        rec,
        "attn_backward_scores",
        prm,
        rows.div_ceil(super::SEG_ROWS),
    )
    .await?;
    kern.dispatch(rec, "attn_backward_q", prm, n.div_ceil(256))
        .await?;
    kern.dispatch(rec, "attn_backward_kv", prm, n.div_ceil(256))
        .await
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
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;
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
            record(gpu, async |rec: &mut Recording<'_>| {
                let f = Attention {
                    q: (&bq).into(),
                    k: (&bk).into(),
                    v: (&bv).into(),
                    scores: (&scores).into(),
                    pattern: (&pattern).into(),
                    z: (&z).into(),
                };
                attention(rec, s, &f).await?;
                let bw = AttentionBackward {
                    q: (&bq).into(),
                    k: (&bk).into(),
                    v: (&bv).into(),
                    pattern: (&pattern).into(),
                    dz: (&bdz).into(),
                    ds: (&ds).into(),
                    dq: (&dq).into(),
                    dkv: (&dkv).into(),
                };
                attention_backward(rec, s, &bw).await
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
    gpu_test!(
        gpu_attention_forward_and_backward_match_reference,
        forward_and_backward
    );
}
