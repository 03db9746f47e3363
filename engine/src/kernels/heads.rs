//! Per-head projections: `out[r, h, e] = Σ_m x[r, m] · w[h, m, e] + bias[h, e]`,
//! TransformerLens's W_Q, W_K and W_V `[n_heads, d_model, d_head]` applied to a `[rows,
//! d_model]` input, giving hook_q|k|v's `[rows, n_heads, d_head]`. Every head at once is one
//! tiled product (`shaders/matmul.wgsl` through [`matmul_laid_out`]), reading the weights in place
//! as a `[d_model, n_heads · d_head]` matrix; the bias gradient is a column sum
//! ([`sum_rows`]). [`heads_ref`] and [`heads_backward_ref`] are the CPU references.

use super::matmul::{matmul_laid_out, Layout, Matmul, Strided};
use super::sum_rows::sum_rows;
use crate::error::Result;
use crate::gpu::{Recording, Tensor};

/// The weights `[heads, d_in, d_head]` as a `[d_in, heads · d_head]` matrix (outer index
/// m, inner (h, e)).
fn per_head(d_in: usize, d_head: usize) -> Strided {
    Strided::split(d_head, d_head, d_in * d_head)
}

/// The tensors of [`heads`].
#[derive(Clone, Copy)]
pub struct Heads<'a> {
    /// Input `[rows, d_in]`.
    pub x: Tensor<'a>,
    /// Weights `[heads, d_in, d_head]`.
    pub w: Tensor<'a>,
    /// Bias `[heads, d_head]`.
    pub bias: Tensor<'a>,
    /// Output `[rows, heads, d_head]` (written).
    pub out: Tensor<'a>,
}

/// The projection's sizes `(rows, d_in, heads, d_head)` from its input and weights, with its
/// output (or the gradient at it) checked against them.
fn sizes(x: &Tensor<'_>, w: &Tensor<'_>, out: &Tensor<'_>) -> Result<[usize; 4]> {
    let (rows, d_in) = x.matrix();
    let [h, _, e] = w.shape()?;
    w.expect(&[h, d_in, e])?;
    out.expect_matrix(rows, h * e)?;
    Ok([rows, d_in, h, e].map(|v| v as usize))
}

/// Records the projection: one product over all heads.
pub async fn heads(rec: &mut Recording<'_>, t: &Heads<'_>) -> Result<()> {
    let [rows, d_in, h, e] = sizes(&t.x, &t.w, &t.out)?;
    t.bias.expect(&[h as u32, e as u32])?;
    let mm = Matmul {
        bias: Some(t.bias.view),
        ..Matmul::new(t.x.view, t.w.view, t.out.view, (rows, h * e, d_in))
    };
    let layout = Layout {
        b: Some(per_head(d_in, e)),
        ..Layout::default()
    };
    matmul_laid_out(rec, &mm, &layout).await
}

/// The tensors of [`heads_backward`].
#[derive(Clone, Copy)]
pub struct HeadsBackward<'a> {
    /// The forward's input `[rows, d_in]`.
    pub x: Tensor<'a>,
    /// Weights `[heads, d_in, d_head]`.
    pub w: Tensor<'a>,
    /// The gradient at the output `[rows, heads, d_head]`.
    pub dout: Tensor<'a>,
    /// The gradient at the input `[rows, d_in]` (written, or added to with `accumulate`).
    pub dx: Tensor<'a>,
    /// The weights' gradient (written).
    pub dw: Tensor<'a>,
    /// The bias's gradient (written).
    pub dbias: Tensor<'a>,
    /// Add to `dx` (queries, keys and values share one input).
    pub accumulate: bool,
}

/// Records the projection's backward: `dx (+)= dout · Wᵀ` and `dW = xᵀ · dout`, each one
/// product over all heads, and the bias's gradient as `dout`'s column sums.
pub async fn heads_backward(rec: &mut Recording<'_>, t: &HeadsBackward<'_>) -> Result<()> {
    let [rows, d_in, h, e] = sizes(&t.x, &t.w, &t.dout)?;
    t.dx.expect_matrix(rows as u32, d_in as u32)?;
    t.dw.expect(t.w.dims())?;
    let width = h * e;
    let split = per_head(d_in, e);
    let dx = Matmul {
        trans_b: true,
        accumulate: t.accumulate,
        ..Matmul::new(t.dout.view, t.w.view, t.dx.view, (rows, d_in, width))
    };
    let b_split = Layout {
        b: Some(split),
        ..Layout::default()
    };
    matmul_laid_out(rec, &dx, &b_split).await?;
    let dw = Matmul {
        trans_a: true,
        ..Matmul::new(t.x.view, t.dout.view, t.dw.view, (d_in, width, rows))
    };
    let c_split = Layout {
        c: Some(split),
        ..Layout::default()
    };
    matmul_laid_out(rec, &dw, &c_split).await?;
    sum_rows(
        rec,
        t.dout.reshaped(&[rows as u32, width as u32])?,
        t.dbias.reshaped(&[width as u32])?,
        false,
    )
    .await
}

