//! The SAE's encoder, dense decoder and their dense gradients as products (host of
//! `shaders/matmul.wgsl` through [`crate::kernels::matmul`]): the dense gradients that the
//! sparse kernels are checked against and that dense architectures (ReLU-L1, Gated, JumpReLU)
//! use. The CPU references beside them are built on [`matmul_ref`].

use crate::error::Result;
use crate::gpu::{Recording, Tensor};
use crate::kernels::matmul::{matmul_named, matmul_ref, Matmul};

/// Tensors of [`encode`].
#[derive(Clone, Copy)]
pub struct Encode<'a> {
    /// Inputs `[batch, d_in]`.
    pub x: Tensor<'a>,
    /// Encoder `[d_sae, d_in]`.
    pub w_enc: Tensor<'a>,
    /// Encoder bias `[d_sae]`.
    pub b_enc: Tensor<'a>,
    /// Decoder bias `[d_in]`, subtracted from the inputs.
    pub b_dec: Tensor<'a>,
    /// Output pre-activations `[batch, d_sae]`.
    pub pre: Tensor<'a>,
}

/// Records `pre[b, j] = Σ_i w_enc[j, i] (x[b, i] − b_dec[i]) + b_enc[j]`.
pub async fn encode(rec: &mut Recording<'_>, t: &Encode<'_>) -> Result<()> {
    let (d_sae, d_in) = t.w_enc.matrix();
    let batch = rows_of(t.x, d_in)?;
    t.pre.expect_matrix(batch as u32, d_sae)?;
    t.b_enc.expect(&[d_sae])?;
    t.b_dec.expect(&[d_in])?;
    let mm = Matmul {
        trans_b: true,
        bias: Some(t.b_enc.view),
        centre: Some(t.b_dec.view),
        ..Matmul::new(
            t.x.view,
            t.w_enc.view,
            t.pre.view,
            (batch, d_sae as usize, d_in as usize),
        )
    };
    matmul_named(rec, &mm, ["x", "w_enc", "pre", "b_enc", "b_dec"]).await
}

/// Tensors of [`decode_dense`].
#[derive(Clone, Copy)]
pub struct DecodeDense<'a> {
    /// Latent activations `[batch, d_sae]`.
    pub f: Tensor<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: Tensor<'a>,
    /// Decoder bias `[d_in]`.
    pub b_dec: Tensor<'a>,
    /// Output reconstruction `[batch, d_in]`.
    pub x_hat: Tensor<'a>,
}

/// Records `x_hat = f · w_dec + b_dec`.
pub async fn decode_dense(rec: &mut Recording<'_>, t: &DecodeDense<'_>) -> Result<()> {
    let (d_sae, d_in) = t.w_dec.matrix();
    let batch = rows_of(t.f, d_sae)?;
    t.x_hat.expect_matrix(batch as u32, d_in)?;
    t.b_dec.expect(&[d_in])?;
    let mm = Matmul {
        bias: Some(t.b_dec.view),
        ..Matmul::new(
            t.f.view,
            t.w_dec.view,
            t.x_hat.view,
            (batch, d_in as usize, d_sae as usize),
        )
    };
    matmul_named(rec, &mm, ["f", "w_dec", "x_hat", "b_dec", "-"]).await
}

/// Tensors of [`latent_grad_dense`].
#[derive(Clone, Copy)]
pub struct LatentGradDense<'a> {
    /// Gradient of the loss at the reconstruction, `[batch, d_in]`.
    pub g: Tensor<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: Tensor<'a>,
    /// Output gradient at the latent activations, `[batch, d_sae]`.
    pub gf: Tensor<'a>,
}

/// Records `gf = g · w_decᵀ` (overwriting `gf`).
pub async fn latent_grad_dense(rec: &mut Recording<'_>, t: &LatentGradDense<'_>) -> Result<()> {
    let (d_sae, d_in) = t.w_dec.matrix();
    let batch = rows_of(t.g, d_in)?;
    t.gf.expect_matrix(batch as u32, d_sae)?;
    let mm = Matmul {
        trans_b: true,
        ..Matmul::new(
            t.g.view,
            t.w_dec.view,
            t.gf.view,
            (batch, d_sae as usize, d_in as usize),
        )
    };
    matmul_named(rec, &mm, ["g", "w_dec", "gf", "-", "-"]).await
}

