//! LayerNorm forward and backward (host of `shaders/layernorm.wgsl` and
//! `shaders/layernorm_backward.wgsl`), as TransformerLens computes it: centre each row,
//! `s = √(mean(x²) + ε)` (its `hook_scale`), `y = x / s · w + b`. [`layernorm_ref`] and
//! [`layernorm_backward_ref`] are the CPU references, which the transformer's CPU forward and
//! backward passes use too.

use super::{params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor};

const FORWARD_WGSL: &str = include_str!("../../../shaders/layernorm.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../../shaders/layernorm_backward.wgsl");

/// LayerNorm's ε, TransformerLens's default.
pub const LN_EPS: f32 = 1e-5;

/// The tensors of [`layernorm`]: rows of a width (the input's leading dimensions and its
/// last).
#[derive(Clone, Copy)]
pub struct LayerNorm<'a> {
    /// Input `[rows, width]`.
    pub x: Tensor<'a>,
    /// Weight `[width]`.
    pub w: Tensor<'a>,
    /// Bias `[width]`.
    pub b: Tensor<'a>,
    /// Output `[rows, width]`.
    pub y: Tensor<'a>,
    /// Per-row statistics `[2, rows]`: the scale s (TransformerLens's `hook_scale`), then the
    /// mean, for the backward pass.
    pub stats: Tensor<'a>,
}

/// Records LayerNorm over every row: a segment of a workgroup a row.
pub async fn layernorm(rec: &mut Recording<'_>, ln: &LayerNorm<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = ln.x.matrix();
    ln.w.expect(&[w])?;
    ln.b.expect(&[w])?;
    ln.y.expect_matrix(r, w)?;
    ln.stats.expect(&[2, r])?;
    let storage = vec![ln.x.view, ln.w.view, ln.b.view, ln.y.view, ln.stats.view];
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
    pub x: Tensor<'a>,
    /// Weight `[width]`.
    pub w: Tensor<'a>,
    /// The gradient at the output `[rows, width]`.
    pub dy: Tensor<'a>,
    /// The forward's statistics `[2, rows]`.
    pub stats: Tensor<'a>,
    /// The gradient at the input `[rows, width]` (written).
    pub dx: Tensor<'a>,
    /// The weight's gradient `[width]`.
    pub dw: Tensor<'a>,
    /// The bias's gradient `[width]`.
    pub db: Tensor<'a>,
    /// Add to `dw` and `db` rather than overwrite them.
    pub accumulate: bool,
}

/// Records LayerNorm's backward: the input's gradient (a segment of a workgroup a row) and the weight's and
/// bias's (an invocation a column, summing rows in order).
pub async fn layernorm_backward(rec: &mut Recording<'_>, ln: &LayerNormBackward<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = ln.x.matrix();
    for t in [ln.dy, ln.dx] {
        t.expect_matrix(r, w)?;
    }
    for t in [ln.w, ln.dw, ln.db] {
        t.expect(&[w])?;
    }
    ln.stats.expect(&[2, r])?;
    let storage = [ln.x, ln.w, ln.dy, ln.stats, ln.dx, ln.dw, ln.db]
        .map(|t| t.view)
        .to_vec();
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
    use super::super::test_data::{record, t, values};
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
                let (x, stats) = (t(&bx, "x", &[rows, width]), t(&stats, "stats", &[2, rows]));
                let w = t(&bw, "w", &[width]);
                let ln = LayerNorm {
                    x,
                    w,
                    b: t(&bb, "b", &[width]),
                    y: t(&y, "y", &[rows, width]),
                    stats,
                };
                layernorm(rec, &ln).await?;
                let back = LayerNormBackward {
                    x,
                    w,
                    dy: t(&bdy, "dy", &[rows, width]),
                    stats,
                    dx: t(&dx, "dx", &[rows, width]),
                    dw: t(&dw, "dw", &[width]),
                    db: t(&db, "db", &[width]),
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

    /// A kernel takes its sizes from its input and refuses the others' shapes by name.
    async fn mismatched_shapes_are_refused(gpu: &Gpu) {
        let (rows, width) = (3, 8);
        let z = |n: usize| gpu.storage_zeroed::<f32>("t", n).unwrap();
        let (bx, bw, by, bs) = (z(rows * width), z(width), z(rows * width), z(2 * rows));
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let ln = LayerNorm {
            x: t(&bx, "x", &[rows, width]),
            w: t(&bw, "ln.w", &[width - 1]),
            b: t(&bw, "ln.b", &[width]),
            y: t(&by, "y", &[rows, width]),
            stats: t(&bs, "stats", &[2, rows]),
        };
        let e = layernorm(&mut rec, &ln).await.unwrap_err().to_string();
        assert!(
            e.contains("ln.w") && e.contains("[7]") && e.contains("[8]"),
            "{e}"
        );
        let ln = LayerNorm {
            w: t(&bw, "ln.w", &[width]),
            stats: t(&bs, "stats", &[rows, 2]),
            ..ln
        };
        let e = layernorm(&mut rec, &ln).await.unwrap_err().to_string();
        assert!(e.contains("stats") && e.contains("[2, 3]"), "{e}");
        rec.submit();
    }
    crate::gpu_test!(
        gpu_layernorm_refuses_mismatched_shapes,
        mismatched_shapes_are_refused
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
