//! Products with a sparse code `(idx, val)` `[batch, k]` (host of `shaders/sae/sparse.wgsl`):
//! the sparse decoder and the gradient at the code's values. Entries with `idx = NO_LATENT`
//! (or any index past `d_sae`) contribute nothing; `k` is not limited and indices may repeat.
//! With a row index ([`super::code_rows_len`]) the `batch · k` entries are spread over the rows
//! as it says (BatchTopK's code) rather than `k` to a row.

use super::code_rows_len;
use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};
use crate::kernels::{bool_consts, elements, params, row_width, Kernel, Optional};

const SPARSE_WGSL: &str = include_str!("../../../../../shaders/sae/sparse.wgsl");

/// A sparse code as the kernels bind it: latent indices (u32) and values, each `[batch, k]`,
/// and its row index ([`code_rows_len`] words) when its rows hold varying numbers of entries
/// (k is then their mean).
#[derive(Clone, Copy)]
pub struct Code<'a> {
    /// Latent indices `[batch, k]`; `NO_LATENT` slots contribute nothing.
    pub idx: Tensor<'a>,
    /// Latent values `[batch, k]`.
    pub val: Tensor<'a>,
    /// The row index, when there is one.
    pub rows: Option<Tensor<'a>>,
}

impl Code<'_> {
    /// Its rows and entries a row (`(batch, k)`), its tensors checked against each other.
    pub fn shape(&self) -> Result<(u32, u32)> {
        let (batch, k) = self.idx.matrix();
        self.val.expect_matrix(batch, k)?;
        if let Some(r) = self.rows {
            let entries = elements("code", &[batch, k])? as usize;
            r.expect_at_least(code_rows_len(batch as usize, entries) as u64)?;
        }
        Ok((batch, k))
    }
}

/// The optional bindings: the decoder bias, which only `decode` reads, and the row index.
fn optional<'a>(b_dec: Option<View<'a>>, rows: Option<Tensor<'a>>) -> (String, [Optional<'a>; 2]) {
    let consts = bool_consts(&[("ROWS", rows.is_some())]);
    let bindings = [
        Optional {
            name: "b_dec",
            elem: "f32",
            buffer: b_dec,
            writes: false,
        },
        Optional {
            name: "code_rows",
            elem: "u32",
            buffer: rows.map(|r| r.view),
            writes: false,
        },
    ];
    (consts, bindings)
}

/// Tensors of [`decode_sparse`].
#[derive(Clone, Copy)]
pub struct DecodeSparse<'a> {
    /// The code.
    pub code: Code<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: Tensor<'a>,
    /// Decoder bias `[d_in]`.
    pub b_dec: Tensor<'a>,
    /// Output reconstruction `[batch, d_in]`.
    pub x_hat: Tensor<'a>,
}

/// Records `x_hat[b, :] = Σ_t val[b, t] · w_dec[idx[b, t], :] + b_dec`, summed in increasing t
/// (over the row's entries in the row index, when given). One invocation per (row, column),
/// 256 / `row_width(d_in)` rows to a workgroup.
pub async fn decode_sparse(rec: &mut Recording<'_>, t: &DecodeSparse<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (b, k) = t.code.shape()?;
    let (d_sae, d_in) = t.w_dec.matrix();
    t.b_dec.expect(&[d_in])?;
    t.x_hat.expect_matrix(b, d_in)?;
    let width = row_width(d_in);
    let col_tiles = d_in.div_ceil(width);
    let groups = elements("row tiles", &[b.div_ceil(256 / width), col_tiles])?;
    let storage = vec![t.code.idx.view, t.code.val.view, t.w_dec.view, t.x_hat.view];
    let (consts, opt) = optional(Some(t.b_dec.view), t.code.rows);
    let kern = Kernel::new(gpu, "sae_sparse", &consts, SPARSE_WGSL, storage, &opt).await?;
    let p = params(&[b, k, d_in, d_sae, col_tiles, groups as u32, width]);
    kern.dispatch(rec, "decode", p, groups).await?;
    Ok(())
}

