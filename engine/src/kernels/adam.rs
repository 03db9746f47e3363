//! Adam (AdamW) with global-norm clipping over a model's trained tensors (host of
//! `shaders/adam.wgsl`, with `shaders/adam_update.wgsl`): the optimiser step every lab's GPU
//! trainer records. The CPU reference is [`crate::train::adam`] with [`crate::train::clip`];
//! [`adam_ref`] composes them the way the kernels do.
//!
//! Dispatches: one sum of squares per tensor (a workgroup per chunk of 4096 elements), one
//! reduction of those partial sums to the global norm², one update per tensor. Every sum is in
//! a fixed order, so the step is the same bits on every run of a device.

use crate::error::Result;
use crate::gpu::{Gpu, ProgramSpec, Recording, Tensor};
use crate::train::adam::AdamConfig;

const ADAM_WGSL: &str = include_str!("../../../shaders/adam.wgsl");
/// The per-element update, shared with the toy model's fused kernel.
pub const ADAM_UPDATE_WGSL: &str = include_str!("../../../shaders/adam_update.wgsl");
/// Invocations per workgroup.
const WG: u64 = 256;
/// Elements each invocation of `sum_squares` folds in before the tree.
const CHUNK: u64 = 16;

/// The uniform block (matches `AdamParams` in adam.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    count: u32,
    out_index: u32,
    norm_index: u32,
    scaled_from: u32,
    lr: f32,
    lr_scale: f32,
    c1: f32,
    c2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,
    _pad: [u32; 3],
}

/// One trained tensor: its parameters, gradient and moments, of one shape.
#[derive(Clone, Copy)]
pub struct AdamTensor<'a> {
    /// Parameters, updated in place.
    pub param: Tensor<'a>,
    /// Gradient (read; not clipped in place).
    pub grad: Tensor<'a>,
    /// First moment.
    pub m: Tensor<'a>,
    /// Second moment.
    pub v: Tensor<'a>,
    /// Elements from this index on train at `lr · lr_scale` (`usize::MAX`: none).
    pub scaled_from: usize,
    /// Their learning-rate multiple.
    pub lr_scale: f32,
}

impl<'a> AdamTensor<'a> {
    /// A tensor trained at the shared learning rate.
    pub fn new(param: Tensor<'a>, grad: Tensor<'a>, m: Tensor<'a>, v: Tensor<'a>) -> Self {
        Self {
            param,
            grad,
            m,
            v,
            scaled_from: usize::MAX,
            lr_scale: 1.0,
        }
    }

    /// Its elements.
    pub fn len(&self) -> usize {
        self.param.len as usize
    }

    /// True when it holds no elements (never: a tensor has at least one).
    pub fn is_empty(&self) -> bool {
        self.param.len == 0
    }
}

/// The step's settings.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    /// β₁, β₂, ε and weight decay.
    pub cfg: AdamConfig,
    /// The learning rate of this step.
    pub lr: f32,
    /// The 1-based step number (for the bias corrections).
    pub t: u32,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_norm: f32,
}

fn partials(len: usize) -> usize {
    (len as u64).div_ceil(WG * CHUNK) as usize
}

/// Words of the scratch buffer [`adam`] needs for tensors of these lengths: each tensor's
/// partial sums of squares, then the global norm².
pub fn adam_scratch_words(lens: &[usize]) -> usize {
    lens.iter().map(|&n| partials(n)).sum::<usize>() + 1
}

