//! Dense products (host of `shaders/sae_matmul.wgsl`): the encoder's pre-activations, the
//! dense decoder, and the dense gradients that the sparse kernels are checked against and that
//! dense architectures (ReLU-L1, Gated, JumpReLU) use.

use super::{bool_consts, check_buffer, dim, elements, params, Kernel, Optional};
use crate::error::Result;
use crate::gpu::{Gpu, Recording};

const MATMUL_WGSL: &str = include_str!("../../../../shaders/sae_matmul.wgsl");
const TILE: u64 = 64;

/// `c[M, N] = op(a) · op(b) (+ bias[n]) (+ old c)`, with `op(a)` `[M, K]` and `op(b)` `[K, N]`.
/// A transposed operand is stored the other way round (`a` as `[K, M]`, `b` as `[N, K]`) and
/// read in place.
#[derive(Clone, Copy)]
pub struct Matmul<'a> {
    /// Left operand: `[M, K]`, or `[K, M]` with `trans_a`.
    pub a: &'a wgpu::Buffer,
    /// Right operand: `[K, N]`, or `[N, K]` with `trans_b`.
    pub b: &'a wgpu::Buffer,
    /// Output `[M, N]`.
    pub c: &'a wgpu::Buffer,
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// `a` is stored transposed.
    pub trans_a: bool,
    /// `b` is stored transposed.
    pub trans_b: bool,
    /// Added to every row of the product, `[N]`.
    pub bias: Option<&'a wgpu::Buffer>,
    /// Subtracted from `op(a)`'s every row before the product, `[K]`.
    pub centre: Option<&'a wgpu::Buffer>,
    /// Add to `c` instead of overwriting it.
    pub accumulate: bool,
}

/// Names of a product's buffers in error messages: a, b, c, bias, centre.
type Names = [&'static str; 5];

/// The shader's two kernels: 64×64 output tiles of 8×8 blocks for GPUs, 128×128 tiles of
/// 16×16 blocks for software adapters (fewer loads per product where each load loops over the
/// SIMD lanes; too many accumulators for a GPU's registers).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tiling {
    Gpu,
    Wide,
}

impl Tiling {
    fn for_device(gpu: &Gpu) -> Self {
        if gpu.is_software() {
            Tiling::Wide
        } else {
            Tiling::Gpu
        }
    }
}

/// Records one tiled product (output tiles of 64×64, or 128×128 on software adapters, a 2-D
/// grid when there are many). Each output element is the sum over k in increasing order, then
/// the bias, then the old value.
pub async fn matmul(rec: &mut Recording<'_>, mm: &Matmul<'_>) -> Result<()> {
    matmul_named(rec, mm, ["a", "b", "c", "bias", "centre"]).await
}

async fn matmul_named(rec: &mut Recording<'_>, mm: &Matmul<'_>, names: Names) -> Result<()> {
    let tiling = Tiling::for_device(rec.gpu());
    matmul_tiled(rec, mm, names, tiling).await
}