/// Tensors of [`latent_grad_sparse`].
#[derive(Clone, Copy)]
pub struct LatentGradSparse<'a> {
    /// The code (its values are not read).
    pub code: Code<'a>,
    /// Gradient of the loss at the reconstruction, `[batch, d_in]`.
    pub g: Tensor<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: Tensor<'a>,
    /// Output gradient at the code's values, `[batch, k]` (0 at empty slots).
    pub g_val: Tensor<'a>,
}

/// Records `g_val[b, t] = w_dec[idx[b, t], :] · g[b, :]`, one invocation per entry summing in
/// increasing column.
pub async fn latent_grad_sparse(rec: &mut Recording<'_>, t: &LatentGradSparse<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (b, k) = t.code.shape()?;
    let (d_sae, d_in) = t.w_dec.matrix();
    t.g.expect_matrix(b, d_in)?;
    t.g_val.expect_matrix(b, k)?;
    let entries = t.code.idx.len;
    let storage = vec![t.code.idx.view, t.g_val.view, t.w_dec.view, t.g.view];
    let (consts, opt) = optional(None, t.code.rows);
    let kern = Kernel::new(gpu, "sae_sparse", &consts, SPARSE_WGSL, storage, &opt).await?;
    let p = params(&[b, k, d_in, d_sae, 0, 0]);
    kern.dispatch(rec, "latent_grad", p, entries.div_ceil(64))
        .await?;
    Ok(())
}

/// The row of entry `e` of a code: from its row index, or `k` entries to a row.
fn row_of(rows: Option<&[u32]>, k: usize, e: usize) -> usize {
    rows.map_or(e / k, |r| r[e] as usize)
}

/// CPU reference of [`decode_sparse`] (`rows` as the kernel's row index).
pub fn decode_sparse_ref(
    idx: &[u32],
    val: &[f32],
    rows: Option<&[u32]>,
    w_dec: &[f32],
    b_dec: &[f32],
    k: usize,
    d_in: usize,
) -> Vec<f32> {
    let d_sae = w_dec.len() / d_in;
    let mut x_hat = vec![0f32; idx.len() / k * d_in];
    for (e, (&j, &v)) in idx.iter().zip(val).enumerate() {
        let j = j as usize;
        if j < d_sae {
            let out = &mut x_hat[row_of(rows, k, e) * d_in..][..d_in];
            for (o, w) in out.iter_mut().zip(&w_dec[j * d_in..]) {
                *o += v * w;
            }
        }
    }
    for row in x_hat.chunks_exact_mut(d_in) {
        row.iter_mut().zip(b_dec).for_each(|(o, b)| *o += b);
    }
    x_hat
}

/// CPU reference of [`latent_grad_sparse`] (`rows` as the kernel's row index).
pub fn latent_grad_sparse_ref(
    idx: &[u32],
    rows: Option<&[u32]>,
    g: &[f32],
    w_dec: &[f32],
    k: usize,
    d_in: usize,
) -> Vec<f32> {
    let d_sae = w_dec.len() / d_in;
    idx.iter()
        .enumerate()
        .map(|(e, &j)| {
            let j = j as usize;
            if j >= d_sae {
                return 0.0;
            }
            let row = row_of(rows, k, e);
            let mut s = 0f32;
            for i in 0..d_in {
                s += w_dec[j * d_in + i] * g[row * d_in + i];
            }
            s
        })
        .collect()
}

/// A test code: indices spread over `d_sae` with repeats, every seventh slot empty.
#[cfg(test)]
pub(super) fn test_code(seed: u32, batch: usize, k: usize, d_sae: usize) -> (Vec<u32>, Vec<f32>) {
    let idx = crate::kernels::test_data::values(seed, batch * k)
        .iter()
        .enumerate()
        .map(|(e, v)| {
            if e % 7 == 3 {
                super::NO_LATENT
            } else {
                (((v + 1.0) * 0.5 * d_sae as f32) as usize).min(d_sae - 1) as u32
            }
        })
        .collect();
    (idx, crate::kernels::test_data::values(seed + 1, batch * k))
}

