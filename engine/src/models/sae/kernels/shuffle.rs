//! The shuffle pool's step on the device (host of `shaders/sae/shuffle.wgsl`): the batch is
//! gathered from the pool's drawn slots into the trainer's input, scaled, and the fresh source
//! rows are scattered into those slots. The CPU reference is
//! [`crate::data::gather_scatter`] (the [`crate::data::ShuffleBuffer`]'s step),
//! and the slots come from the same [`crate::data::ShuffleSlots`].

use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};
use crate::kernels::{params, Kernel};

const SHUFFLE_WGSL: &str = include_str!("../../../../../shaders/sae/shuffle.wgsl");

/// Tensors of [`gather_scatter`] (in four distinct buffers).
#[derive(Clone, Copy)]
pub struct GatherScatter<'a> {
    /// The step's `batch` distinct pool slots (u32), `[batch]`.
    pub slots: Tensor<'a>,
    /// The fresh source rows `[batch, d]`, unscaled.
    pub fresh: Tensor<'a>,
    /// The pool `[pool_rows, d]`, unscaled; the drawn slots are overwritten by `fresh`.
    pub pool: Tensor<'a>,
    /// Output batch `[batch, d]`, scaled.
    pub x: Tensor<'a>,
}

/// Records `x[i, :] = pool[slots[i], :] · scale; pool[slots[i], :] = fresh[i, :]`, one
/// invocation per element of the batch. The slots must be distinct (a repeated slot would give
/// a race); a slot past the pool is skipped.
pub async fn gather_scatter(
    rec: &mut Recording<'_>,
    t: &GatherScatter<'_>,
    scale: f32,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let [b] = t.slots.shape()?;
    let (rows, d) = t.pool.matrix();
    if rows < b {
        return Err(EngineError::invalid(
            "pool rows",
            rows,
            format!("a pool must hold at least one batch of {b}"),
        ));
    }
    t.fresh.expect_matrix(b, d)?;
    t.x.expect_matrix(b, d)?;
    let n = t.x.len;
    let storage = vec![t.slots.view, t.fresh.view, t.pool.view, t.x.view];
    let kern = Kernel::new(gpu, "sae_shuffle", "", SHUFFLE_WGSL, storage, &[]).await?;
    let p = params(&[b, d, rows, scale.to_bits()]);
    kern.dispatch(rec, "gather_scatter", p, n.div_ceil(256))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ActivationSource, ReplaySource, ShuffleBuffer, ShuffleSlots};
    use crate::gpu::{Gpu, Recorder};
    use crate::gpu_test;
    use crate::kernels::test_data::{t, values};

    /// Steps of the kernel against the CPU `ShuffleBuffer` on the same source and seed: the
    /// batches (scaled alike, one multiply each) and the pool must be equal to the bit.
    async fn matches_the_shuffle_buffer(gpu: &Gpu) {
        let steps = 4;
        // d not a multiple of 4, batches not a multiple of 256, pools of 1 to 3 batches.
        for (d, batch, pool_batches, scale) in [
            (7, 13, 1, 1.0),
            (7, 13, 3, 0.37),
            (1, 300, 2, 1.9),
            (13, 5, 3, 1.0),
            (3, 257, 1, 0.5),
            (5, 1, 2, 3.3),
        ] {
            let what = format!("d={d} batch={batch} pool={pool_batches} batches");
            let pool_rows = batch * pool_batches;
            // Enough rows not to cycle, so every value in play is distinct.
            let data = values(
                d as u32 * 31 + batch as u32,
                (pool_rows + steps * batch) * d,
            );
            let mut cpu_source = ReplaySource::new(data.clone(), d).unwrap();
            let mut gpu_source = ReplaySource::new(data, d).unwrap();
            let mut cpu = ShuffleBuffer::new(&mut cpu_source, pool_rows, batch, 9);
            let mut pool = vec![0f32; pool_rows * d];
            gpu_source.next_batch(&mut pool);
            let bpool = gpu.storage_from("pool", &pool).unwrap();
            let bslots = gpu.storage_zeroed::<u32>("slots", batch).unwrap();
            let bfresh = gpu.storage_zeroed::<f32>("fresh", batch * d).unwrap();
            let bx = gpu.storage_zeroed::<f32>("x", batch * d).unwrap();
            let mut slots = ShuffleSlots::new(pool_rows, batch, 9);
            let mut fresh = vec![0f32; batch * d];
            let mut want = vec![0f32; batch * d];
            for step in 0..steps {
                gpu_source.next_batch(&mut fresh);
                gpu.queue
                    .write_buffer(&bfresh, 0, bytemuck::cast_slice(&fresh));
                gpu.queue
                    .write_buffer(&bslots, 0, bytemuck::cast_slice(slots.draw()));
                let mut recorder = Recorder::new(gpu);
                let mut rec = recorder.begin();
                let b = GatherScatter {
                    slots: t(&bslots, "slots", &[batch]),
                    fresh: t(&bfresh, "fresh", &[batch, d]),
                    pool: t(&bpool, "pool", &[pool_rows, d]),
                    x: t(&bx, "x", &[batch, d]),
                };
                gather_scatter(&mut rec, &b, scale).await.unwrap();
                rec.submit();
                cpu.next_batch(&mut cpu_source, &mut want);
                want.iter_mut().for_each(|v| *v *= scale);
                let got: Vec<f32> = gpu.read(&bx, batch * d).await.unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{what}: batch of step {step}");
            }
            let got: Vec<f32> = gpu.read(&bpool, pool_rows * d).await.unwrap();
            assert_eq!(got, cpu.pool(), "{what}: pool");
        }
    }
    gpu_test!(
        gpu_shuffle_matches_the_cpu_buffer,
        matches_the_shuffle_buffer
    );
}