/// Records one Adam step over `tensors`, clipped to the global norm of all their gradients.
/// `scratch` holds [`adam_scratch_words`] words; afterwards its last word is the norm² before
/// clipping.
pub async fn adam<'a>(
    rec: &mut Recording<'_>,
    tensors: &[AdamTensor<'a>],
    scratch: Tensor<'a>,
    step: &AdamStep,
) -> Result<()> {
    // No tensors, no step (the reduction binds the first tensor's buffers).
    let Some(first) = tensors.first() else {
        return Ok(());
    };
    let gpu = rec.gpu().clone();
    let words = adam_scratch_words(&tensors.iter().map(AdamTensor::len).collect::<Vec<_>>());
    scratch.expect_at_least(words as u64)?;
    for t in tensors {
        for other in [t.grad, t.m, t.v] {
            other.expect(t.param.dims())?;
        }
    }
    let program = program(&gpu).await?;
    let storage = |t: &AdamTensor<'a>| [t.param, t.grad, t.m, t.v, scratch].map(|t| t.view);
    let (c1, c2) = step.cfg.bias_corrections(step.t);
    let base = AdamParams {
        lr: step.lr,
        c1,
        c2,
        beta1: step.cfg.beta1,
        beta2: step.cfg.beta2,
        eps: step.cfg.eps,
        weight_decay: step.cfg.weight_decay,
        max_norm: step.max_norm,
        lr_scale: 1.0,
        scaled_from: u32::MAX,
        norm_index: (words - 1) as u32,
        ..Default::default()
    };
    let mut at = 0;
    for t in tensors {
        let p = AdamParams {
            count: t.len() as u32,
            out_index: at as u32,
            ..base
        };
        let groups = partials(t.len()) as u64;
        rec.dispatch_views(&program, "sum_squares", &p, &storage(t), groups)
            .await?;
        at += partials(t.len());
    }
    let p = AdamParams {
        count: at as u32,
        out_index: (words - 1) as u32,
        ..base
    };
    rec.dispatch_views(&program, "reduce", &p, &storage(first), 1)
        .await?;
    for t in tensors {
        let p = AdamParams {
            count: t.len() as u32,
            scaled_from: t.scaled_from.min(u32::MAX as usize) as u32,
            lr_scale: t.lr_scale,
            ..base
        };
        let groups = (t.len() as u64).div_ceil(WG);
        rec.dispatch_views(&program, "adam", &p, &storage(t), groups)
            .await?;
    }
    Ok(())
}

async fn program(gpu: &Gpu) -> Result<std::sync::Arc<crate::gpu::Program>> {
    gpu.program(&ProgramSpec {
        label: "adam",
        variant: &format!("const WG: u32 = {WG}u;\nconst CHUNK: u32 = {CHUNK}u;\n"),
        body: &[ADAM_UPDATE_WGSL, ADAM_WGSL],
        uniform_bytes: std::mem::size_of::<AdamParams>() as u64,
        storage: 5,
    })
    .await
}

/// One tensor's state for [`adam_ref`].
pub struct AdamRefTensor<'a> {
    /// Parameters, updated.
    pub param: &'a mut [f32],
    /// Gradient.
    pub grad: &'a [f32],
    /// First moment, updated.
    pub m: &'a mut [f32],
    /// Second moment, updated.
    pub v: &'a mut [f32],
    /// Elements from here on train at `lr · lr_scale`.
    pub scaled_from: usize,
    /// Their learning-rate multiple.
    pub lr_scale: f32,
}

