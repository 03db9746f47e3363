//! LayerNorm forward and backward (host of `shaders/layernorm.wgsl` and
//! `shaders/layernorm_backward.wgsl`), as TransformerLens computes it: centre each row,
//! `s = √(mean(x²) + ε)` (its `hook_scale`), `y = x / s · w + b`. [`layernorm_ref`] and
//! [`layernorm_backward_ref`] are the CPU references, which the transformer's CPU forward and
//! backward passes use too.

use super::{dim, elements, params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};

const FORWARD_WGSL: &str = include_str!("../../../shaders/layernorm.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../../shaders/layernorm_backward.wgsl");

/// LayerNorm's ε, TransformerLens's default.
pub const LN_EPS: f32 = 1e-5;

/// The tensors of [`layernorm`]: `rows` rows of `width`.
#[derive(Clone, Copy)]
pub struct LayerNorm<'a> {
    /// Input `[rows, width]`.
    pub x: View<'a>,
    /// Weight `[width]`.
    pub w: View<'a>,
    /// Bias `[width]`.
    pub b: View<'a>,
    /// Output `[rows, width]`.
    pub y: View<'a>,
    /// Per-row statistics `[2, rows]`: the scale s (TransformerLens's `hook_scale`), then the
    /// mean, for the backward pass.
    pub stats: View<'a>,
    /// Rows.
    pub rows: usize,
    /// Row width.
    pub width: usize,
}

/// Records LayerNorm over every row: a segment of a workgroup a row.
pub async fn layernorm(rec: &mut Recording<'_>, ln: &LayerNorm<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = (dim("rows", ln.rows)?, dim("width", ln.width)?);
    Tensor::new(gpu, "x", ln.x, &[r, w])?;
    Tensor::new(gpu, "w", ln.w, &[w])?;
    Tensor::new(gpu, "b", ln.b, &[w])?;
    Tensor::new(gpu, "y", ln.y, &[r, w])?;
    Tensor::new(gpu, "stats", ln.stats, &[2, r])?;
    let storage = vec![ln.x, ln.w, ln.b, ln.y, ln.stats];
    let kern = Kernel::new(gpu, "layernorm", "", FORWARD_WGSL, storage, &[]).await?;
    kern.dispatch(
        rec,
        "ln_forward",
        params(&[r, w, LN_EPS.to_bits()]),
        (r as u64).div_ceil(super::seg_rows(gpu)),
    )
    .await
}

/// The tensors of [`layernorm_backward`].
#[derive(Clone, Copy)]
pub struct LayerNormBackward<'a> {
    /// The forward's input `[rows, width]`.
    pub x: View<'a>,
    /// Weight `[width]`.
    pub w: View<'a>,
    /// The gradient at the output `[rows, width]`.
    pub dy: View<'a>,
    /// The forward's statistics `[2, rows]`.
    pub stats: View<'a>,
    /// The gradient at the input `[rows, width]` (written).
    pub dx: View<'a>,
    /// The weight's gradient `[width]`.
    pub dw: View<'a>,
    /// The bias's gradient `[width]`.
    pub db: View<'a>,
    /// Rows.
    pub rows: usize,
    /// Row width.
    pub width: usize,
    /// Add to `dw` and `db` rather than overwrite them.
    pub accumulate: bool,
}