async fn matmul_tiled(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    names: Names,
    tiling: Tiling,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (m, n, k) = (dim("m", mm.m)?, dim("n", mm.n)?, dim("k", mm.k)?);
    check_buffer(gpu, names[0], mm.a, elements(names[0], &[m, k])?)?;
    check_buffer(gpu, names[1], mm.b, elements(names[1], &[k, n])?)?;
    check_buffer(gpu, names[2], mm.c, elements(names[2], &[m, n])?)?;
    if let Some(bias) = mm.bias {
        check_buffer(gpu, names[3], bias, n as u64)?;
    }
    if let Some(centre) = mm.centre {
        check_buffer(gpu, names[4], centre, k as u64)?;
    }
    let (entry, tile) = match tiling {
        Tiling::Gpu => ("matmul", TILE),
        Tiling::Wide => ("matmul_wide", 2 * TILE),
    };
    let tiles_n = (n as u64).div_ceil(tile);
    let tiles = (m as u64).div_ceil(tile) * tiles_n;
    let consts = bool_consts(&[
        ("TRANS_A", mm.trans_a),
        ("TRANS_B", mm.trans_b),
        ("CENTRE", mm.centre.is_some()),
        ("BIAS", mm.bias.is_some()),
        ("ACCUMULATE", mm.accumulate),
    ]);
    let optional = [
        Optional {
            name: "bias",
            elem: "f32",
            buffer: mm.bias,
        },
        Optional {
            name: "centre",
            elem: "f32",
            buffer: mm.centre,
        },
    ];
    let storage = vec![mm.a, mm.b, mm.c];
    let kern = Kernel::new(gpu, "sae_matmul", &consts, MATMUL_WGSL, storage, &optional).await?;
    kern.dispatch(
        rec,
        entry,
        params(&[m, n, k, tiles_n as u32, tiles as u32]),
        tiles,
    )
    .await?;
    Ok(())
}

/// Buffers of [`encode`].
#[derive(Clone, Copy)]
pub struct EncodeBuffers<'a> {
    /// Inputs `[batch, d_in]`.
    pub x: &'a wgpu::Buffer,
    /// Encoder `[d_sae, d_in]`.
    pub w_enc: &'a wgpu::Buffer,
    /// Encoder bias `[d_sae]`.
    pub b_enc: &'a wgpu::Buffer,
    /// Decoder bias `[d_in]`, subtracted from the inputs.
    pub b_dec: &'a wgpu::Buffer,
    /// Output pre-activations `[batch, d_sae]`.
    pub pre: &'a wgpu::Buffer,
}

/// Records `pre[b, j] = Σ_i w_enc[j, i] (x[b, i] − b_dec[i]) + b_enc[j]`.
pub async fn encode(
    rec: &mut Recording<'_>,
    buf: &EncodeBuffers<'_>,
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Result<()> {
    let mm = Matmul {
        a: buf.x,
        b: buf.w_enc,
        c: buf.pre,
        m: batch,
        n: d_sae,
        k: d_in,
        trans_a: false,
        trans_b: true,
        bias: Some(buf.b_enc),
        centre: Some(buf.b_dec),
        accumulate: false,
    };
    matmul_named(rec, &mm, ["x", "w_enc", "pre", "b_enc", "b_dec"]).await
}

/// Buffers of [`decode_dense`].
#[derive(Clone, Copy)]
pub struct DecodeDenseBuffers<'a> {
    /// Latent activations `[batch, d_sae]`.
    pub f: &'a wgpu::Buffer,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: &'a wgpu::Buffer,
    /// Decoder bias `[d_in]`.
    pub b_dec: &'a wgpu::Buffer,
    /// Output reconstruction `[batch, d_in]`.
    pub x_hat: &'a wgpu::Buffer,
}

/// Records `x_hat = f · w_dec + b_dec`.
pub async fn decode_dense(
    rec: &mut Recording<'_>,
    buf: &DecodeDenseBuffers<'_>,
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Result<()> {
    let mm = Matmul {
        a: buf.f,
        b: buf.w_dec,
        c: buf.x_hat,
        m: batch,
        n: d_in,
        k: d_sae,
        trans_a: false,
        trans_b: false,
        bias: Some(buf.b_dec),
        centre: None,
        accumulate: false,
    };
    matmul_named(rec, &mm, ["f", "w_dec", "x_hat", "b_dec", "-"]).await
}

/// Buffers of [`latent_grad_dense`].
#[derive(Clone, Copy)]
pub struct LatentGradDenseBuffers<'a> {
    /// Gradient of the loss at the reconstruction, `[batch, d_in]`.
    pub g: &'a wgpu::Buffer,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: &'a wgpu::Buffer,
    /// Output gradient at the latent activations, `[batch, d_sae]`.
    pub gf: &'a wgpu::Buffer,
}

