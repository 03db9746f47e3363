//! Elementwise addition and scaling (host of `shaders/add.wgsl`): the residual stream's sums,
//! an SAE's batch brought to its input scale. The CPU references are the plain sum and
//! product, bit for bit (one operation an element).

use super::{params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor};

const ADD_WGSL: &str = include_str!("../../../shaders/add.wgsl");

/// Records `out = a + b` (three tensors of one shape).
pub async fn add(
    rec: &mut Recording<'_>,
    a: Tensor<'_>,
    b: Tensor<'_>,
    out: Tensor<'_>,
) -> Result<()> {
    elementwise(rec, "add", a, b, out, 0.0).await
}

/// Records `out = a · s` (`out` of `a`'s shape, another buffer than `a`'s).
pub async fn scale(rec: &mut Recording<'_>, a: Tensor<'_>, out: Tensor<'_>, s: f32) -> Result<()> {
    // `b` is bound but unread: `a` again, which a read-only binding may alias.
    elementwise(rec, "scale", a, a, out, s).await
}

async fn elementwise(
    rec: &mut Recording<'_>,
    entry: &str,
    a: Tensor<'_>,
    b: Tensor<'_>,
    out: Tensor<'_>,
    s: f32,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (rows, width) = a.matrix();
    b.expect_matrix(rows, width)?;
    out.expect_matrix(rows, width)?;
    let len = a.len;
    let storage = vec![a.view, b.view, out.view];
    let kern = Kernel::new(gpu, "add", "", ADD_WGSL, storage, &[]).await?;
    let p = params(&[len as u32, s.to_bits()]);
    kern.dispatch(rec, entry, p, len.div_ceil(256)).await
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;

    async fn sums_elementwise(gpu: &Gpu) {
        for n in [1, 255, 257, 1000] {
            let (a, b) = (values(1, n), values(2, n));
            let ba = gpu.storage_from("a", &a).unwrap();
            let bb = gpu.storage_from("b", &b).unwrap();
            let out = gpu.storage_zeroed::<f32>("out", n).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                add(
                    rec,
                    t(&ba, "a", &[n]),
                    t(&bb, "b", &[n]),
                    t(&out, "out", &[n]),
                )
                .await
            })
            .await;
            let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
            assert_eq!(gpu.read::<f32>(&out, n).await.unwrap(), want, "n = {n}");
        }
    }
    gpu_test!(gpu_add_is_the_elementwise_sum, sums_elementwise);

    async fn scales_elementwise(gpu: &Gpu) {
        for (n, s) in [(1, 2.0), (257, 0.37), (1000, -1.9)] {
            let a = values(3, n);
            let ba = gpu.storage_from("a", &a).unwrap();
            let out = gpu.storage_zeroed::<f32>("out", n).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                scale(rec, t(&ba, "a", &[n]), t(&out, "out", &[n]), s).await
            })
            .await;
            let want: Vec<f32> = a.iter().map(|x| x * s).collect();
            assert_eq!(gpu.read::<f32>(&out, n).await.unwrap(), want, "n = {n}");
        }
    }
    gpu_test!(gpu_scale_is_the_elementwise_product, scales_elementwise);
}
