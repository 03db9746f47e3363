//! An SAE spliced in at a language model's hook (host of `shaders/sae/splice.wgsl`): the hook's
//! value replaced by the SAE's reconstruction at inference, `x̂ = decode(encode(x · s)) / s` (s
//! the input scale the SAE was trained at), after which the model's pass goes on from x̂. This
//! is SAELens's `run_with_hooks` splice behind CE loss recovered, recorded into the model's own
//! GPU pass ([`HookMap::record`]: the encoder and decoder products, TopK's selection or the
//! other architectures' activation kernel, nothing read back), with the CPU reference's
//! [`encode`] and [`decode`] as [`HookMap::apply`]. BatchTopK uses its learned threshold, as at
//! inference, so a row's reconstruction does not depend on the rest of its batch.

use super::arch::{decode, encode};
use super::config::Architecture;
use super::kernels::{
    decode_dense, decode_sparse, topk_rows, topk_scratch_bytes, Code, DecodeDense, DecodeSparse,
    Encode, Topk,
};
use super::params::SaeParams;
use crate::data::LocalFuture;
use crate::error::{EngineError, Result};
use crate::gpu::{Gpu, Recording, Tensor, TensorBuf};
use crate::kernels::add::scale;
use crate::kernels::{params, Kernel};
use crate::models::transformer::hooks::HookMap;
use std::cell::OnceCell;

const SPLICE_WGSL: &str = include_str!("../../../../shaders/sae/splice.wgsl");

/// An SAE to splice in at a hook of its input width.
#[derive(Debug)]
pub struct SaeSplice {
    arch: Architecture,
    params: SaeParams,
    /// The parameters on the device, uploaded at the first pass that records the splice.
    device: OnceCell<Weights>,
}

/// The splice's parameters on the device.
#[derive(Debug)]
struct Weights {
    w_enc: TensorBuf,
    b_enc: TensorBuf,
    w_dec: TensorBuf,
    b_dec: TensorBuf,
    /// The per-latent tensors the activation reads (see `splice.wgsl`); `b_enc` again when it
    /// reads none.
    lat: Option<wgpu::Buffer>,
}

impl SaeSplice {
    /// The SAE `params` of architecture `arch`; parameters whose sizes disagree with its
    /// widths, or that are not finite, are refused by name.
    pub fn new(arch: Architecture, params: SaeParams) -> Result<Self> {
        let n = params.d_sae;
        let bad = |what: &str, why: String| EngineError::BadModel(format!("SAE {what}: {why}"));
        // The architecture's tensors, sized as its zeros are (those it lacks are not read).
        let like = SaeParams::zeros(params.d_in, n, &arch);
        let names = super::params::TRAINED_TENSORS;
        for ((name, want), t) in names.iter().zip(like.tensors()).zip(params.tensors()) {
            let len = want.len();
            if len > 0 && t.len() != len {
                return Err(bad(name, format!("{} values, expected {len}", t.len())));
            }
        }
        if let Some((name, i, v)) = params.first_non_finite() {
            return Err(bad(name, format!("value {i} is {v}")));
        }
        if !(params.input_scale.is_finite() && params.input_scale > 0.0) {
            return Err(bad(
                "input_scale",
                format!("{} is not a positive number", params.input_scale),
            ));
        }
        if let Architecture::TopK { k, .. } = arch {
            if k == 0 || k as usize > n.min(super::kernels::MAX_K) {
                return Err(bad("k", format!("{k} is not between 1 and {n}")));
            }
        }
        Ok(Self {
            arch,
            params,
            device: OnceCell::new(),
        })
    }

    fn upload(&self, gpu: &Gpu) -> Result<&Weights> {
        if let Some(w) = self.device.get() {
            return Ok(w);
        }
        let p = &self.params;
        let up = |name: &str, v: &[f32]| gpu.storage_from(name, v);
        let lat = match self.arch {
            Architecture::Gated { .. } => {
                let parts = [&p.r_mag[..], &p.b_enc, &p.b_mag].concat();
                Some(up("SAE r_mag, b_gate, b_mag", &parts)?)
            }
            Architecture::JumpRelu { .. } => Some(up("SAE log_threshold", &p.log_threshold)?),
            _ => None,
        };
        let (w, n, d) = ([p.d_sae, p.d_in], [p.d_sae], [p.d_in]);
        let w = Weights {
            w_enc: TensorBuf::from_values(gpu, "SAE w_enc", &w, &p.w_enc)?,
            b_enc: TensorBuf::from_values(gpu, "SAE b_enc", &n, &p.b_enc)?,
            w_dec: TensorBuf::from_values(gpu, "SAE w_dec", &w, &p.w_dec)?,
            b_dec: TensorBuf::from_values(gpu, "SAE b_dec", &d, &p.b_dec)?,
            lat,
        };
        Ok(self.device.get_or_init(|| w))
    }