/// Records LayerNorm's backward: the input's gradient (a segment of a workgroup a row) and the weight's and
/// bias's (an invocation a column, summing rows in order).
pub async fn layernorm_backward(rec: &mut Recording<'_>, ln: &LayerNormBackward<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = (dim("rows", ln.rows)?, dim("width", ln.width)?);
    for (name, v) in [("x", ln.x), ("dy", ln.dy), ("dx", ln.dx)] {
        Tensor::new(gpu, name, v, &[r, w])?;
    }
    for (name, v) in [("w", ln.w), ("dw", ln.dw), ("db", ln.db)] {
        Tensor::new(gpu, name, v, &[w])?;
    }
    Tensor::new(gpu, "stats", ln.stats, &[2, r])?;
    elements("x", &[r, w])?;
    let storage = vec![ln.x, ln.w, ln.dy, ln.stats, ln.dx, ln.dw, ln.db];
    let kern = Kernel::new(gpu, "layernorm_backward", "", BACKWARD_WGSL, storage, &[]).await?;
    let p = params(&[r, w, LN_EPS.to_bits(), u32::from(ln.accumulate)]);
    kern.dispatch(
        rec,
        "ln_backward_rows",
        p,
        (r as u64).div_ceil(super::seg_rows(gpu)),
    )
    .await?;
    kern.dispatch(rec, "ln_backward_params", p, w.div_ceil(256) as u64)
        .await
}

/// CPU reference of [`layernorm`]: the output and the statistics `[2, rows]` (scales, means).
pub fn layernorm_ref(x: &[f32], w: &[f32], b: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / width;
    let mut y = vec![0f32; x.len()];
    let mut stats = vec![0f32; 2 * rows];
    for (r, row) in x.chunks_exact(width).enumerate() {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let s = (var + LN_EPS).sqrt();
        stats[r] = s;
        stats[rows + r] = mean;
        for (i, o) in y[r * width..(r + 1) * width].iter_mut().enumerate() {
            *o = (row[i] - mean) / s * w[i] + b[i];
        }
    }
    (y, stats)
}

