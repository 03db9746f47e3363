//! Elementwise addition (host of `shaders/add.wgsl`): the residual stream's sums. Its CPU
//! reference is the plain sum, bit for bit (one add an element).

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
    let gpu = &rec.gpu().clone();
    let len = elements("n", &[super::dim("n", n)?])?;
    for (name, v) in [("a", a), ("b", b), ("out", out)] {
        Tensor::flat(gpu, name, v, len)?;
    }
    let kern = Kernel::new(gpu, "add", "", ADD_WGSL, vec![a, b, out], &[]).await?;
    kern.dispatch(rec, "add", params(&[len as u32]), len.div_ceil(256))
        .await
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
}