    /// The activation kernel's architecture constant, and BatchTopK's threshold.
    fn activation(&self) -> (u32, f32) {
        match self.arch {
            Architecture::JumpRelu { .. } => (1, 0.0),
            Architecture::BatchTopK { .. } => (2, self.params.batch_threshold),
            Architecture::Gated { .. } => (3, 0.0),
            Architecture::ReluL1 { .. } | Architecture::TopK { .. } => (0, 0.0),
        }
    }

    /// Records `out = decode(encode(x))` for `x` `[rows, d_in]` (already at the input scale);
    /// the scratch buffers it made, to keep until the recording is submitted.
    async fn record_reconstruction(
        &self,
        rec: &mut Recording<'_>,
        x: Tensor<'_>,
        out: Tensor<'_>,
        rows: usize,
    ) -> Result<Vec<wgpu::Buffer>> {
        let gpu = rec.gpu().clone();
        let w = self.upload(&gpu)?;
        let n = self.params.d_sae;
        let pre = TensorBuf::dirty(&gpu, "SAE pre-activations", &[rows, n])?;
        let enc = Encode {
            x,
            w_enc: w.w_enc.t()?,
            b_enc: w.b_enc.t()?,
            b_dec: w.b_dec.t()?,
            pre: pre.t()?,
        };
        super::kernels::encode(rec, &enc).await?;
        if let Architecture::TopK { k, .. } = self.arch {
            let k = k as usize;
            let idx = TensorBuf::dirty(&gpu, "SAE latents", &[rows, k])?;
            let val = TensorBuf::dirty(&gpu, "SAE activations", &[rows, k])?;
            let words = topk_scratch_bytes(rows, n).div_ceil(4) as usize;
            let scratch = TensorBuf::dirty(&gpu, "SAE TopK scratch", &[words])?;
            let t = Topk {
                pre: pre.t()?,
                idx: idx.t()?,
                val: val.t()?,
                scratch: scratch.t()?,
                mask: None,
            };
            topk_rows(rec, &t).await?;
            let dec = DecodeSparse {
                code: Code {
                    idx: idx.t()?,
                    val: val.t()?,
                    rows: None,
                },
                w_dec: w.w_dec.t()?,
                b_dec: w.b_dec.t()?,
                x_hat: out,
            };
            decode_sparse(rec, &dec).await?;
            return Ok([pre, idx, val, scratch].map(|t| t.buffer).into());
        }
        let f = TensorBuf::dirty(&gpu, "SAE activations", &[rows, n])?;
        let (arch, threshold) = self.activation();
        let lat = w.lat.as_ref().unwrap_or(&w.b_enc.buffer);
        let consts = format!("const ARCH: u32 = {arch}u;\n");
        let storage = vec![&pre.buffer, lat, &f.buffer];
        let kern = Kernel::new(&gpu, "sae_splice", &consts, SPLICE_WGSL, storage, &[]).await?;
        let len = (rows * n) as u32;
        let p = params(&[len, n as u32, threshold.to_bits()]);
        kern.dispatch(rec, "activate", p, (len as u64).div_ceil(256))
            .await?;
        let dec = DecodeDense {
            f: f.t()?,
            w_dec: w.w_dec.t()?,
            b_dec: w.b_dec.t()?,
            x_hat: out,
        };
        decode_dense(rec, &dec).await?;
        Ok(vec![pre.buffer, f.buffer])
    }
}

impl HookMap for SaeSplice {
    fn width(&self) -> usize {
        self.params.d_in
    }

    fn apply(&self, x: &mut [f32]) {
        let p = &self.params;
        let rows = x.len() / p.d_in;
        let s = p.input_scale;
        let scaled: Vec<f32> = x.iter().map(|v| v * s).collect();
        let f = encode(&self.arch, p, &scaled, rows);
        let x_hat = decode(p, &f, rows);
        // The GPU's `scale` multiplies by 1/s too.
        let back = 1.0 / s;
        for (o, v) in x.iter_mut().zip(x_hat) {
            *o = v * back;
        }
    }

