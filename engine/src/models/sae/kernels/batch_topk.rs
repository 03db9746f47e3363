//! BatchTopK (host of `shaders/sae/batch_topk.wgsl`): the `k · batch` largest values of
//! `ReLU(pre)` over the whole batch, by a global radix select (histogram passes with atomic
//! counts, then a pick per pass), written as a sparse code whose rows hold as many entries as
//! they won. The pre-activations may come in chunks of whole rows, one buffer each, so a batch
//! larger than one binding still selects exactly.

use super::code_rows_len;
use super::sparse::Code;
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};
use crate::kernels::{elements, params, Kernel, Params};

const BATCH_TOPK_WGSL: &str = include_str!("../../../../../shaders/sae/batch_topk.wgsl");

/// Entries each workgroup of the histogram passes reads.
const CHUNK: u64 = 4096;
/// Scratch words: a 256-bin histogram and 8 words of state.
const SCRATCH_WORDS: u64 = 264;

/// Bytes of the scratch buffer [`batch_topk`] needs (whatever the shapes).
pub fn batch_topk_scratch_bytes() -> u64 {
    SCRATCH_WORDS * 4
}

/// Tensors of [`batch_topk`].
#[derive(Clone, Copy)]
pub struct BatchTopk<'a> {
    /// Pre-activations `[batch, n]` as consecutive chunks of whole rows, `[rows, n]` each: all
    /// of one size but the last, which may be shorter.
    pub pre: &'a [Tensor<'a>],
    /// The output code `[batch, k]` (k entries a row on average), with its row index: row by
    /// row, latents increasing within a row.
    pub code: Code<'a>,
    /// Scratch of at least [`batch_topk_scratch_bytes`] bytes; its contents do not matter.
    pub scratch: Tensor<'a>,
}

/// Records BatchTopK: keeps the first `k · batch` entries of `ReLU(pre)` in the order (value
/// descending, flat index ascending) and writes them as a code `(idx, val, rows)` in flat-index
/// order. Requires `k <= n`. NaN counts as 0; kept entries that are not positive (when
/// fewer than `k · batch` are) stay in the code with value 0.
///
/// Dispatches: an init; per 8 bits of the threshold a histogram pass over each chunk (one
/// workgroup per 4096 entries) and a one-workgroup pick; the same over flat-index bits when the
/// threshold value is tied (these return at once otherwise); then per chunk a count of each
/// row's kept entries, a scan of the counts, and per chunk the compaction (one workgroup per
/// row, each invocation writing a contiguous run of latents). Consecutive dispatches on one
/// chunk share a compute pass.
pub async fn batch_topk(rec: &mut Recording<'_>, t: &BatchTopk<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let Some(first) = t.pre.first() else {
        return Err(EngineError::invalid(
            "pre",
            "no chunks",
            "needs at least one",
        ));
    };
    let (per, n32) = first.matrix();
    let (per, n) = (per as usize, n32 as usize);
    let mut chunks = Vec::with_capacity(t.pre.len());
    let mut batch = 0;
    for (c, pre) in t.pre.iter().enumerate() {
        let (rows, width) = pre.matrix();
        let rows = rows as usize;
        let last = c + 1 == t.pre.len();
        if width != n32 || rows > per || (!last && rows != per) {
            return Err(EngineError::invalid(
                "pre",
                format!("chunk {c} of {rows} rows of {width}"),
                format!(
                    "every chunk but the last must hold {per} rows of {n}, the last at most that"
                ),
            ));
        }
        chunks.push((batch, rows));
        batch += rows;
    }
    let (b, k32) = t.code.shape()?;
    let k = k32 as usize;
    if b as usize != batch {
        return Err(EngineError::invalid(
            "idx",
            format!("{b} rows"),
            format!("the chunks of pre hold {batch}"),
        ));
    }
    if k > n {
        return Err(EngineError::invalid(
            "k",
            k,
            format!("must be between 1 and n = {n}"),
        ));
    }
    let total = elements("pre", &[b, n32])?;
    let n_chunks = chunks.len();
    let keep = k * batch;
    let Some(rows_index) = t.code.rows else {
        return Err(EngineError::invalid(
            "rows",
            "none",
            "BatchTopK writes the code's row index",
        ));
    };
    rows_index.expect_at_least(code_rows_len(batch, keep) as u64)?;
    t.scratch.expect_at_least(SCRATCH_WORDS)?;
    let p = |chunk: usize, shift: u32, groups: u64| -> Params {
        let (row0, rows) = chunks[chunk];
        params(&[
            total as u32,
            keep as u32,
            shift,
            groups as u32,
            (row0 * n) as u32,
            (rows * n) as u32,
            n32,
            row0 as u32,
            rows as u32,
            b,
        ])
    };
    let hist_groups = |chunk: usize| ((chunks[chunk].1 * n) as u64).div_ceil(CHUNK);
    let row_groups = |chunk: usize| chunks[chunk].1 as u64;
    let last = n_chunks - 1;
    // (chunk read, entry, params, workgroups); the picks and the scan read no chunk and run
    // with the last one bound.
    let mut plan: Vec<(usize, &str, Params, u64)> = vec![(0, "init", p(0, 0, 1), 1)];
    let pass_over = |plan: &mut Vec<_>, hist: &'static str, pick: &'static str, shift| {
        for c in 0..n_chunks {
            plan.push((c, hist, p(c, shift, hist_groups(c)), hist_groups(c)));
        }
        plan.push((last, pick, p(last, shift, 1), 1));
    };
    for shift in [24u32, 16, 8, 0] {
        pass_over(&mut plan, "hist_value", "pick_value", shift);
    }
    let index_bits = 32 - (total as u32 - 1).leading_zeros();
    for pass in (0..index_bits.div_ceil(8)).rev() {
        pass_over(&mut plan, "hist_index", "pick_index", 8 * pass);
    }
    for c in 0..n_chunks {
        plan.push((c, "count_rows", p(c, 0, row_groups(c)), row_groups(c)));
    }
    plan.push((last, "scan_rows", p(last, 0, 1), 1));
    for c in 0..n_chunks {
        plan.push((c, "compact", p(c, 0, row_groups(c)), row_groups(c)));
    }
    let mut at = 0;
    while at < plan.len() {
        let chunk = plan[at].0;
        let storage = [t.pre[chunk], t.scratch, t.code.idx, t.code.val, rows_index]
            .map(|t| t.view)
            .to_vec();
        let kern = Kernel::new(gpu, "sae_batch_topk", "", BATCH_TOPK_WGSL, storage, &[]).await?;
        while at < plan.len() && plan[at].0 == chunk {
            let (_, entry, params, groups) = plan[at];
            kern.dispatch(rec, entry, params, groups).await?;
            at += 1;
        }
    }
    Ok(())
}

