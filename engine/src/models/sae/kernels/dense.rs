//! The SAE's encoder, dense decoder and their dense gradients as products (host of
//! `shaders/matmul.wgsl` through [`crate::kernels::matmul`]): the dense gradients that the
//! sparse kernels are checked against and that dense architectures (ReLU-L1, Gated, JumpReLU)
//! use. The CPU references beside them are built on [`matmul_ref`].

use crate::error::Result;
use crate::gpu::{Recording, View};
use crate::kernels::matmul::{matmul_named, matmul_ref, Matmul};

/// Buffers of [`encode`].
#[derive(Clone, Copy)]
pub struct EncodeBuffers<'a> {
    /// Inputs `[batch, d_in]`.
    pub x: View<'a>,
    /// Encoder `[d_sae, d_in]`.
    pub w_enc: View<'a>,
    /// Encoder bias `[d_sae]`.
    pub b_enc: View<'a>,
    /// Decoder bias `[d_in]`, subtracted from the inputs.
    pub b_dec: View<'a>,
    /// Output pre-activations `[batch, d_sae]`.
    pub pre: View<'a>,
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
        trans_b: true,
        bias: Some(buf.b_enc),
        centre: Some(buf.b_dec),
        ..Matmul::new(buf.x, buf.w_enc, buf.pre, (batch, d_sae, d_in))
    };
    matmul_named(rec, &mm, ["x", "w_enc", "pre", "b_enc", "b_dec"]).await
}

/// Buffers of [`decode_dense`].
#[derive(Clone, Copy)]
pub struct DecodeDenseBuffers<'a> {
    /// Latent activations `[batch, d_sae]`.
    pub f: View<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: View<'a>,
    /// Decoder bias `[d_in]`.
    pub b_dec: View<'a>,
    /// Output reconstruction `[batch, d_in]`.
    pub x_hat: View<'a>,
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
        bias: Some(buf.b_dec),
        ..Matmul::new(buf.f, buf.w_dec, buf.x_hat, (batch, d_in, d_sae))
    };
    matmul_named(rec, &mm, ["f", "w_dec", "x_hat", "b_dec", "-"]).await
}

/// Buffers of [`latent_grad_dense`].
#[derive(Clone, Copy)]
pub struct LatentGradDenseBuffers<'a> {
    /// Gradient of the loss at the reconstruction, `[batch, d_in]`.
    pub g: View<'a>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: View<'a>,
    /// Output gradient at the latent activations, `[batch, d_sae]`.
    pub gf: View<'a>,
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
        trans_b: true,
        ..Matmul::new(buf.g, buf.w_dec, buf.gf, (batch, d_sae, d_in))
    };
    matmul_named(rec, &mm, ["g", "w_dec", "gf", "-", "-"]).await
}

/// Buffers of [`weight_grad_dense`].
#[derive(Clone, Copy)]
pub struct WeightGradDenseBuffers<'a> {
    /// Per-latent coefficients `[batch, d_sae]`: `f` for the decoder, `gpre` for the encoder.
    pub coef: View<'a>,
    /// Rows `[batch, d_in]`: `g` for the decoder, the centred input `xc` for the encoder.
    pub rows: View<'a>,
    /// Gradient `[d_sae, d_in]`, added to.
    pub grad: View<'a>,
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
        trans_a: true,
        accumulate: true,
        ..Matmul::new(buf.coef, buf.rows, buf.grad, (d_sae, d_in, batch))
    };
    matmul_named(rec, &mm, ["coef", "rows", "grad", "-", "-"]).await
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
    use crate::kernels::test_data::{record, values};
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
                let b = EncodeBuffers {
                    x: (&bx).into(),
                    w_enc: (&bw).into(),
                    b_enc: (&bbe).into(),
                    b_dec: (&bbd).into(),
                    pre: (&pre).into(),
                };
                encode(rec, &b, batch, d_in, d_sae).await?;
                let b = DecodeDenseBuffers {
                    f: (&bf).into(),
                    w_dec: (&bwd).into(),
                    b_dec: (&bbd).into(),
                    x_hat: (&x_hat).into(),
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
            record(gpu, async |rec: &mut Recording<'_>| {
                let b = LatentGradDenseBuffers {
                    g: (&bg).into(),
                    w_dec: (&bw).into(),
                    gf: (&gf).into(),
                };
                latent_grad_dense(rec, &b, batch, d_in, d_sae).await?;
                let b = WeightGradDenseBuffers {
                    coef: (&bf).into(),
                    rows: (&bg).into(),
                    grad: (&grad).into(),
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

    async fn bad_shapes_are_refused(gpu: &Gpu) {
        let small = gpu.storage_zeroed::<f32>("small", 10).unwrap();
        let big = gpu.storage_zeroed::<f32>("big", 1000).unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = EncodeBuffers {
            x: (&big).into(),
            w_enc: (&big).into(),
            b_enc: (&big).into(),
            b_dec: (&small).into(),
            pre: (&big).into(),
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
