//! Elementwise addition and scaling (host of `shaders/add.wgsl`): the residual stream's sums,
//! an SAE's batch brought to its input scale. The CPU references are the plain sum and
//! product, bit for bit (one operation an element).

use super::{elements, params, Kernel};
use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};

const ADD_WGSL: &str = include_str!("../../../shaders/add.wgsl");

/// Records `out = a + b` over `n` elements.
pub async fn add(
    rec: &mut Recording<'_>,
    a: View<'_>,
    b: View<'_>,
    out: View<'_>,
    n: usize,
) -> Result<()> {
    elementwise(rec, "add", a, b, out, n, 0.0).await
}

/// Records `out = a · s` over `n` elements (`out` another buffer than `a`'s).
pub async fn scale(
    rec: &mut Recording<'_>,
    a: View<'_>,
    out: View<'_>,
    n: usize,
    s: f32,
) -> Result<()> {
    // `b` is bound but unread: `a` again, which a read-only binding may alias.
    elementwise(rec, "scale", a, a, out, n, s).await
}

async fn elementwise(
    rec: &mut Recording<'_>,
    entry: &str,
    a: View<'_>,
    b: View<'_>,
    out: View<'_>,
    n: usize,
    s: f32,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let len = elements("n", &[super::dim("n", n)?])?;
    for (name, v) in [("a", a), ("b", b), ("out", out)] {
        Tensor::flat(gpu, name, v, len)?;
    }
    let kern = Kernel::new(gpu, "add", "", ADD_WGSL, vec![a, b, out], &[]).await?;
    let p = params(&[len as u32, s.to_bits()]);
    kern.dispatch(rec, entry, p, len.div_ceil(256)).await
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
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
                add(rec, (&ba).into(), (&bb).into(), (&out).into(), n).await
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
                scale(rec, (&ba).into(), (&out).into(), n, s).await
            })
            .await;
            let want: Vec<f32> = a.iter().map(|x| x * s).collect();
            assert_eq!(gpu.read::<f32>(&out, n).await.unwrap(), want, "n = {n}");
        }
    }
    gpu_test!(gpu_scale_is_the_elementwise_product, scales_elementwise);
}