/// CPU reference of [`layernorm_backward`]: the gradients at the input, the weight and the
/// bias.
pub fn layernorm_backward_ref(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    width: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dw = vec![0f32; width];
    let mut db = vec![0f32; width];
    let mut dx = vec![0f32; x.len()];
    for (r, row) in x.chunks_exact(width).enumerate() {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let s = (var + LN_EPS).sqrt();
        let g = &dy[r * width..(r + 1) * width];
        let xh: Vec<f32> = row.iter().map(|v| (v - mean) / s).collect();
        let mut m1 = 0f32;
        let mut m2 = 0f32;
        for i in 0..width {
            let d = g[i] * w[i];
            m1 += d;
            m2 += d * xh[i];
            dw[i] += g[i] * xh[i];
            db[i] += g[i];
        }
        let (m1, m2) = (m1 / width as f32, m2 / width as f32);
        for i in 0..width {
            dx[r * width + i] = (g[i] * w[i] - m1 - xh[i] * m2) / s;
        }
    }
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::testing::assert_close;

    /// Rows summed in another order than the reference's (strided partial sums, then a tree):
    /// 1e-5 absolute plus 1e-4 relative on values of order one.
    const ATOL: f32 = 1e-5;
    const RTOL: f32 = 1e-4;

    async fn forward_and_backward(gpu: &Gpu) {
        // Widths under, at and past one workgroup, not multiples of 4; rows past 256.
        for (rows, width) in [(3, 1), (5, 7), (300, 16), (2, 256), (4, 1000)] {
            let x: Vec<f32> = values(1, rows * width)
                .iter()
                .map(|v| 3.0 * v + 0.5)
                .collect();
            let w: Vec<f32> = values(2, width).iter().map(|v| 1.0 + v).collect();
            let b = values(3, width);
            let dy = values(4, rows * width);
            let bx = gpu.storage_from("x", &x).unwrap();
            let bw = gpu.storage_from("w", &w).unwrap();
            let bb = gpu.storage_from("b", &b).unwrap();
            let bdy = gpu.storage_from("dy", &dy).unwrap();
            let y = gpu.storage_zeroed::<f32>("y", rows * width).unwrap();
            let stats = gpu.storage_zeroed::<f32>("stats", 2 * rows).unwrap();
            let dx = gpu.storage_zeroed::<f32>("dx", rows * width).unwrap();
            // Accumulating onto ones checks the flag.
            let dw = gpu.storage_from("dw", &vec![1f32; width]).unwrap();
            let db = gpu.storage_from("db", &vec![1f32; width]).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let ln = LayerNorm {
                    x: (&bx).into(),
                    w: (&bw).into(),
                    b: (&bb).into(),
                    y: (&y).into(),
                    stats: (&stats).into(),
                    rows,
                    width,
                };
                layernorm(rec, &ln).await?;
                let back = LayerNormBackward {
                    x: (&bx).into(),
                    w: (&bw).into(),
                    dy: (&bdy).into(),
                    stats: (&stats).into(),
                    dx: (&dx).into(),
                    dw: (&dw).into(),
                    db: (&db).into(),
                    rows,
                    width,
                    accumulate: true,
                };
                layernorm_backward(rec, &back).await
            })
            .await;
            let what = |n: &str| format!("{n} ({rows} × {width})");
            let (want_y, want_stats) = layernorm_ref(&x, &w, &b, width);
            let (want_dx, want_dw, want_db) = layernorm_backward_ref(&x, &w, &dy, width);
            let got_y: Vec<f32> = gpu.read(&y, rows * width).await.unwrap();
            let got_stats: Vec<f32> = gpu.read(&stats, 2 * rows).await.unwrap();
            let got_dx: Vec<f32> = gpu.read(&dx, rows * width).await.unwrap();
            let got_dw: Vec<f32> = gpu.read(&dw, width).await.unwrap();
            let got_db: Vec<f32> = gpu.read(&db, width).await.unwrap();
            assert_close(&what("y"), &got_y, &want_y, ATOL, RTOL);
            assert_close(&what("stats"), &got_stats, &want_stats, ATOL, RTOL);
            assert_close(&what("dx"), &got_dx, &want_dx, 1e-4, 1e-3);
            let plus_one = |v: &[f32]| v.iter().map(|x| x + 1.0).collect::<Vec<_>>();
            assert_close(&what("dw"), &got_dw, &plus_one(&want_dw), 1e-4, 1e-4);
            assert_close(&what("db"), &got_db, &plus_one(&want_db), 1e-4, 1e-4);
        }
    }
    crate::gpu_rows_test!(
        gpu_layernorm_forward_and_backward_match_reference,
        forward_and_backward
    );

    #[test]
    fn the_reference_backward_matches_finite_differences() {
        let (width, rows) = (6, 2);
        let x: Vec<f32> = values(5, rows * width).iter().map(|v| 2.0 * v).collect();
        let w: Vec<f32> = values(6, width).iter().map(|v| 1.0 + v).collect();
        let b = values(7, width);
        let dy = values(8, rows * width);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            let (y, _) = layernorm_ref(x, w, b, width);
            y.iter()
                .zip(&dy)
                .map(|(a, g)| (*a as f64) * (*g as f64))
                .sum()
        };
        let (dx, dw, db) = layernorm_backward_ref(&x, &w, &dy, width);
        let eps = 1e-2f32;
        for (grad, which) in [(&dx, 0), (&dw, 1), (&db, 2)] {
            for i in 0..grad.len() {
                let (mut xs, mut ws, mut bs) = (x.clone(), w.clone(), b.clone());
                let t = match which {
                    0 => &mut xs,
                    1 => &mut ws,
                    _ => &mut bs,
                };
                t[i] += eps;
                let up = loss(&xs, &ws, &bs);
                let t = match which {
                    0 => &mut xs,
                    1 => &mut ws,
                    _ => &mut bs,
                };
                t[i] -= 2.0 * eps;
                let down = loss(&xs, &ws, &bs);
                let fd = ((up - down) / (2.0 * eps as f64)) as f32;
                assert!(
                    (fd - grad[i]).abs() < 2e-3 + 0.02 * fd.abs(),
                    "{which}[{i}]: {} vs {fd}",
                    grad[i]
                );
            }
        }
    }
}