/// CPU reference of [`batch_topk`]: the code `(idx, val, rows)` as the kernel writes it.
pub fn batch_topk_ref(pre: &[f32], batch: usize, k: usize) -> (Vec<u32>, Vec<f32>, Vec<u32>) {
    let n = pre.len() / batch;
    let relu = crate::kernels::topk::relu;
    let mut order: Vec<usize> = (0..pre.len()).collect();
    order.sort_by(|&a, &b| relu(pre[b]).total_cmp(&relu(pre[a])).then(a.cmp(&b)));
    let mut kept = order[..k * batch].to_vec();
    kept.sort_unstable();
    let idx = kept.iter().map(|&e| (e % n) as u32).collect();
    let val = kept.iter().map(|&e| relu(pre[e])).collect();
    let mut rows: Vec<u32> = kept.iter().map(|&e| (e / n) as u32).collect();
    rows.extend((0..=batch).map(|r| kept.partition_point(|&e| e / n < r) as u32));
    (idx, val, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{Gpu, Recorder};
    use crate::gpu_test;
    use crate::kernels::test_data::{t, values, Timer};

    /// Runs the kernel on `pre` split into chunks of `per` rows and checks the code against the
    /// reference bit for bit (the kernel only selects and copies, so there is no tolerance).
    async fn check(gpu: &Gpu, what: &str, pre: &[f32], batch: usize, k: usize, per: usize) {
        let n = pre.len() / batch;
        let chunks: Vec<wgpu::Buffer> = pre
            .chunks(per * n)
            .map(|c| gpu.storage_from("pre", c).unwrap())
            .collect();
        let keep = k * batch;
        let idx = gpu.storage_zeroed::<u32>("idx", keep).unwrap();
        let val = gpu.storage_zeroed::<f32>("val", keep).unwrap();
        let rows_len = code_rows_len(batch, keep);
        let rows = gpu.storage_zeroed::<u32>("rows", rows_len).unwrap();
        let scratch = gpu
            .storage_zeroed::<u8>("scratch", batch_topk_scratch_bytes() as usize)
            .unwrap();
        let timer = Timer::start();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let pre_t: Vec<Tensor<'_>> = chunks
            .iter()
            .zip(pre.chunks(per * n))
            .map(|(c, values)| t(c, "pre", &[values.len() / n, n]))
            .collect();
        let b = BatchTopk {
            pre: &pre_t,
            code: Code {
                idx: t(&idx, "idx", &[batch, k]),
                val: t(&val, "val", &[batch, k]),
                rows: Some(t(&rows, "rows", &[rows_len])),
            },
            scratch: Tensor::all("scratch", (&scratch).into()).unwrap(),
        };
        batch_topk(&mut rec, &b).await.unwrap();
        rec.submit();
        let got_idx: Vec<u32> = gpu.read(&idx, keep).await.unwrap();
        let got_val: Vec<f32> = gpu.read(&val, keep).await.unwrap();
        let got_rows: Vec<u32> = gpu.read(&rows, rows_len).await.unwrap();
        if pre.len() >= 100_000 {
            timer.report(&format!(
                "batch_topk B={batch} n={n} k={k} (GPU and readback)"
            ));
        }
        let (want_idx, want_val, want_rows) = batch_topk_ref(pre, batch, k);
        let what = format!("{what}: B={batch} n={n} k={k} chunks of {per} rows");
        let first = |a: &[u32], b: &[u32]| a.iter().zip(b).position(|(x, y)| x != y);
        assert_eq!(
            got_rows,
            want_rows,
            "{what}: rows, first difference at {:?}",
            first(&got_rows, &want_rows)
        );
        assert_eq!(
            got_idx,
            want_idx,
            "{what}: idx, first difference at {:?}",
            first(&got_idx, &want_idx)
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got_val), bits(&want_val), "{what}: val");
    }

    async fn matches_reference(gpu: &Gpu) {
        check(gpu, "one entry", &[0.5], 1, 1, 1).await;
        check(gpu, "all negative", &[-1.0, -2.0, -0.5, -3.0], 2, 1, 2).await;
        // (batch, n, k, rows per chunk): rows past one scan tile, rows of more latents than
        // the compaction's 256 invocations (runs of two), k = n, uneven last chunks and one row
        // per chunk.
        for (batch, n, k, per) in [
            (37, 100, 5, 37),
            (37, 100, 5, 10),
            (3, 129, 129, 2),
            (5, 37, 1, 1),
            (1, 300, 17, 1),
            (300, 7, 2, 300),
            (300, 7, 2, 41),
        ] {
            let distinct = values(batch as u32, batch * n);
            check(gpu, "distinct", &distinct, batch, k, per).await;
            // A grid of 1/8 with half the entries negative: the threshold is tied, and past
            // the positive entries the zeros are taken in flat-index order.
            let tied: Vec<f32> = distinct.iter().map(|v| (v * 8.0).round() / 8.0).collect();
            check(gpu, "tied", &tied, batch, k, per).await;
            let mut special = distinct.clone();
            for (e, v) in special.iter_mut().enumerate() {
                if e % 5 == 0 {
                    *v = [f32::NAN, -0.0, f32::INFINITY, f32::MAX, 0.0][e / 5 % 5];
                }
            }
            check(gpu, "special", &special, batch, k, per).await;
        }
    }
    gpu_test!(gpu_batch_topk_matches_reference, matches_reference);

    async fn large(gpu: &Gpu) {
        let (batch, n, k) = (8, 16_384, 64);
        let tied: Vec<f32> = values(77, batch * n)
            .iter()
            .map(|v| (v * 64.0).round() / 64.0)
            .collect();
        check(gpu, "large", &tied, batch, k, batch).await;
        check(gpu, "large", &tied, batch, k, 3).await;
    }
    gpu_test!(gpu_batch_topk_large_matches_reference, large);

    async fn refuses_bad_shapes(gpu: &Gpu) {
        let buf = [0; 5].map(|_| gpu.storage_zeroed::<f32>("buf", 1024).unwrap());
        let [pre, idx, val, rows, scratch] = &buf;
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let code = |batch, k| Code {
            idx: t(idx, "idx", &[batch, k]),
            val: t(val, "val", &[batch, k]),
            rows: Some(Tensor::all("rows", rows.into()).unwrap()),
        };
        let scratch = Tensor::all("scratch", scratch.into()).unwrap();
        let one = [t(pre, "pre", &[2, 10])];
        let b = BatchTopk {
            pre: &one,
            code: code(2, 11),
            scratch,
        };
        let err = batch_topk(&mut rec, &b).await.unwrap_err();
        assert!(err.to_string().contains("k = 11"), "{err}");
        // Chunks of other widths, or a short chunk before the last.
        for dims in [[[2, 10], [2, 12]], [[1, 10], [2, 10]]] {
            let two = dims.map(|d| t(pre, "pre", &d));
            let b = BatchTopk { pre: &two, ..b };
            let err = batch_topk(&mut rec, &b).await.unwrap_err();
            assert!(err.to_string().contains("pre"), "{err}");
        }
        // A code for more rows than the chunks hold.
        let b = BatchTopk {
            code: code(3, 5),
            ..b
        };
        let err = batch_topk(&mut rec, &b).await.unwrap_err();
        assert!(
            err.to_string().contains("the chunks of pre hold 2"),
            "{err}"
        );
        rec.submit();
    }
    gpu_test!(gpu_batch_topk_refuses_bad_shapes, refuses_bad_shapes);
}
