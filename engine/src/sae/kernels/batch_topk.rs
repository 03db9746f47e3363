//! BatchTopK (host of `shaders/sae_batch_topk.wgsl`): the `k · batch` largest values of
//! `ReLU(pre)` over the whole batch, by a global radix select (histogram passes with atomic
//! counts, then a threshold pass), written densely.

use super::{check_buffer, dim, elements, params, Recorder};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;

const BATCH_TOPK_WGSL: &str = include_str!("../../../../shaders/sae_batch_topk.wgsl");

/// Entries each workgroup of the histogram and write passes reads.
const CHUNK: u64 = 4096;
/// Scratch words: a 256-bin histogram and 8 words of state.
const SCRATCH_WORDS: u64 = 264;

/// After [`batch_topk`] runs, this word of the scratch buffer holds the threshold (the smallest
/// value kept, as f32 bits): the batch's contribution to the inference threshold estimate.
pub const THRESHOLD_WORD: u64 = 261;

/// Bytes of the scratch buffer [`batch_topk`] needs (whatever the shapes).
pub fn batch_topk_scratch_bytes() -> u64 {
    SCRATCH_WORDS * 4
}

/// Buffers of [`batch_topk`].
#[derive(Clone, Copy)]
pub struct BatchTopkBuffers<'a> {
    /// Pre-activations `[batch, n]`.
    pub pre: &'a wgpu::Buffer,
    /// Output activations `[batch, n]`: `ReLU(pre)` where kept, 0 elsewhere.
    pub f: &'a wgpu::Buffer,
    /// Scratch of [`batch_topk_scratch_bytes`] bytes; its contents do not matter.
    pub scratch: &'a wgpu::Buffer,
}

/// Records BatchTopK: keeps the first `k · batch` entries of `ReLU(pre)` in the order (value
/// descending, flat index ascending) and zeroes the rest. Requires `1 <= k <= n`. NaN counts
/// as 0. The threshold value is left at [`THRESHOLD_WORD`] of the scratch buffer.
///
/// Dispatches: an init, then per 8 bits of the threshold a histogram pass (one workgroup per
/// 4096 entries) and a one-workgroup pick; the same over flat-index bits when the threshold
/// value is tied (these return at once otherwise); and the write pass.
pub async fn batch_topk(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    buf: &BatchTopkBuffers<'_>,
    batch: usize,
    n: usize,
    k: usize,
) -> Result<()> {
    let (b, n32) = (dim("batch", batch)?, dim("n", n)?);
    if k == 0 || k > n {
        return Err(EngineError::invalid(
            "k",
            k,
            format!("must be between 1 and n = {n}"),
        ));
    }
    let total = elements("pre", &[b, n32])?;
    check_buffer(gpu, "pre", buf.pre, total)?;
    check_buffer(gpu, "f", buf.f, total)?;
    check_buffer(gpu, "scratch", buf.scratch, SCRATCH_WORDS)?;
    let keep = (k * batch) as u32;
    let total32 = total as u32;
    let groups = total.div_ceil(CHUNK);
    let storage = vec![buf.pre, buf.f, buf.scratch];
    let mut rec = Recorder::new(gpu, "sae_batch_topk", "", BATCH_TOPK_WGSL, storage, &[]);
    let p = |shift: u32| params(&[total32, keep, shift, groups as u32]);
    rec.dispatch("init", p(0), 1).await?;
    for shift in [24u32, 16, 8, 0] {
        rec.dispatch("hist_value", p(shift), groups).await?;
        rec.dispatch("pick_value", p(shift), 1).await?;
    }
    let index_bits = 32 - (total32 - 1).leading_zeros();
    for pass in (0..index_bits.div_ceil(8)).rev() {
        rec.dispatch("hist_index", p(8 * pass), groups).await?;
        rec.dispatch("pick_index", p(8 * pass), 1).await?;
    }
    rec.dispatch("write", p(0), groups).await?;
    rec.record(encoder);
    Ok(())
}

