//! Sparse weight gradients through the transpose of the code (hosts of `shaders/sae/transpose_lists.wgsl`
//! and `shaders/sae/transpose_scatter.wgsl`): per-latent lists of the entries that use each latent, then
//! each latent's columns add up its rows, a workgroup serving 256 / width latents of `width`
//! columns (64, 128 or 256, whichever is narrowest to cover d_in). Only active latents' rows are
//! touched.
//!
//! Determinism: the lists are built with atomic counts and an atomic fill, so their order at
//! first depends on scheduling; each list is then sorted by entry (`b·k + t`), in workgroup
//! memory up to 2048 entries and in place in storage beyond (the same sorting network, so
//! lists of any length are handled). Every gradient element is then one sum over its latent's
//! entries in increasing `(b, t)`, added once to the old value: the result is the same bits on
//! every run on a given device, and no floats are added atomically.
//!
//! Cost: a list of at most 32 entries is insertion-sorted by one invocation (one workgroup
//! covers 256 latents, so sparse codes pay for d_sae/256 workgroups, not d_sae); one workgroup
//! sorts a longer list of `c` entries in `O(c log² c)` and each gradient element
//! sums `c` terms. For codes with distinct latents per row (TopK, BatchTopK, AuxK)
//! `c <= batch`. On lavapipe, which abandons workgroups that run for about a second, one list
//! of 65,536 entries sorts in about 0.15 s and one of 262,144 does not finish.

use super::sparse::Code;
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};
use crate::kernels::{bool_consts, elements, items_per_group, params, row_width, Kernel, Optional};

const LISTS_WGSL: &str = include_str!("../../../../../shaders/sae/transpose_lists.wgsl");
const SCATTER_WGSL: &str = include_str!("../../../../../shaders/sae/transpose_scatter.wgsl");

/// Counts per block of the offsets scan.
const SCAN_BLOCK: u64 = 1024;

/// Scratch words: counts, offsets (one more), block sums, the lists.
fn scratch_words(batch: u64, k: u64, d_sae: u64) -> u64 {
    2 * d_sae + 1 + d_sae.div_ceil(SCAN_BLOCK) + batch * k
}

/// Bytes of the scratch buffer [`weight_grad_sparse`] needs.
pub fn weight_grad_sparse_scratch_bytes(batch: usize, k: usize, d_sae: usize) -> u64 {
    4 * scratch_words(batch as u64, k as u64, d_sae as u64)
}

/// The encoder's share of [`weight_grad_sparse`].
#[derive(Clone, Copy)]
pub struct EncoderGrad<'a> {
    /// Gradient at each entry's pre-activation, `[batch, k]`.
    pub gpre: Tensor<'a>,
    /// Centred inputs `x − b_dec`, `[batch, d_in]`.
    pub xc: Tensor<'a>,
    /// Encoder gradient `[d_sae, d_in]`, added to.
    pub w_enc_grad: Tensor<'a>,
    /// Encoder-bias gradient `[d_sae]`, added to.
    pub b_enc_grad: Tensor<'a>,
}

/// Tensors of [`weight_grad_sparse`].
#[derive(Clone, Copy)]
pub struct WeightGradSparse<'a> {
    /// The code; `NO_LATENT` slots are skipped.
    pub code: Code<'a>,
    /// Gradient of the loss at the reconstruction, `[batch, d_in]`.
    pub g: Tensor<'a>,
    /// Decoder gradient `[d_sae, d_in]`, added to.
    pub w_dec_grad: Tensor<'a>,
    /// The encoder's gradients, when wanted.
    pub encoder: Option<EncoderGrad<'a>>,
    /// Scratch of at least [`weight_grad_sparse_scratch_bytes`] bytes; its contents do not
    /// matter.
    pub scratch: Tensor<'a>,
}

