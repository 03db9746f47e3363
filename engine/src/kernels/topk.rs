//! Per-row TopK of `ReLU(pre)` (host of `shaders/topk.wgsl`), optionally restricted to a
//! mask of eligible latents for AuxK. One workgroup per row. For k up to 32 (the usual TopK and
//! AuxK sizes) one dispatch takes a floor from the invocations' maxima, gathers the few entries
//! at or above it and ranks them (rows with heavy ties at the floor fall back to per-invocation
//! lists merged pairwise). For larger k a radix select on the float bits finds the k-th value,
//! then the k winners are gathered and bitonic-sorted in workgroup memory.

use super::{bool_consts, params, Kernel, Optional, NO_LATENT};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};

const TOPK_WGSL: &str = include_str!("../../../shaders/topk.wgsl");

/// The largest `k` [`topk_rows`] supports (the winners are sorted in one workgroup).
pub const MAX_K: usize = 256;

/// Words of per-row state the kernel keeps between its passes.
const STATE_WORDS: u64 = 8;

/// The largest k the one-pass list kernel takes (`LIST_K` in the shader).
const LIST_K: usize = 32;

/// Words of the scratch buffer [`topk_rows`] needs: per-row state, then the list of eligible
/// latents (its length, then up to `n` latents) that a masked small-k selection walks.
fn scratch_words(batch: usize, n: usize) -> u64 {
    batch as u64 * STATE_WORDS + n as u64 + 1
}

/// Bytes of the scratch buffer [`topk_rows`] needs for `batch` rows of `n` latents.
pub fn topk_scratch_bytes(batch: usize, n: usize) -> u64 {
    4 * scratch_words(batch, n)
}

/// Tensors of [`topk_rows`].
#[derive(Clone, Copy)]
pub struct Topk<'a> {
    /// Pre-activations `[batch, n]`.
    pub pre: Tensor<'a>,
    /// Output latent indices `[batch, k]` (u32): k is its width.
    pub idx: Tensor<'a>,
    /// Output values `ReLU(pre)` at those indices, `[batch, k]`.
    pub val: Tensor<'a>,
    /// Scratch of at least [`topk_scratch_bytes`]`(batch, n)` bytes; its contents do not matter.
    pub scratch: Tensor<'a>,
    /// Optional eligibility `[n]` (u32): only latents with a non-zero word can be selected.
    pub mask: Option<Tensor<'a>>,
}

/// Records, for each row of `pre`, the first `k` latents in the order (`ReLU(pre)` descending,
/// index ascending), as `idx`/`val` in that order: exactly "sort the row's ReLU by (value desc,
/// index asc) and take k", so rows with fewer than k positive values are completed by zeros of
/// the lowest-index latents not yet taken. With a mask, ineligible latents are never selected
/// and missing slots are (`NO_LATENT`, 0). Requires `k <= min(n, MAX_K)`. NaN counts as 0.
///
/// Dispatches (each one workgroup per row): for `k <= 32` one (`list_select`), after a
/// one-workgroup pass listing the eligible latents when there is a mask, so that AuxK's
/// selection walks only the dead latents; beyond, each reading the row once, 4 radix passes
/// over the value bits, up to 4 over index bits (which return at once unless the k-th value is
/// tied and only some of the tied latents are taken), and the gather-and-sort.
pub async fn topk_rows(rec: &mut Recording<'_>, t: &Topk<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (b, n32) = t.pre.matrix();
    let k32 = t.idx.matrix().1;
    let (batch, n, k) = (b as usize, n32 as usize, k32 as usize);
    if k > MAX_K || k > n {
        return Err(EngineError::invalid(
            "k",
            k,
            format!("must be between 1 and min(n = {n}, {MAX_K})"),
        ));
    }
    t.idx.expect_matrix(b, k32)?;
    t.val.expect_matrix(b, k32)?;
    t.scratch.expect_at_least(scratch_words(batch, n))?;
    if let Some(mask) = t.mask {
        mask.expect(&[n32])?;
    }
    let consts = bool_consts(&[("USE_MASK", t.mask.is_some())]);
    let storage = vec![t.pre.view, t.idx.view, t.val.view, t.scratch.view];
    let mask = [Optional {
        name: "mask",
        elem: "u32",
        buffer: t.mask.map(|m| m.view),
        writes: false,
    }];
    let kern = Kernel::new(gpu, "topk", &consts, TOPK_WGSL, storage, &mask).await?;
    let rows = batch as u64;
    let sort_n = k32.next_power_of_two();
    if k <= LIST_K {
        let p = params(&[b, n32, k32, 0, 0, sort_n]);
        if t.mask.is_some() {
            kern.dispatch(rec, "compact_mask", p, 1).await?;
        }
        kern.dispatch(rec, "list_select", p, rows).await?;
        return Ok(());
    }
    for shift in [24u32, 16, 8, 0] {
        let first = (shift == 24) as u32;
        let p = params(&[b, n32, k32, shift, first, sort_n]);
        kern.dispatch(rec, "value_pass", p, rows).await?;
    }
    let index_bits = 32 - (n32 - 1).leading_zeros();
    for pass in (0..index_bits.div_ceil(8)).rev() {
        let p = params(&[b, n32, k32, 8 * pass, 0, sort_n]);
        kern.dispatch(rec, "index_pass", p, rows).await?;
    }
    kern.dispatch(rec, "gather", params(&[b, n32, k32, 0, 0, sort_n]), rows)
        .await?;
    Ok(())
}