/// CPU reference of [`batch_topk`]: the dense activations and the threshold value.
pub fn batch_topk_ref(pre: &[f32], batch: usize, k: usize) -> (Vec<f32>, f32) {
    let relu = super::topk::relu;
    let mut order: Vec<usize> = (0..pre.len()).collect();
    order.sort_by(|&a, &b| relu(pre[b]).total_cmp(&relu(pre[a])).then(a.cmp(&b)));
    let mut f = vec![0f32; pre.len()];
    let kept = &order[..k * batch];
    for &e in kept {
        f[e] = relu(pre[e]);
    }
    (f, relu(pre[kept[kept.len() - 1]]))
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{values, Timer};
    use super::*;
    use crate::gpu_test;

    async fn check(gpu: &Gpu, what: &str, pre: &[f32], batch: usize, k: usize) {
        let n = pre.len() / batch;
        let bpre = gpu.storage_from("pre", pre).unwrap();
        let f = gpu.storage_zeroed::<f32>("f", pre.len()).unwrap();
        let scratch = gpu
            .storage_zeroed::<u8>("scratch", batch_topk_scratch_bytes() as usize)
            .unwrap();
        let timer = Timer::start();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let b = BatchTopkBuffers {
            pre: &bpre,
            f: &f,
            scratch: &scratch,
        };
        batch_topk(gpu, &mut enc, &b, batch, n, k).await.unwrap();
        gpu.queue.submit([enc.finish()]);
        let got: Vec<f32> = gpu.read(&f, pre.len()).await.unwrap();
        let words: Vec<u32> = gpu.read(&scratch, SCRATCH_WORDS as usize).await.unwrap();
        if pre.len() >= 100_000 {
            timer.report(&format!(
                "batch_topk B={batch} n={n} k={k} (GPU and readback)"
            ));
        }
        let (want, threshold) = batch_topk_ref(pre, batch, k);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let first_diff = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(
            bits(&got),
            bits(&want),
            "{what}: B={batch} n={n} k={k}, first difference at {first_diff:?}"
        );
        assert_eq!(
            f32::from_bits(words[THRESHOLD_WORD as usize]),
            threshold,
            "{what}: threshold"
        );
    }

    async fn matches_reference(gpu: &Gpu) {
        check(gpu, "one entry", &[0.5], 1, 1).await;
        check(gpu, "all negative", &[-1.0, -2.0, -0.5, -3.0], 2, 1).await;
        for (batch, n, k) in [(37, 100, 5), (3, 129, 129), (5, 37, 1), (1, 300, 17)] {
            let distinct = values(batch as u32, batch * n);
            check(gpu, "distinct", &distinct, batch, k).await;
            // A grid of 1/8 with half the entries negative: the threshold is tied, and past
            // the positive entries the zeros are taken in flat-index order.
            let tied: Vec<f32> = distinct.iter().map(|v| (v * 8.0).round() / 8.0).collect();
            check(gpu, "tied", &tied, batch, k).await;
            let mut special = distinct.clone();
            for (e, v) in special.iter_mut().enumerate() {
                if e % 5 == 0 {
                    *v = [f32::NAN, -0.0, f32::INFINITY, f32::MAX, 0.0][e / 5 % 5];
                }
            }
            check(gpu, "special", &special, batch, k).await;
        }
    }
    gpu_test!(gpu_batch_topk_matches_reference, matches_reference);

    async fn large(gpu: &Gpu) {
        let (batch, n, k) = (8, 16_384, 64);
        let tied: Vec<f32> = values(77, batch * n)
            .iter()
            .map(|v| (v * 64.0).round() / 64.0)
            .collect();
        check(gpu, "large", &tied, batch, k).await;
    }
    gpu_test!(gpu_batch_topk_large_matches_reference, large);

    async fn refuses_bad_shapes(gpu: &Gpu) {
        let buf = gpu.storage_zeroed::<f32>("buf", 1024).unwrap();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let b = BatchTopkBuffers {
            pre: &buf,
            f: &buf,
            scratch: &buf,
        };
        let err = batch_topk(gpu, &mut enc, &b, 2, 10, 11).await.unwrap_err();
        assert!(err.to_string().contains("k = 11"), "{err}");
        let err = batch_topk(gpu, &mut enc, &b, 2, 1000, 5).await.unwrap_err();
        assert!(err.to_string().contains("pre"), "{err}");
        gpu.queue.submit([enc.finish()]);
    }
    gpu_test!(gpu_batch_topk_refuses_bad_shapes, refuses_bad_shapes);
}