/// Records the sparse weight gradients of a code `(idx, val)`:
/// `w_dec_grad[j, :] += Σ_{(b,t): idx[b,t] = j} val[b,t] · g[b, :]` and, with `encoder`,
/// `w_enc_grad[j, :] += Σ gpre[b,t] · xc[b, :]` and `b_enc_grad[j] += Σ gpre[b,t]` over the
/// same entries, each sum in increasing `(b, t)` (see the module notes on determinism).
///
/// Dispatches: building the lists (zero, count, a three-step scan, fill, sort) in
/// one pass, then one invocation per (latent, column) for the decoder and, with `encoder`,
/// another such pass for the encoder; invocations of latents no entry uses return at once.
pub async fn weight_grad_sparse(rec: &mut Recording<'_>, t: &WeightGradSparse<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (b, k) = t.code.shape()?;
    let (d_sae, d_in) = t.w_dec_grad.matrix();
    t.g.expect_matrix(b, d_in)?;
    if let Some(e) = &t.encoder {
        e.gpre.expect_matrix(b, k)?;
        e.xc.expect_matrix(b, d_in)?;
        e.w_enc_grad.expect_matrix(d_sae, d_in)?;
        e.b_enc_grad.expect(&[d_sae])?;
    }
    let entries = t.code.idx.len;
    let words = scratch_words(b as u64, k as u64, d_sae as u64);
    if words >= u32::MAX as u64 {
        return Err(EngineError::invalid(
            "scratch",
            words,
            "too many words for 32-bit indices",
        ));
    }
    t.scratch.expect_at_least(words)?;
    let (idx, scratch) = (t.code.idx.view, t.scratch.view);

    let blocks = (d_sae as u64).div_ceil(SCAN_BLOCK);
    let lp = params(&[entries as u32, d_sae, blocks as u32, 0]);
    let lists = Kernel::new(
        gpu,
        "sae_transpose_lists",
        "",
        LISTS_WGSL,
        vec![idx, scratch],
        &[],
    )
    .await?;
    lists
        .dispatch(rec, "zero_counts", lp, (d_sae as u64).div_ceil(256))
        .await?;
    lists
        .dispatch(rec, "count", lp, entries.div_ceil(256))
        .await?;
    lists.dispatch(rec, "block_sums", lp, blocks).await?;
    lists.dispatch(rec, "scan_sums", lp, 1).await?;
    lists.dispatch(rec, "scan_apply", lp, blocks).await?;
    lists
        .dispatch(rec, "fill", lp, entries.div_ceil(256))
        .await?;
    lists
        .dispatch(rec, "sort", lp, (d_sae as u64).div_ceil(256))
        .await?;

    let list_at = (words - entries) as u32;
    let width = row_width(d_in);
    let col_tiles = d_in.div_ceil(width);
    let latent_groups = d_sae.div_ceil(256 / width);
    let latent_tiles = elements("latents × column tiles", &[latent_groups, col_tiles])?;
    let span = items_per_group(gpu, latent_tiles);
    let sp = params(&[
        k,
        d_in,
        d_sae,
        list_at,
        col_tiles,
        width,
        latent_tiles as u32,
        span as u32,
    ]);
    let mut jobs = vec![(t.code.val, t.g, t.w_dec_grad, None)];
    if let Some(e) = &t.encoder {
        jobs.push((e.gpre, e.xc, e.w_enc_grad, Some(e.b_enc_grad.view)));
    }
    let code_rows = t.code.rows.map(|r| r.view);
    for (coef, rows, grad, bias) in jobs {
        let consts = bool_consts(&[("BIAS", bias.is_some()), ("ROWS", code_rows.is_some())]);
        let storage = vec![scratch, coef.view, rows.view, grad.view];
        let optional = [
            Optional {
                name: "bias_grad",
                elem: "f32",
                buffer: bias,
                writes: true,
            },
            Optional {
                name: "code_rows",
                elem: "u32",
                buffer: code_rows,
                writes: false,
            },
        ];
        let kern = Kernel::new(
            gpu,
            "sae_transpose_scatter",
            &consts,
            SCATTER_WGSL,
            storage,
            &optional,
        )
        .await?;
        kern.dispatch(rec, "accumulate", sp, latent_tiles.div_ceil(span))
            .await?;
    }
    Ok(())
}