/// A test row index for `batch · k` entries spread unevenly over the rows: rows drawn at random
/// and sorted, so some rows are empty and some hold many entries.
#[cfg(test)]
pub(super) fn test_rows(seed: u32, batch: usize, k: usize) -> Vec<u32> {
    let mut rows: Vec<u32> = crate::kernels::test_data::values(seed, batch * k)
        .iter()
        .map(|v| (v * v * batch as f32) as u32 % batch as u32)
        .collect();
    rows.sort_unstable();
    let offsets: Vec<u32> = (0..=batch as u32)
        .map(|r| rows.partition_point(|&x| x < r) as u32)
        .collect();
    rows.extend(offsets);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{Gpu, Recorder};
    use crate::gpu_test;
    use crate::kernels::test_data::{t, values};
    use crate::testing::assert_close;

    /// Sums of up to a few hundred terms of magnitude ≤ 1: 2e-5 absolute + 1e-4 relative.
    const ATOL: f32 = 2e-5;
    const RTOL: f32 = 1e-4;

    async fn matches_reference(gpu: &Gpu) {
        // (batch, k, d_in, d_sae): rows of 64, 128 and 256 columns to a workgroup (with a
        // partial last workgroup), d_in past one column tile, k past 256; each with k entries
        // to a row and with entries spread unevenly (long rows, empty rows).
        for (batch, k, d_in, d_sae) in [
            (37, 5, 13, 100),
            (1, 1, 1, 1),
            (3, 37, 129, 50),
            (2, 300, 257, 40),
            (64, 32, 64, 512),
            (9, 3, 100, 30),
        ] {
            for varied in [false, true] {
                let (idx, val) = test_code(batch as u32, batch, k, d_sae);
                let rows = varied.then(|| test_rows(batch as u32 + 7, batch, k));
                let w_dec = values(3, d_sae * d_in);
                let b_dec = values(4, d_in);
                let g = values(5, batch * d_in);
                let bidx = gpu.storage_from("idx", &idx).unwrap();
                let bval = gpu.storage_from("val", &val).unwrap();
                let brows = rows.as_ref().map(|r| gpu.storage_from("rows", r).unwrap());
                let bw = gpu.storage_from("w_dec", &w_dec).unwrap();
                let bb = gpu.storage_from("b_dec", &b_dec).unwrap();
                let bg = gpu.storage_from("g", &g).unwrap();
                let x_hat = gpu.storage_zeroed::<f32>("x_hat", batch * d_in).unwrap();
                let g_val = gpu.storage_zeroed::<f32>("g_val", batch * k).unwrap();
                let mut recorder = Recorder::new(gpu);
                let mut rec = recorder.begin();
                let code = Code {
                    idx: t(&bidx, "idx", &[batch, k]),
                    val: t(&bval, "val", &[batch, k]),
                    rows: brows
                        .as_ref()
                        .map(|r| Tensor::all("rows", r.into()).unwrap()),
                };
                let w = t(&bw, "w_dec", &[d_sae, d_in]);
                let b = DecodeSparse {
                    code,
                    w_dec: w,
                    b_dec: t(&bb, "b_dec", &[d_in]),
                    x_hat: t(&x_hat, "x_hat", &[batch, d_in]),
                };
                decode_sparse(&mut rec, &b).await.unwrap();
                let b = LatentGradSparse {
                    code,
                    g: t(&bg, "g", &[batch, d_in]),
                    w_dec: w,
                    g_val: t(&g_val, "g_val", &[batch, k]),
                };
                latent_grad_sparse(&mut rec, &b).await.unwrap();
                rec.submit();
                let what = format!("B={batch} k={k} d_in={d_in} d_sae={d_sae} varied {varied}");
                let rows = rows.as_deref();
                let got: Vec<f32> = gpu.read(&x_hat, batch * d_in).await.unwrap();
                let want = decode_sparse_ref(&idx, &val, rows, &w_dec, &b_dec, k, d_in);
                assert_close(&format!("decode_sparse {what}"), &got, &want, ATOL, RTOL);
                let got: Vec<f32> = gpu.read(&g_val, batch * k).await.unwrap();
                let want = latent_grad_sparse_ref(&idx, rows, &g, &w_dec, k, d_in);
                assert_close(&format!("g_val {what}"), &got, &want, ATOL, RTOL);
            }
        }
    }
    gpu_test!(
        gpu_sparse_decode_and_latent_grad_match_reference,
        matches_reference
    );
}