/// CPU reference of [`heads_backward`]: `(dx, dw, dbias)`.
pub fn heads_backward_ref(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    d_in: usize,
    heads: usize,
    d_head: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / d_in;
    let width = heads * d_head;
    let mut dx = vec![0f32; rows * d_in];
    let mut dw = vec![0f32; heads * d_in * d_head];
    let mut db = vec![0f32; width];
    for r in 0..rows {
        for h in 0..heads {
            for m in 0..d_in {
                let base = (h * d_in + m) * d_head;
                for e in 0..d_head {
                    let g = dout[r * width + h * d_head + e];
                    dw[base + e] += x[r * d_in + m] * g;
                    dx[r * d_in + m] += g * w[base + e];
                }
            }
        }
        for (b, g) in db.iter_mut().zip(&dout[r * width..(r + 1) * width]) {
            *b += g;
        }
    }
    (dx, dw, db)
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
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;
    use crate::testing::assert_close;

    async fn matches_reference(gpu: &Gpu) {
        for (rows, d, h, e) in [
            (1, 1, 1, 1),
            (7, 13, 3, 5),
            (300, 16, 4, 8),
            (150, 70, 5, 24),
        ] {
            let (x, w, b) = (values(1, rows * d), values(2, h * d * e), values(3, h * e));
            let bx = gpu.storage_from("x", &x).unwrap();
            let bw = gpu.storage_from("w", &w).unwrap();
            let bb = gpu.storage_from("b", &b).unwrap();
            let out = gpu.storage_zeroed::<f32>("out", rows * h * e).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let p = Heads {
                    x: t(&bx, "x", &[rows, d]),
                    w: t(&bw, "w", &[h, d, e]),
                    bias: t(&bb, "b", &[h, e]),
                    out: t(&out, "out", &[rows, h, e]),
                };
                heads(rec, &p).await
            })
            .await;
            let got: Vec<f32> = gpu.read(&out, rows * h * e).await.unwrap();
            let what = format!("heads {rows} × {d} → {h} × {e}");
            // The same order of adds as the reference; fused multiply-adds may differ.
            assert_close(&what, &got, &heads_ref(&x, &w, &b, d, h, e), 1e-5, 1e-5);
        }
    }
    gpu_test!(gpu_head_projection_matches_reference, matches_reference);

    async fn backward_matches_reference(gpu: &Gpu) {
        for (rows, d, h, e) in [
            (1, 1, 1, 1),
            (7, 13, 3, 5),
            (300, 16, 4, 8),
            (150, 70, 5, 24),
        ] {
            let (x, w, g) = (
                values(4, rows * d),
                values(5, h * d * e),
                values(6, rows * h * e),
            );
            let up = |n: &str, v: &[f32]| gpu.storage_from(n, v).unwrap();
            let (bx, bw, bg) = (up("x", &x), up("w", &w), up("dout", &g));
            // dx starts at ones and accumulates.
            let dx = up("dx", &vec![1.0; rows * d]);
            let dw = gpu.storage_zeroed::<f32>("dw", h * d * e).unwrap();
            let db = gpu.storage_zeroed::<f32>("db", h * e).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let p = HeadsBackward {
                    x: t(&bx, "x", &[rows, d]),
                    w: t(&bw, "w", &[h, d, e]),
                    dout: t(&bg, "dout", &[rows, h, e]),
                    dx: t(&dx, "dx", &[rows, d]),
                    dw: t(&dw, "dw", &[h, d, e]),
                    dbias: t(&db, "db", &[h, e]),
                    accumulate: true,
                };
                heads_backward(rec, &p).await
            })
            .await;
            let (wdx, wdw, wdb) = heads_backward_ref(&x, &w, &g, d, h, e);
            let what = |n: &str| format!("{n} {rows} × {d} → {h} × {e}");
            let plus_one: Vec<f32> = wdx.iter().map(|v| v + 1.0).collect();
            let got: Vec<f32> = gpu.read(&dx, rows * d).await.unwrap();
            assert_close(&what("dx"), &got, &plus_one, 1e-5, 1e-4);
            let got: Vec<f32> = gpu.read(&dw, h * d * e).await.unwrap();
            assert_close(&what("dw"), &got, &wdw, 1e-5, 1e-4);
            let got: Vec<f32> = gpu.read(&db, h * e).await.unwrap();
            assert_close(&what("dbias"), &got, &wdb, 1e-5, 1e-4);
        }
    }
    gpu_test!(
        gpu_head_projection_backward_matches_reference,
        backward_matches_reference
    );
}