/// Tensors of [`weight_grad_dense`].
#[derive(Clone, Copy)]
pub struct WeightGradDense<'a> {
    /// Per-latent coefficients `[batch, d_sae]`: `f` for the decoder, `gpre` for the encoder.
    pub coef: Tensor<'a>,
    /// Rows `[batch, d_in]`: `g` for the decoder, the centred input `xc` for the encoder.
    pub rows: Tensor<'a>,
    /// Gradient `[d_sae, d_in]`, added to.
    pub grad: Tensor<'a>,
}

/// Records `grad += coefᵀ · rows`: `gW_dec += fᵀ · g`, or `gW_enc += gpreᵀ · xc`.
pub async fn weight_grad_dense(rec: &mut Recording<'_>, t: &WeightGradDense<'_>) -> Result<()> {
    let (d_sae, d_in) = t.grad.matrix();
    let batch = rows_of(t.rows, d_in)?;
    t.coef.expect_matrix(batch as u32, d_sae)?;
    let mm = Matmul {
        trans_a: true,
        accumulate: true,
        ..Matmul::new(
            t.coef.view,
            t.rows.view,
            t.grad.view,
            (d_sae as usize, d_in as usize, batch),
        )
    };
    matmul_named(rec, &mm, ["coef", "rows", "grad", "-", "-"]).await
}

/// The rows of `t` read as rows of `width` (the batch of a product whose other operand fixes
/// the width), refusing a tensor that cannot be.
fn rows_of(t: Tensor<'_>, width: u32) -> Result<usize> {
    let rows = (t.len / width as u64).max(1) as u32;
    t.expect_matrix(rows, width)?;
    Ok(rows as usize)
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
    use super::*;
    use crate::error::EngineError;
    use crate::gpu::{Gpu, Recorder, Recording};
    use crate::gpu_test;
    use crate::kernels::test_data::{record, t, values};
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
            record(gpu, async |rec: &mut Recording<'_>| {
                let b = Encode {
                    x: t(&bx, "x", &[batch, d_in]),
                    w_enc: t(&bw, "w_enc", &[d_sae, d_in]),
                    b_enc: t(&bbe, "b_enc", &[d_sae]),
                    b_dec: t(&bbd, "b_dec", &[d_in]),
                    pre: t(&pre, "pre", &[batch, d_sae]),
                };
                encode(rec, &b).await?;
                let b = DecodeDense {
                    f: t(&bf, "f", &[batch, d_sae]),
                    w_dec: t(&bwd, "w_dec", &[d_sae, d_in]),
                    b_dec: t(&bbd, "b_dec", &[d_in]),
                    x_hat: t(&x_hat, "x_hat", &[batch, d_in]),
                };
                decode_dense(rec, &b).await
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
            record(gpu, async |rec: &mut Recording<'_>| {
                let b = LatentGradDense {
                    g: t(&bg, "g", &[batch, d_in]),
                    w_dec: t(&bw, "w_dec", &[d_sae, d_in]),
                    gf: t(&gf, "gf", &[batch, d_sae]),
                };
                latent_grad_dense(rec, &b).await?;
                let b = WeightGradDense {
                    coef: t(&bf, "f", &[batch, d_sae]),
                    rows: t(&bg, "g", &[batch, d_in]),
                    grad: t(&grad, "grad", &[d_sae, d_in]),
                };
                weight_grad_dense(rec, &b).await
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

    async fn bad_shapes_are_refused(gpu: &Gpu) {
        let small = gpu.storage_zeroed::<f32>("small", 10).unwrap();
        let big = gpu.storage_zeroed::<f32>("big", 1000).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = Encode {
            x: t(&big, "x", &[2, 20]),
            w_enc: t(&big, "w_enc", &[5, 20]),
            b_enc: t(&big, "b_enc", &[5]),
            b_dec: t(&small, "b_dec", &[10]),
            pre: t(&big, "pre", &[2, 5]),
        };
        let err = encode(&mut rec, &b).await.unwrap_err();
        assert!(matches!(err, EngineError::Tensor { .. }), "{err}");
        assert!(
            err.to_string().contains("b_dec") && err.to_string().contains("[20]"),
            "{err}"
        );
        // Inputs whose width is not the encoder's.
        let b = Encode {
            x: t(&big, "x", &[2, 19]),
            b_dec: t(&big, "b_dec", &[20]),
            ..b
        };
        let err = encode(&mut rec, &b).await.unwrap_err();
        assert!(
            err.to_string().contains("x") && err.to_string().contains("20"),
            "{err}"
        );
        // Nothing was recorded, so the encoder is still usable.
        rec.submit();
    }
    gpu_test!(gpu_matmul_refuses_bad_shapes, bad_shapes_are_refused);
}
