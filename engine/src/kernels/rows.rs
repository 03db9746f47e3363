//! Row-wise ops (host of `shaders/rows.wgsl`): a row vector subtracted from every row
//! ([`centre`]: an SAE's `x − b_dec`), each row's L2 norm ([`row_norms`]), rows scaled to unit
//! norm in place ([`normalize_rows`]: an SAE's decoder after its step), and a vector's sum into
//! one element of another, in one workgroup and a fixed order ([`sum_into`]: a batch's loss).
//! The CPU references beside them do the same arithmetic in the same order where the kernel
//! has one thread a row; the sum's order is the kernel's strided partials, then a tree.

use super::{params, Kernel, Optional};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor, View};

const ROWS_WGSL: &str = include_str!("../../../shaders/rows.wgsl");

/// A dispatch of `entry` writing `out`, reading `a` and `b` where given.
async fn record(
    rec: &mut Recording<'_>,
    entry: &str,
    out: Tensor<'_>,
    (a, b): (Option<View<'_>>, Option<View<'_>>),
    (rows, width, index): (u32, u32, u32),
    groups: u64,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let read = |name, buffer| Optional {
        name,
        elem: "f32",
        buffer,
        writes: false,
    };
    let optional = [read("a", a), read("b", b)];
    let kern = Kernel::new(gpu, "rows", "", ROWS_WGSL, vec![out.view], &optional).await?;
    kern.dispatch(rec, entry, params(&[rows, width, index]), groups)
        .await
}

/// Records `out = x − b` with `b` `[width]` subtracted from every row of `x` `[rows, width]`.
pub async fn centre(
    rec: &mut Recording<'_>,
    x: Tensor<'_>,
    b: Tensor<'_>,
    out: Tensor<'_>,
) -> Result<()> {
    let (rows, width) = x.matrix();
    b.expect(&[width])?;
    out.expect_matrix(rows, width)?;
    let groups = x.len.div_ceil(256);
    record(
        rec,
        "centre",
        out,
        (Some(x.view), Some(b.view)),
        (rows, width, 0),
        groups,
    )
    .await
}

/// Records `out[r] = ‖x[r, :]‖₂` for `x` `[rows, width]` into `out` `[rows]`.
pub async fn row_norms(rec: &mut Recording<'_>, x: Tensor<'_>, out: Tensor<'_>) -> Result<()> {
    let (rows, width) = x.matrix();
    out.expect(&[rows])?;
    let groups = (rows as u64).div_ceil(256);
    record(
        rec,
        "row_norms",
        out,
        (Some(x.view), None),
        (rows, width, 0),
        groups,
    )
    .await
}

/// Records every row of `x` `[rows, width]` scaled to unit L2 norm in place (a zero row stays
/// zero).
pub async fn normalize_rows(rec: &mut Recording<'_>, x: Tensor<'_>) -> Result<()> {
    let (rows, width) = x.matrix();
    let groups = (rows as u64).div_ceil(256);
    record(
        rec,
        "normalize_rows",
        x,
        (None, None),
        (rows, width, 0),
        groups,
    )
    .await
}

/// Records `out[index] = Σ values` in one workgroup, in a fixed order (deterministic).
pub async fn sum_into(
    rec: &mut Recording<'_>,
    values: Tensor<'_>,
    out: Tensor<'_>,
    index: usize,
) -> Result<()> {
    if index as u64 >= out.len {
        return Err(EngineError::Tensor {
            tensor: out.name.to_string(),
            reason: format!("has {} elements, so no element {index}", out.len),
        });
    }
    let n = values.len as u32;
    record(
        rec,
        "sum",
        out,
        (Some(values.view), None),
        (n, 1, index as u32),
        1,
    )
    .await
}

/// CPU reference of [`centre`].
pub fn centre_ref(x: &[f32], b: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, v)| v - b[i % b.len()])
        .collect()
}

/// CPU reference of [`row_norms`].
pub fn row_norms_ref(x: &[f32], width: usize) -> Vec<f32> {
    x.chunks_exact(width)
        .map(|row| row.iter().fold(0f32, |n, v| n + v * v).sqrt())
        .collect()
}

/// CPU reference of [`normalize_rows`].
pub fn normalize_rows_ref(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(width) {
        let n = row.iter().fold(0f32, |n, v| n + v * v).sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

/// CPU reference of [`sum_into`]'s sum, in the kernel's order: 256 strided partial sums, then
/// a tree over them.
pub fn sum_ref(values: &[f32]) -> f32 {
    let mut partial = [0f32; 256];
    for (lane, p) in partial.iter_mut().enumerate() {
        let mut s = 0f32;
        for v in values.iter().skip(lane).step_by(256) {
            s += v;
        }
        *p = s;
    }
    let mut stride = 128;
    while stride > 0 {
        for i in 0..stride {
            partial[i] += partial[i + stride];
        }
        stride /= 2;
    }
    partial[0]
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record as rec_with, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;
    use crate::testing::assert_close;

    /// One thread a row (or element), the reference's order: the centring and the sum (in the
    /// kernel's order) equal to the bit; norms and normalised rows to 1e-6 relative, as WGSL
    /// bounds `sqrt` and division only to a few ulps. Widths and counts under, at and past a
    /// workgroup; a zero row.
    async fn match_the_references(gpu: &Gpu) {
        for (rows, width) in [(1, 1), (3, 7), (300, 5), (2, 257)] {
            let mut x = values(1, rows * width);
            x[..width].fill(0.0);
            let b = values(2, width);
            let bx = gpu.storage_from("x", &x).unwrap();
            let bb = gpu.storage_from("b", &b).unwrap();
            let xc = gpu.storage_zeroed::<f32>("xc", rows * width).unwrap();
            let norms = gpu.storage_zeroed::<f32>("norms", rows).unwrap();
            let unit = gpu.storage_from("unit", &x).unwrap();
            let sums = gpu.storage_from("sums", &[7f32; 3]).unwrap();
            let shape = [rows, width];
            rec_with(gpu, async |rec: &mut Recording<'_>| {
                let x = t(&bx, "x", &shape);
                centre(rec, x, t(&bb, "b", &[width]), t(&xc, "xc", &shape)).await?;
                row_norms(rec, x, t(&norms, "norms", &[rows])).await?;
                normalize_rows(rec, t(&unit, "unit", &shape)).await?;
                sum_into(rec, t(&bx, "x", &[rows * width]), t(&sums, "sums", &[3]), 1).await
            })
            .await;
            let what = format!("{rows} × {width}");
            let got = |buf, n| gpu.read::<f32>(buf, n);
            assert_eq!(
                got(&xc, rows * width).await.unwrap(),
                centre_ref(&x, &b),
                "{what}"
            );
            let norms = got(&norms, rows).await.unwrap();
            assert_close(&what, &norms, &row_norms_ref(&x, width), 0.0, 1e-6);
            let mut want = x.clone();
            normalize_rows_ref(&mut want, width);
            let unit = got(&unit, rows * width).await.unwrap();
            assert_close(&what, &unit, &want, 0.0, 1e-6);
            assert_eq!(
                got(&sums, 3).await.unwrap(),
                vec![7.0, sum_ref(&x), 7.0],
                "{what}"
            );
        }
        // An element past the output is refused by name.
        let small = gpu.storage_zeroed::<f32>("small", 2).unwrap();
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let v = t(&small, "values", &[2]);
        let e = sum_into(&mut rec, v, t(&small, "losses", &[2]), 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("losses") && e.contains("no element 2"), "{e}");
        rec.submit();
    }
    gpu_test!(gpu_row_ops_match_the_references, match_the_references);
}