/// Records `gf = g · w_decᵀ` (overwriting `gf`).
pub async fn latent_grad_dense(
    rec: &mut Recording<'_>,
    buf: &LatentGradDenseBuffers<'_>,
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Result<()> {
    let mm = Matmul {
        a: buf.g,
        b: buf.w_dec,
        c: buf.gf,
        m: batch,
        n: d_sae,
        k: d_in,
        trans_a: false,
        trans_b: true,
        bias: None,
        centre: None,
        accumulate: false,
    };
    matmul_named(rec, &mm, ["g", "w_dec", "gf", "-", "-"]).await
}

/// Buffers of [`weight_grad_dense`].
#[derive(Clone, Copy)]
pub struct WeightGradDenseBuffers<'a> {
    /// Per-latent coefficients `[batch, d_sae]`: `f` for the decoder, `gpre` for the encoder.
    pub coef: &'a wgpu::Buffer,
    /// Rows `[batch, d_in]`: `g` for the decoder, the centred input `xc` for the encoder.
    pub rows: &'a wgpu::Buffer,
    /// Gradient `[d_sae, d_in]`, added to.
    pub grad: &'a wgpu::Buffer,
}

/// Records `grad += coefᵀ · rows`: `gW_dec += fᵀ · g`, or `gW_enc += gpreᵀ · xc`.
pub async fn weight_grad_dense(
    rec: &mut Recording<'_>,
    buf: &WeightGradDenseBuffers<'_>,
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Result<()> {
    let mm = Matmul {
        a: buf.coef,
        b: buf.rows,
        c: buf.grad,
        m: d_sae,
        n: d_in,
        k: batch,
        trans_a: true,
        trans_b: false,
        bias: None,
        centre: None,
        accumulate: true,
    };
    matmul_named(rec, &mm, ["coef", "rows", "grad", "-", "-"]).await
}

/// CPU reference of the plain product `op(a) · op(b)` (see [`Matmul`] for the layouts), each
/// element summed in increasing k like the kernel.
pub fn matmul_ref(
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for r in 0..m {
        for col in 0..n {
            let mut s = 0f32;
            for i in 0..k {
                let av = if trans_a { a[i * m + r] } else { a[r * k + i] };
                let bv = if trans_b {
                    b[col * k + i]
                } else {
                    b[i * n + col]
                };
                s += av * bv;
            }
            c[r * n + col] = s;
        }
    }
    c
}

/// CPU reference of [`encode`].
pub fn encode_ref(
    x: &[f32],
    w_enc: &[f32],
    b_enc: &[f32],
    b_dec: &[f32],
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Vec<f32> {
    let xc: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(e, v)| v - b_dec[e % d_in])
        .collect();
    let mut pre = matmul_ref(&xc, w_enc, (batch, d_sae, d_in), false, true);
    for (e, p) in pre.iter_mut().enumerate() {
        *p += b_enc[e % d_sae];
    }
    pre
}

/// CPU reference of [`decode_dense`].
pub fn decode_dense_ref(
    f: &[f32],
    w_dec: &[f32],
    b_dec: &[f32],
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Vec<f32> {
    let mut x_hat = matmul_ref(f, w_dec, (batch, d_in, d_sae), false, false);
    for (e, v) in x_hat.iter_mut().enumerate() {
        *v += b_dec[e % d_in];
    }
    x_hat
}

/// CPU reference of [`latent_grad_dense`].
pub fn latent_grad_dense_ref(
    g: &[f32],
    w_dec: &[f32],
    batch: usize,
    d_in: usize,
    d_sae: usize,
) -> Vec<f32> {
    matmul_ref(g, w_dec, (batch, d_sae, d_in), false, true)
}

/// CPU reference of [`weight_grad_dense`]: adds to `grad`.
pub fn weight_grad_dense_ref(
    coef: &[f32],
    rows: &[f32],
    grad: &mut [f32],
    batch: usize,
    d_in: usize,
    d_sae: usize,
) {
    let sum = matmul_ref(coef, rows, (d_sae, d_in, batch), true, false);
    for (g, s) in grad.iter_mut().zip(sum) {
        *g += s;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::values;
    use super::*;
    use crate::error::EngineError;
    use crate::gpu::{Gpu, Recorder, Recording};
    use crate::gpu_test;
    use crate::testing::assert_close;

    /// Tolerance of products summing a few hundred terms of magnitude ≤ 1 in f32, in another
    /// association (fused multiply-adds) than the reference: 2e-5 absolute + 1e-4 relative.
    const ATOL: f32 = 2e-5;
    const RTOL: f32 = 1e-4;

    /// (batch, d_in, d_sae): ones, primes, just past a tile, fewer rows than a tile.
    const SHAPES: [(usize, usize, usize); 6] = [
        (37, 13, 100),
        (1, 1, 1),
        (1, 64, 129),
        (3, 129, 37),
        (100, 65, 64),
        (130, 7, 3),
    ];

    async fn run<F>(gpu: &Gpu, f: F)
    where
        F: AsyncFnOnce(&mut Recording<'_>) -> Result<()>,
    {
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        f(&mut rec).await.unwrap();
        rec.submit();
    }

    async fn encode_and_decode(gpu: &Gpu) {
        for (batch, d_in, d_sae) in SHAPES {
            let x = values(1, batch * d_in);
            let w_enc = values(2, d_sae * d_in);
            let b_enc = values(3, d_sae);
            let b_dec = values(4, d_in);
            let f = values(5, batch * d_sae);
            let w_dec = values(6, d_sae * d_in);
            let bx = gpu.storage_from("x", &x).unwrap();
            let bw = gpu.storage_from("w_enc", &w_enc).unwrap();
            let bbe = gpu.storage_from("b_enc", &b_enc).unwrap();
            let bbd = gpu.storage_from("b_dec", &b_dec).unwrap();
            let bf = gpu.storage_from("f", &f).unwrap();
            let bwd = gpu.storage_from("w_dec", &w_dec).unwrap();
            let pre = gpu.storage_zeroed::<f32>("pre", batch * d_sae).unwrap();
            let x_hat = gpu.storage_zeroed::<f32>("x_hat", batch * d_in).unwrap();
            run(gpu, async |rec: &mut Recording<'_>| {
                let b = EncodeBuffers {
                    x: &bx,
                    w_enc: &bw,
                    b_enc: &bbe,
                    b_dec: &bbd,
                    pre: &pre,
                };
                encode(rec, &b, batch, d_in, d_sae).await?;
                let b = DecodeDenseBuffers {
                    f: &bf,
                    w_dec: &bwd,
                    b_dec: &bbd,
                    x_hat: &x_hat,
                };
                decode_dense(rec, &b, batch, d_in, d_sae).await
            })
            .await;
            let what = format!("B={batch} d_in={d_in} d_sae={d_sae}");
            let got: Vec<f32> = gpu.read(&pre, batch * d_sae).await.unwrap();
            let want = encode_ref(&x, &w_enc, &b_enc, &b_dec, batch, d_in, d_sae);
            assert_close(&format!("encode {what}"), &got, &want, ATOL, RTOL);
            let got: Vec<f32> = gpu.read(&x_hat, batch * d_in).await.unwrap();
            let want = decode_dense_ref(&f, &w_dec, &b_dec, batch, d_in, d_sae);
            assert_close(&format!("decode_dense {what}"), &got, &want, ATOL, RTOL);
        }
    }
    gpu_test!(
        gpu_encode_and_decode_dense_match_reference,
        encode_and_decode
    );

    async fn dense_backward(gpu: &Gpu) {
        for (batch, d_in, d_sae) in SHAPES {
            let g = values(7, batch * d_in);
            let w_dec = values(8, d_sae * d_in);
            let f = values(9, batch * d_sae);
            let grad0 = values(10, d_sae * d_in);
            let bg = gpu.storage_from("g", &g).unwrap();
            let bw = gpu.storage_from("w_dec", &w_dec).unwrap();
            let bf = gpu.storage_from("f", &f).unwrap();
            let grad = gpu.storage_from("grad", &grad0).unwrap();
            let gf = gpu.storage_zeroed::<f32>("gf", batch * d_sae).unwrap();
            run(gpu, async |rec: &mut Recording<'_>| {
                let b = LatentGradDenseBuffers {
                    g: &bg,
                    w_dec: &bw,
                    gf: &gf,
                };
                latent_grad_dense(rec, &b, batch, d_in, d_sae).await?;
                let b = WeightGradDenseBuffers {
                    coef: &bf,
                    rows: &bg,
                    grad: &grad,
                };
                weight_grad_dense(rec, &b, batch, d_in, d_sae).await
            })
            .await;
            let what = format!("B={batch} d_in={d_in} d_sae={d_sae}");
            let got: Vec<f32> = gpu.read(&gf, batch * d_sae).await.unwrap();
            let want = latent_grad_dense_ref(&g, &w_dec, batch, d_in, d_sae);
            assert_close(&format!("gf {what}"), &got, &want, ATOL, RTOL);
            let got: Vec<f32> = gpu.read(&grad, d_sae * d_in).await.unwrap();
            let mut want = grad0.clone();
            weight_grad_dense_ref(&f, &g, &mut want, batch, d_in, d_sae);
            assert_close(&format!("gW {what}"), &got, &want, ATOL, RTOL);
        }
    }
    gpu_test!(gpu_dense_backward_matches_reference, dense_backward);

    async fn all_transposes(gpu: &Gpu) {
        // Past one tile of either kernel in m and n, k not a multiple of either's K step.
        let (m, n, k) = (131, 140, 33);
        let a = values(11, m * k);
        let b = values(12, k * n);
        let ba = gpu.storage_from("a", &a).unwrap();
        let bb = gpu.storage_from("b", &b).unwrap();
        // Both kernels, whichever this adapter uses for the other tests.
        let cases = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .flat_map(|t| [(t, Tiling::Gpu), (t, Tiling::Wide)]);
        for ((ta, tb), tiling) in cases {
            let c = gpu.storage_zeroed::<f32>("c", m * n).unwrap();
            run(gpu, async |rec: &mut Recording<'_>| {
                let mm = Matmul {
                    a: &ba,
                    b: &bb,
                    c: &c,
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    bias: None,
                    centre: None,
                    accumulate: false,
                };
                matmul_tiled(rec, &mm, ["a", "b", "c", "bias", "centre"], tiling).await
            })
            .await;
            let got: Vec<f32> = gpu.read(&c, m * n).await.unwrap();
            let want = matmul_ref(&a, &b, (m, n, k), ta, tb);
            let what = format!("{tiling:?} trans {ta} {tb}");
            assert_close(&what, &got, &want, ATOL, RTOL);
        }
    }
    gpu_test!(gpu_matmul_all_transposes_match_reference, all_transposes);

    async fn bad_shapes_are_refused(gpu: &Gpu) {
        let small = gpu.storage_zeroed::<f32>("small", 10).unwrap();
        let big = gpu.storage_zeroed::<f32>("big", 1000).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = EncodeBuffers {
            x: &big,
            w_enc: &big,
            b_enc: &big,
            b_dec: &small,
            pre: &big,
        };
        let err = encode(&mut rec, &b, 2, 20, 5).await.unwrap_err();
        assert!(matches!(err, EngineError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().contains("b_dec"), "{err}");
        let err = encode(&mut rec, &b, 0, 5, 5).await.unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        // Nothing was recorded, so the encoder is still usable.
        rec.submit();
    }
    gpu_test!(gpu_matmul_refuses_bad_shapes, bad_shapes_are_refused);
}