/// `ReLU(v)` as the kernels see it: NaN and -0.0 become +0.0.
pub fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// CPU reference of [`topk_rows`]: `(idx, val)`, each `[batch, k]`.
pub fn topk_ref(pre: &[f32], n: usize, k: usize, mask: Option<&[u32]>) -> (Vec<u32>, Vec<f32>) {
    let mut idx = Vec::new();
    let mut val = Vec::new();
    for row in pre.chunks_exact(n) {
        let mut order: Vec<usize> = (0..n).filter(|&j| mask.is_none_or(|m| m[j] != 0)).collect();
        order.sort_by(|&a, &b| relu(row[b]).total_cmp(&relu(row[a])).then(a.cmp(&b)));
        for t in 0..k {
            match order.get(t) {
                Some(&j) => {
                    idx.push(j as u32);
                    val.push(relu(row[j]));
                }
                None => {
                    idx.push(NO_LATENT);
                    val.push(0.0);
                }
            }
        }
    }
    (idx, val)
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{t, values, Timer};
    use super::*;
    use crate::gpu::{Gpu, Recorder};
    use crate::gpu_test;

    /// Runs the kernel and asserts indices and values equal the reference exactly (values bit
    /// for bit: they are copies of ReLU(pre)).
    async fn check(gpu: &Gpu, what: &str, pre: &[f32], n: usize, k: usize, mask: Option<&[u32]>) {
        let batch = pre.len() / n;
        let bpre = gpu.storage_from("pre", pre).unwrap();
        let idx = gpu.storage_zeroed::<u32>("idx", batch * k).unwrap();
        let val = gpu.storage_zeroed::<f32>("val", batch * k).unwrap();
        let scratch = gpu
            .storage_zeroed::<u8>("scratch", topk_scratch_bytes(batch, n) as usize)
            .unwrap();
        let bmask = mask.map(|m| gpu.storage_from("mask", m).unwrap());
        let timer = Timer::start();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = Topk {
            pre: t(&bpre, "pre", &[batch, n]),
            idx: t(&idx, "idx", &[batch, k]),
            val: t(&val, "val", &[batch, k]),
            scratch: Tensor::all("scratch", (&scratch).into()).unwrap(),
            mask: bmask.as_ref().map(|m| t(m, "mask", &[n])),
        };
        topk_rows(&mut rec, &b).await.unwrap();
        rec.submit();
        let got_idx: Vec<u32> = gpu.read(&idx, batch * k).await.unwrap();
        let got_val: Vec<f32> = gpu.read(&val, batch * k).await.unwrap();
        if pre.len() >= 100_000 {
            timer.report(&format!(
                "topk_rows {what} B={batch} n={n} k={k} (GPU and readback)"
            ));
        }
        let (want_idx, want_val) = topk_ref(pre, n, k, mask);
        for (r, (g, w)) in got_idx.chunks(k).zip(want_idx.chunks(k)).enumerate() {
            assert_eq!(g, w, "{what}: indices of row {r} (n={n} k={k})");
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&got_val),
            bits(&want_val),
            "{what}: values (n={n} k={k})"
        );
    }

    /// Rows of a few kinds: distinct values, heavy ties (values on a grid of 1/4), all
    /// negative, all zero, and specials (NaN, -0.0, +inf, subnormal-free extremes).
    fn rows(seed: u32, n: usize) -> Vec<f32> {
        let distinct = values(seed, n);
        let tied: Vec<f32> = values(seed + 1, n)
            .iter()
            .map(|v| (v * 4.0).round() / 4.0)
            .collect();
        let negative: Vec<f32> = values(seed + 2, n).iter().map(|v| -v.abs() - 0.1).collect();
        let zero = vec![0.0; n];
        let mut special = values(seed + 3, n);
        for (j, v) in special.iter_mut().enumerate() {
            match j % 7 {
                0 => *v = f32::NAN,
                1 => *v = -0.0,
                2 if j % 3 == 0 => *v = f32::INFINITY,
                3 => *v = f32::MAX,
                _ => {}
            }
        }
        [distinct, tied, negative, zero, special].concat()
    }

    async fn small_rows(gpu: &Gpu) {
        for n in [1, 3, 37, 100, 129, 300] {
            let pre = rows(n as u32, n);
            for k in [1, 2, 3, 16, 32, 33, 37, 100, 129, 256, n] {
                if k <= n.min(MAX_K) {
                    check(gpu, "small", &pre, n, k, None).await;
                }
            }
        }
    }
    gpu_test!(gpu_topk_small_rows_match_reference, small_rows);

    async fn large_rows(gpu: &Gpu) {
        let n = 131_072;
        let distinct = values(40, n);
        // Ties at the threshold: 2000 latents share the largest value, and k = 256 of them
        // must be the lowest-index ones.
        let mut tied: Vec<f32> = values(41, n).iter().map(|v| v * 0.5).collect();
        for j in (0..n).step_by(61).take(2000) {
            tied[j] = 0.75;
        }
        let pre = [distinct, tied].concat();
        check(gpu, "large k=256", &pre, n, 256, None).await;
        check(gpu, "large k=1", &pre, n, 1, None).await;
        // The one-pass list kernel's sizes (k <= 32), with the same ties at the threshold.
        check(gpu, "large k=32", &pre, n, 32, None).await;
        check(gpu, "large k=17", &pre, n, 17, None).await;
    }
    gpu_test!(gpu_topk_large_rows_match_reference, large_rows);

    async fn masked(gpu: &Gpu) {
        for n in [37, 129, 1000] {
            let pre = rows(7 + n as u32, n);
            let half: Vec<u32> = values(8, n).iter().map(|v| (*v > 0.0) as u32).collect();
            let few: Vec<u32> = (0..n).map(|j| (j % 17 == 5) as u32).collect();
            let none = vec![0u32; n];
            let all = vec![1u32; n];
            for mask in [&half, &few, &none, &all] {
                for k in [1, 3, 32, 36, n.min(MAX_K)] {
                    check(gpu, "masked", &pre, n, k, Some(mask)).await;
                }
            }
        }
    }
    gpu_test!(gpu_topk_masked_matches_reference, masked);

    async fn refuses_bad_shapes(gpu: &Gpu) {
        let buf = gpu.storage_zeroed::<f32>("buf", 4096).unwrap();
        let small = gpu.storage_zeroed::<f32>("small", 1).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let whole = |name| Tensor::all(name, (&buf).into()).unwrap();
        let b = |n: usize, k: usize| Topk {
            pre: t(&buf, "pre", &[2, n]),
            idx: t(&buf, "idx", &[2, k]),
            val: t(&buf, "val", &[2, k]),
            scratch: whole("scratch"),
            mask: None,
        };
        for (n, k) in [(100, 101), (1000, 257)] {
            let err = topk_rows(&mut rec, &b(n, k)).await.unwrap_err();
            assert!(err.to_string().contains("k = "), "{err}");
        }
        // No tensor has a zero dimension, so k = 0 cannot reach the kernel.
        let err = Tensor::of("idx", (&buf).into(), &[2, 0]).unwrap_err();
        assert!(err.to_string().contains("idx"), "{err}");
        let b = Topk {
            scratch: Tensor::all("scratch", (&small).into()).unwrap(),
            pre: t(&buf, "pre", &[4, 100]),
            idx: t(&buf, "idx", &[4, 8]),
            val: t(&buf, "val", &[4, 8]),
            mask: None,
        };
        let err = topk_rows(&mut rec, &b).await.unwrap_err();
        assert!(err.to_string().contains("scratch"), "{err}");
        rec.submit();
    }
    gpu_test!(gpu_topk_refuses_bad_shapes, refuses_bad_shapes);
}