/// CPU reference of one half of [`weight_grad_sparse`]: `grad[j, :] += Σ coef[e] ·
/// rows[row(e), :]` (and `bias_grad[j] += Σ coef[e]`) over the entries `e` with `idx[e] = j`,
/// each latent's sum taken in increasing `e` and then added, like the kernel. `row(e)` is
/// `code_rows[e]` when given, else `e / k`.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad_sparse_ref(
    idx: &[u32],
    code_rows: Option<&[u32]>,
    coef: &[f32],
    rows: &[f32],
    grad: &mut [f32],
    mut bias_grad: Option<&mut [f32]>,
    k: usize,
    d_in: usize,
) {
    let d_sae = grad.len() / d_in;
    let mut lists = vec![Vec::new(); d_sae];
    for (e, &j) in idx.iter().enumerate() {
        if (j as usize) < d_sae {
            lists[j as usize].push(e);
        }
    }
    for (j, list) in lists.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        for i in 0..d_in {
            let mut s = 0f32;
            for &e in list {
                let row = code_rows.map_or(e / k, |r| r[e] as usize);
                s += coef[e] * rows[row * d_in + i];
            }
            grad[j * d_in + i] += s;
        }
        if let Some(bg) = bias_grad.as_deref_mut() {
            bg[j] += list.iter().map(|&e| coef[e]).sum::<f32>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sparse::{test_code, test_rows};
    use super::*;
    use crate::gpu::{Gpu, Recorder};
    use crate::gpu_test;
    use crate::kernels::test_data::t;
    use crate::kernels::test_data::{values, Timer};
    use crate::models::sae::kernels::{weight_grad_dense, WeightGradDense, NO_LATENT};
    use crate::testing::assert_close;

    /// Sums of up to a few thousand terms of magnitude ≤ 1: 1e-4 absolute + 1e-4 relative.
    const ATOL: f32 = 1e-4;
    const RTOL: f32 = 1e-4;

    struct Outputs {
        w_dec_grad: Vec<f32>,
        w_enc_grad: Vec<f32>,
        b_enc_grad: Vec<f32>,
        scratch: Vec<u32>,
    }

    /// Runs the kernel on a code with gradients starting from known values.
    async fn run(
        gpu: &Gpu,
        idx: &[u32],
        val: &[f32],
        code_rows: Option<&[u32]>,
        (batch, k, d_in, d_sae): (usize, usize, usize, usize),
    ) -> Outputs {
        let g = values(21, batch * d_in);
        let gpre = values(22, batch * k);
        let xc = values(23, batch * d_in);
        let bidx = gpu.storage_from("idx", idx).unwrap();
        let bval = gpu.storage_from("val", val).unwrap();
        let brows = code_rows.map(|r| gpu.storage_from("rows", r).unwrap());
        let bg = gpu.storage_from("g", &g).unwrap();
        let bgpre = gpu.storage_from("gpre", &gpre).unwrap();
        let bxc = gpu.storage_from("xc", &xc).unwrap();
        let gw_dec = gpu
            .storage_from("gw_dec", &values(24, d_sae * d_in))
            .unwrap();
        let gw_enc = gpu
            .storage_from("gw_enc", &values(25, d_sae * d_in))
            .unwrap();
        let gb_enc = gpu.storage_from("gb_enc", &values(26, d_sae)).unwrap();
        let bytes = weight_grad_sparse_scratch_bytes(batch, k, d_sae) as usize;
        let scratch = gpu.storage_zeroed::<u8>("scratch", bytes).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = WeightGradSparse {
            code: Code {
                idx: t(&bidx, "idx", &[batch, k]),
                val: t(&bval, "val", &[batch, k]),
                rows: brows
                    .as_ref()
                    .map(|r| Tensor::all("rows", r.into()).unwrap()),
            },
            g: t(&bg, "g", &[batch, d_in]),
            w_dec_grad: t(&gw_dec, "gw_dec", &[d_sae, d_in]),
            encoder: Some(EncoderGrad {
                gpre: t(&bgpre, "gpre", &[batch, k]),
                xc: t(&bxc, "xc", &[batch, d_in]),
                w_enc_grad: t(&gw_enc, "gw_enc", &[d_sae, d_in]),
                b_enc_grad: t(&gb_enc, "gb_enc", &[d_sae]),
            }),
            scratch: Tensor::all("scratch", (&scratch).into()).unwrap(),
        };
        weight_grad_sparse(&mut rec, &b).await.unwrap();
        rec.submit();
        Outputs {
            w_dec_grad: gpu.read(&gw_dec, d_sae * d_in).await.unwrap(),
            w_enc_grad: gpu.read(&gw_enc, d_sae * d_in).await.unwrap(),
            b_enc_grad: gpu.read(&gb_enc, d_sae).await.unwrap(),
            scratch: gpu.read(&scratch, bytes / 4).await.unwrap(),
        }
    }

    fn check(
        what: &str,
        got: &Outputs,
        idx: &[u32],
        val: &[f32],
        code_rows: Option<&[u32]>,
        shape: (usize, usize, usize, usize),
    ) {
        let (batch, k, d_in, d_sae) = shape;
        let g = values(21, batch * d_in);
        let gpre = values(22, batch * k);
        let xc = values(23, batch * d_in);
        let mut w_dec_grad = values(24, d_sae * d_in);
        let mut w_enc_grad = values(25, d_sae * d_in);
        let mut b_enc_grad = values(26, d_sae);
        weight_grad_sparse_ref(idx, code_rows, val, &g, &mut w_dec_grad, None, k, d_in);
        weight_grad_sparse_ref(
            idx,
            code_rows,
            &gpre,
            &xc,
            &mut w_enc_grad,
            Some(&mut b_enc_grad),
            k,
            d_in,
        );
        let what = format!("{what} B={batch} k={k} d_in={d_in} d_sae={d_sae}");
        // The lists themselves: offsets, then each latent's entries in increasing order.
        let mut offsets = vec![0u32];
        let mut lists = Vec::new();
        for j in 0..d_sae as u32 {
            lists.extend((0..idx.len() as u32).filter(|&e| idx[e as usize] == j));
            offsets.push(lists.len() as u32);
        }
        let s = &got.scratch;
        assert!(
            s[..d_sae].iter().all(|&c| c == 0),
            "{what}: counts not reset"
        );
        assert_eq!(&s[d_sae..2 * d_sae + 1], &offsets[..], "{what}: offsets");
        let list_at = s.len() - batch * k;
        assert_eq!(
            &s[list_at..list_at + lists.len()],
            &lists[..],
            "{what}: lists"
        );
        assert_close(
            &format!("gW_dec {what}"),
            &got.w_dec_grad,
            &w_dec_grad,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("gW_enc {what}"),
            &got.w_enc_grad,
            &w_enc_grad,
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("gb_enc {what}"),
            &got.b_enc_grad,
            &b_enc_grad,
            ATOL,
            RTOL,
        );
    }

    async fn matches_reference(gpu: &Gpu) {
        for shape in [
            (37, 5, 13, 100),
            (1, 1, 1, 1),
            (3, 37, 129, 50),
            (64, 32, 300, 512),
            (5, 4, 7, 3000),
            // Two latents of 128 columns per workgroup.
            (20, 3, 100, 51),
        ] {
            let (batch, k, _, d_sae) = shape;
            let (idx, val) = test_code(batch as u32 + 10, batch, k, d_sae);
            let got = run(gpu, &idx, &val, None, shape).await;
            check("random code", &got, &idx, &val, None, shape);
            // The same entries spread unevenly over the rows.
            let rows = test_rows(batch as u32 + 20, batch, k);
            let got = run(gpu, &idx, &val, Some(&rows), shape).await;
            check("varied rows", &got, &idx, &val, Some(&rows), shape);
        }
        // Every entry empty: nothing changes.
        let shape = (4, 3, 5, 6);
        let idx = vec![NO_LATENT; 12];
        let got = run(gpu, &idx, &values(1, 12), None, shape).await;
        check("empty code", &got, &idx, &values(1, 12), None, shape);
    }
    gpu_test!(gpu_sparse_weight_grads_match_reference, matches_reference);

    async fn long_lists(gpu: &Gpu) {
        // Lists of about 1300 (sorted in workgroup memory) and about 2600 entries (sorted in
        // storage), and one latent used by nearly every entry.
        for shape in [(1300, 2, 5, 2), (2600, 2, 5, 2), (3000, 1, 3, 4)] {
            let (batch, k, _, d_sae) = shape;
            let (mut idx, val) = test_code(batch as u32, batch, k, d_sae);
            if d_sae == 4 {
                idx.iter_mut().enumerate().for_each(|(e, j)| {
                    *j = if e % 100 == 0 {
                        (e / 100 % 3) as u32 + 1
                    } else {
                        0
                    }
                });
            }
            let start = Timer::start();
            let got = run(gpu, &idx, &val, None, shape).await;
            start.report(&format!("weight_grad_sparse {shape:?} (GPU and readback)"));
            check("long lists", &got, &idx, &val, None, shape);
        }
    }
    gpu_test!(gpu_sparse_weight_grads_long_lists, long_lists);

    async fn short_and_long_lists_together(gpu: &Gpu) {
        // Latent j holds j entries (0..=69) spread over the rows: lists either side of the
        // kernel's 32-entry split between sorting by one invocation and by the workgroup, in the
        // same workgroup, and over 300 latents so a second workgroup has some too.
        let d_sae = 300;
        let mut idx: Vec<u32> = (0..70u32).flat_map(|j| (0..j).map(move |_| j)).collect();
        idx.extend((0..(d_sae as u32 - 70)).map(|j| 70 + j));
        let n = idx.len();
        // Interleave the latents' entries with a fixed permutation.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&e| (e * 7919) % n);
        let idx: Vec<u32> = order.iter().map(|&e| idx[e]).collect();
        let (batch, k) = (n / 5, 5);
        let shape = (batch, k, 9, d_sae);
        let val = values(3, n);
        let got = run(gpu, &idx[..batch * k], &val[..batch * k], None, shape).await;
        check(
            "short and long",
            &got,
            &idx[..batch * k],
            &val[..batch * k],
            None,
            shape,
        );
    }
    gpu_test!(
        gpu_sparse_weight_grads_short_and_long_lists,
        short_and_long_lists_together
    );

    async fn deterministic_and_equal_to_dense(gpu: &Gpu) {
        // A TopK-like code (distinct latents per row): the sparse gradient is bitwise the same
        // on every run, and agrees with the dense product over the scattered activations.
        let (batch, k, d_in, d_sae) = (96, 16, 40, 64);
        let mut idx = Vec::new();
        for b in 0..batch {
            let start = (values(b as u32, 1)[0].abs() * d_sae as f32) as usize;
            idx.extend((0..k).map(|t| ((start + 3 * t) % d_sae) as u32));
        }
        let val = values(30, batch * k);
        let shape = (batch, k, d_in, d_sae);
        let first = run(gpu, &idx, &val, None, shape).await;
        for _ in 0..3 {
            let again = run(gpu, &idx, &val, None, shape).await;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&again.w_dec_grad), bits(&first.w_dec_grad));
            assert_eq!(bits(&again.w_enc_grad), bits(&first.w_enc_grad));
            assert_eq!(bits(&again.b_enc_grad), bits(&first.b_enc_grad));
        }
        let mut f = vec![0f32; batch * d_sae];
        for (e, &j) in idx.iter().enumerate() {
            f[(e / k) * d_sae + j as usize] = val[e];
        }
        let bf = gpu.storage_from("f", &f).unwrap();
        let bg = gpu.storage_from("g", &values(21, batch * d_in)).unwrap();
        let grad = gpu.storage_from("grad", &values(24, d_sae * d_in)).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = WeightGradDense {
            coef: t(&bf, "f", &[batch, d_sae]),
            rows: t(&bg, "g", &[batch, d_in]),
            grad: t(&grad, "grad", &[d_sae, d_in]),
        };
        weight_grad_dense(&mut rec, &b).await.unwrap();
        rec.submit();
        let dense: Vec<f32> = gpu.read(&grad, d_sae * d_in).await.unwrap();
        assert_close(
            "sparse vs dense gW_dec",
            &first.w_dec_grad,
            &dense,
            ATOL,
            RTOL,
        );
    }
    gpu_test!(
        gpu_sparse_weight_grads_deterministic_and_equal_to_dense,
        deterministic_and_equal_to_dense
    );
}
