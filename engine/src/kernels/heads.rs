//! Per-head projections (host of `shaders/heads.wgsl`): `out[r, h, e] = Σ_m x[r, m] · w[h, m,
//! e] + bias[h, e]`, TransformerLens's W_Q, W_K and W_V `[n_heads, d_model, d_head]` applied to
//! a `[rows, d_model]` input, giving hook_q|k|v's `[rows, n_heads, d_head]`. [`heads_ref`] is its
//! CPU reference.

use super::{dim, elements, params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};

const HEADS_WGSL: &str = include_str!("../../../shaders/heads.wgsl");

/// The tensors of [`heads`].
#[derive(Clone, Copy)]
pub struct Heads<'a> {
    /// Input `[rows, d_in]`.
    pub x: View<'a>,
    /// Weights `[heads, d_in, d_head]`.
    pub w: View<'a>,
    /// Bias `[heads, d_head]`.
    pub bias: View<'a>,
    /// Output `[rows, heads, d_head]` (written).
    pub out: View<'a>,
    /// Rows.
    pub rows: usize,
    /// Input width.
    pub d_in: usize,
    /// Heads.
    pub heads: usize,
    /// Each head's width.
    pub d_head: usize,
}

/// Records the projection, an invocation an output element.
pub async fn heads(rec: &mut Recording<'_>, t: &Heads<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, d, h, e) = (
        dim("rows", t.rows)?,
        dim("d_model", t.d_in)?,
        dim("n_heads", t.heads)?,
        dim("d_head", t.d_head)?,
    );
    Tensor::new(gpu, "x", t.x, &[r, d])?;
    Tensor::new(gpu, "w", t.w, &[h, d, e])?;
    Tensor::new(gpu, "bias", t.bias, &[h, e])?;
    Tensor::new(gpu, "out", t.out, &[r, h, e])?;
    let n = elements("out", &[r, h, e])?;
    let storage = vec![t.x, t.w, t.bias, t.out];
    let kern = Kernel::new(gpu, "heads", "", HEADS_WGSL, storage, &[]).await?;
    kern.dispatch(rec, "heads_forward", params(&[r, d, h, e]), n.div_ceil(256))
        .await
}

/// CPU reference of [`heads`].
pub fn heads_ref(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    d_in: usize,
    heads: usize,
    d_head: usize,
) -> Vec<f32> {
    let rows = x.len() / d_in;
    let mut out = vec![0f32; rows * heads * d_head];
    for r in 0..rows {
        for h in 0..heads {
            for e in 0..d_head {
                let mut s = 0f32;
                for m in 0..d_in {
                    s += x[r * d_in + m] * w[(h * d_in + m) * d_head + e];
                }
                out[(r * heads + h) * d_head + e] = s + bias[h * d_head + e];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;
    use crate::testing::assert_close;

    async fn matches_reference(gpu: &Gpu) {
        for (rows, d, h, e) in [(1, 1, 1, 1), (7, 13, 3, 5), (300, 16, 4, 8)] {
            let (x, w, b) = (values(1, rows * d), values(2, h * d * e), values(3, h * e));
            let bx = gpu.storage_from("x", &x).unwrap();
            let bw = gpu.storage_from("w", &w).unwrap();
            let bb = gpu.storage_from("b", &b).unwrap();
            let out = gpu.storage_zeroed::<f32>("out", rows * h * e).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let t = Heads {
                    x: (&bx).into(),
                    w: (&bw).into(),
                    bias: (&bb).into(),
                    out: (&out).into(),
                    rows,
                    d_in: d,
                    heads: h,
                    d_head: e,
                };
                heads(rec, &t).await
            })
            .await;
            let got: Vec<f32> = gpu.read(&out, rows * h * e).await.unwrap();
            let what = format!("heads {rows} × {d} → {h} × {e}");
            // The same order of adds as the reference; fused multiply-adds may differ.
            assert_close(&what, &got, &heads_ref(&x, &w, &b, d, h, e), 1e-5, 1e-5);
        }
    }
    gpu_test!(gpu_head_projection_matches_reference, matches_reference);
}