/// CPU reference of [`adam`]: the global norm, one clipping scale, then
/// [`crate::train::adam::update`] element by element. Returns the norm before clipping.
pub fn adam_ref(tensors: &mut [AdamRefTensor<'_>], step: &AdamStep) -> f32 {
    let norm = crate::train::clip::global_norm(tensors.iter().map(|t| t.grad));
    let s = crate::train::clip::clip_scale(norm, step.max_norm);
    let c = step.cfg.bias_corrections(step.t);
    for t in tensors.iter_mut() {
        for i in 0..t.param.len() {
            let lr = if i >= t.scaled_from {
                step.lr * t.lr_scale
            } else {
                step.lr
            };
            let g = if s != 1.0 { t.grad[i] * s } else { t.grad[i] };
            t.param[i] = crate::train::adam::update(
                &step.cfg,
                t.param[i],
                g,
                &mut t.m[i],
                &mut t.v[i],
                lr,
                c,
            );
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{t, values};
    use super::*;
    use crate::gpu::{Recorder, View};
    use crate::gpu_test;
    use crate::testing::assert_close;

    /// Sums of squares in another order than the f64 reference, and the update's divisions:
    /// relative 2e-5 on parameters that move by about the learning rate per step.
    const ATOL: f32 = 1e-6;
    const RTOL: f32 = 2e-5;

    async fn matches_reference(gpu: &Gpu) {
        // One element, one just past a sum_squares chunk, one over several grid rows' worth of
        // partial sums; clipping on and off; weight decay; a learning-rate scale on a suffix.
        let lens = [1usize, 4097, 300];
        let cases = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.1)];
        for (max_norm, weight_decay) in cases {
            let mut host: Vec<[Vec<f32>; 4]> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let s = i as u32 * 10;
                    [
                        values(s + 1, n),
                        values(s + 2, n),
                        vec![0.0; n],
                        vec![0.0; n],
                    ]
                })
                .collect();
            let bufs: Vec<[wgpu::Buffer; 4]> = host
                .iter()
                .map(|h| {
                    h.each_ref()
                        .map(|v| gpu.storage_from("adam test", v).unwrap())
                })
                .collect();
            let scratch = gpu
                .storage_zeroed::<f32>("adam scratch", adam_scratch_words(&lens))
                .unwrap();
            let mut recorder = Recorder::new(gpu);
            for step_number in 1..=3u32 {
                let step = AdamStep {
                    cfg: AdamConfig {
                        weight_decay,
                        ..AdamConfig::DEFAULT
                    },
                    lr: 0.01,
                    t: step_number,
                    max_norm,
                };
                let tensors: Vec<AdamTensor> = bufs
                    .iter()
                    .zip(lens)
                    .map(|(b, n)| AdamTensor {
                        scaled_from: n / 2,
                        lr_scale: 3.0,
                        ..AdamTensor::new(
                            t(&b[0], "param", &[n]),
                            t(&b[1], "grad", &[n]),
                            t(&b[2], "m", &[n]),
                            t(&b[3], "v", &[n]),
                        )
                    })
                    .collect();
                let mut rec = recorder.begin();
                let scratch = Tensor::all("adam scratch", (&scratch).into()).unwrap();
                adam(&mut rec, &tensors, scratch, &step).await.unwrap();
                rec.submit();
                let mut refs: Vec<AdamRefTensor> = host
                    .iter_mut()
                    .map(|[p, g, m, v]| AdamRefTensor {
                        scaled_from: p.len() / 2,
                        lr_scale: 3.0,
                        param: p,
                        grad: g,
                        m,
                        v,
                    })
                    .collect();
                adam_ref(&mut refs, &step);
            }
            for (i, (h, b)) in host.iter().zip(&bufs).enumerate() {
                let what = format!("tensor {i} max_norm {max_norm} decay {weight_decay}");
                for (name, k) in [("param", 0), ("m", 2), ("v", 3)] {
                    let got: Vec<f32> = gpu.read(&b[k], lens[i]).await.unwrap();
                    assert_close(&format!("{name} {what}"), &got, &h[k], ATOL, RTOL);
                }
            }
        }
    }
    gpu_test!(gpu_adam_matches_reference, matches_reference);

    async fn bad_buffers_are_refused(gpu: &Gpu) {
        let small = gpu.storage_zeroed::<f32>("small", 4).unwrap();
        let big = gpu.storage_zeroed::<f32>("big", 100).unwrap();
        let [a, b, c] = [0, 1, 2].map(|_| gpu.storage_zeroed::<f32>("x", 100).unwrap());
        let step = AdamStep {
            cfg: AdamConfig::DEFAULT,
            lr: 0.1,
            t: 1,
            max_norm: 0.0,
        };
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let [big, a, b, c] = [(&big, "param"), (&a, "grad"), (&b, "m"), (&c, "c")]
            .map(|(buf, name)| t(buf, name, &[100]));
        let all = |buf, name| Tensor::all(name, View::from(buf)).unwrap();
        let v = all(&small, "v");
        let err = adam(&mut rec, &[AdamTensor::new(big, a, b, v)], c, &step)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("v") && err.to_string().contains("[100]"),
            "{err}"
        );
        // One partial sum and the norm²: two words.
        let tiny = gpu.storage_zeroed::<f32>("tiny", 1).unwrap();
        let tensor = AdamTensor::new(big, a, b, c);
        let err = adam(&mut rec, &[tensor], all(&tiny, "adam scratch"), &step)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("adam scratch"), "{err}");
        assert_eq!(rec.dispatches(), 0);
    }
    gpu_test!(gpu_adam_refuses_bad_buffers, bad_buffers_are_refused);
}