    fn record<'a, 'r: 'a>(
        &'a self,
        rec: &'a mut Recording<'r>,
        x: Tensor<'a>,
        out: Tensor<'a>,
    ) -> LocalFuture<'a, Result<Vec<wgpu::Buffer>>> {
        Box::pin(async move {
            let (rows, d) = x.matrix();
            x.expect_matrix(rows, self.params.d_in as u32)?;
            out.expect(x.dims())?;
            let rows = rows as usize;
            let s = self.params.input_scale;
            if s == 1.0 {
                return self.record_reconstruction(rec, x, out, rows).await;
            }
            let gpu = rec.gpu().clone();
            let dims = [rows, d as usize];
            let xs = TensorBuf::dirty(&gpu, "SAE input", &dims)?;
            scale(rec, x, xs.t()?, s).await?;
            let x_hat = TensorBuf::dirty(&gpu, "SAE reconstruction", &dims)?;
            let mut keep = self
                .record_reconstruction(rec, xs.t()?, x_hat.t()?, rows)
                .await?;
            scale(rec, x_hat.t()?, out, 1.0 / s).await?;
            keep.extend([xs.buffer, x_hat.buffer]);
            Ok(keep)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::Recorder;
    use crate::kernels::test_data::values;
    use crate::models::sae::config::ARCHITECTURE_NAMES;
    use crate::testing::assert_close;

    /// An architecture by name, TopK with `k`.
    pub(crate) fn arch(name: &str, k: u32) -> Architecture {
        match Architecture::by_name(name).unwrap() {
            Architecture::TopK {
                k_aux,
                aux_coefficient,
                dead_tokens,
                ..
            } => Architecture::TopK {
                k,
                k_aux,
                aux_coefficient,
                dead_tokens,
            },
            a => a,
        }
    }

    /// The splice recorded on the GPU reconstructs as the CPU reference does, for every
    /// architecture, at scale 1 and at another input scale, on widths that fill no workgroup.
    /// Sums in other orders: 1e-5 absolute plus 1e-4 relative.
    async fn gpu_matches_cpu(gpu: &Gpu) {
        let (rows, d, n) = (7, 13, 37);
        let x: Vec<f32> = values(11, rows * d).iter().map(|v| 2.0 * v).collect();
        for (i, name) in ARCHITECTURE_NAMES.iter().enumerate() {
            for s in [1.0, 2.5] {
                let a = arch(name, 5);
                let mut p = SaeParams::random_for_checks(&a, d, n, i as u32);
                p.batch_threshold = 0.3;
                p.input_scale = s;
                let splice = SaeSplice::new(a, p).unwrap();
                let mut want = x.clone();
                splice.apply(&mut want);
                assert_ne!(want, x, "{name}: the splice changes nothing");
                let bx = gpu.storage_from("x", &x).unwrap();
                let out = gpu.storage_zeroed::<f32>("out", rows * d).unwrap();
                let mut recorder = Recorder::new(gpu);
                let mut rec = recorder.begin();
                let xt = Tensor::of("x", (&bx).into(), &[rows, d]).unwrap();
                let ot = Tensor::of("out", (&out).into(), &[rows, d]).unwrap();
                let keep = splice.record(&mut rec, xt, ot).await.unwrap();
                rec.submit();
                let got = gpu.read::<f32>(&out, rows * d).await.unwrap();
                assert_close(&format!("{name} at scale {s}"), &got, &want, 1e-5, 1e-4);
                drop(keep);
            }
        }
    }
    crate::gpu_test!(gpu_sae_splice_matches_the_cpu_reference, gpu_matches_cpu);

    #[test]
    fn parameters_that_do_not_fit_are_refused_by_name() {
        let a = arch("topk", 5);
        let mut p = SaeParams::random_for_checks(&a, 4, 8, 1);
        p.w_dec.pop();
        let e = SaeSplice::new(a.clone(), p).unwrap_err().to_string();
        assert!(e.contains("w_dec") && e.contains("31 values"), "{e}");
        let mut p = SaeParams::random_for_checks(&a, 4, 8, 1);
        p.b_enc[3] = f32::NAN;
        let e = SaeSplice::new(a.clone(), p).unwrap_err().to_string();
        assert!(e.contains("b_enc") && e.contains("NaN"), "{e}");
        let p = SaeParams::random_for_checks(&a, 4, 8, 1);
        let e = SaeSplice::new(arch("topk", 9), p).unwrap_err().to_string();
        assert!(e.contains('k') && e.contains("between 1 and 8"), "{e}");
        let mut p = SaeParams::random_for_checks(&a, 4, 8, 1);
        p.batch_threshold = f32::INFINITY;
        let e = SaeSplice::new(arch("batch_topk", 5), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_threshold") && e.contains("inf"), "{e}");
        let mut p = SaeParams::random_for_checks(&a, 4, 8, 1);
        p.input_scale = 0.0;
        assert!(SaeSplice::new(a, p).is_err());
    }
}
