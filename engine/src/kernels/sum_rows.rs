//! Column sums (host of `shaders/sum_rows.wgsl`): `out[c] (+)= Σ_r x[r, c]`, a linear layer's
//! bias gradient. [`sum_rows_ref`] is its CPU reference, summing in the same order.

use super::{params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor};

const SUM_ROWS_WGSL: &str = include_str!("../../../shaders/sum_rows.wgsl");

/// Records `out (+)= Σ_r x[r, :]` for `x` `[rows, width]` (rows: its leading dimensions).
pub async fn sum_rows(
    rec: &mut Recording<'_>,
    x: Tensor<'_>,
    out: Tensor<'_>,
    accumulate: bool,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, w) = x.matrix();
    out.expect(&[w])?;
    let storage = vec![x.view, out.view];
    let kern = Kernel::new(gpu, "sum_rows", "", SUM_ROWS_WGSL, storage, &[]).await?;
    let p = params(&[r, w, u32::from(accumulate)]);
    kern.dispatch(rec, "sum_rows", p, (w as u64).div_ceil(256))
        .await
}

/// CPU reference of [`sum_rows`] (without accumulation).
pub fn sum_rows_ref(x: &[f32], width: usize) -> Vec<f32> {
    let mut out = vec![0f32; width];
    for row in x.chunks_exact(width) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;

    async fn matches_reference(gpu: &Gpu) {
        for (rows, width) in [(1, 1), (300, 7), (3, 700)] {
            let x = values(1, rows * width);
            let bx = gpu.storage_from("x", &x).unwrap();
            let out = gpu.storage_from("out", &vec![0.5f32; width]).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let (x, out) = (t(&bx, "x", &[rows, width]), t(&out, "out", &[width]));
                sum_rows(rec, x, out, true).await
            })
            .await;
            // The same adds in the same order, then the old value: equal to the bit.
            let want: Vec<f32> = sum_rows_ref(&x, width).iter().map(|v| v + 0.5).collect();
            assert_eq!(
                gpu.read::<f32>(&out, width).await.unwrap(),
                want,
                "{rows} × {width}"
            );
        }
    }
    gpu_test!(gpu_sum_rows_matches_reference, matches_reference);
}
