//! The GPU trainer: the shared training loop of [`crate::sae::train`] with every tensor on the
//! device and one command encoder, one submit per step. Batches come from the host source and
//! are uploaded scaled; nothing is read back but the per-step losses and firing counts when the
//! caller asks for a report, and the parameters when it asks for them.
//!
//! This version trains the TopK family's per-row TopK (with AuxK) through the sparse kernels:
//! the encoder is dense, the decoder and every gradient touch only the k active latents. The
//! batch's pre-activations are computed in row chunks no larger than the device's binding limit,
//! so a 4096 × 32768 batch (512 MiB of pre-activations) trains under the browser's 256 MiB.

pub mod step;

use self::step::{Bindings, Kernel, StepKernels, StepParams, CHUNK, WG};
use super::config::{Architecture, SaeConfig};
use super::kernels::{self, NO_LATENT};
use super::metrics::FiringTracker;
use super::params::SaeParams;
use super::source::{self, ActivationSource};
use super::train::{
    dead_tokens, evaluation, initial_params, learning_rate, Evaluation, StepReport, BETA1, BETA2,
    EPS,
};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;

/// Dispatches of the step kernels one step records, with room to spare.
const STEP_SLOTS: usize = 64;
/// Steps whose losses stay on the device before a report must read them.
pub const MAX_PENDING_STEPS: u32 = 1024;

/// Device buffers of one trainer.
struct Buffers {
    w_enc: wgpu::Buffer,
    b_enc: wgpu::Buffer,
    w_dec: wgpu::Buffer,
    b_dec: wgpu::Buffer,
    grads: [wgpu::Buffer; 4],
    m: [wgpu::Buffer; 4],
    v: [wgpu::Buffer; 4],
    x: wgpu::Buffer,
    xc: wgpu::Buffer,
    x_chunk: wgpu::Buffer,
    pre: wgpu::Buffer,
    idx_chunk: wgpu::Buffer,
    val_chunk: wgpu::Buffer,
    aidx_chunk: wgpu::Buffer,
    aval_chunk: wgpu::Buffer,
    idx: wgpu::Buffer,
    val: wgpu::Buffer,
    aidx: wgpu::Buffer,
    aval: wgpu::Buffer,
    x_hat: wgpu::Buffer,
    e_hat: wgpu::Buffer,
    g: wgpu::Buffer,
    g_val: wgpu::Buffer,
    gpre: wgpu::Buffer,
    ag_val: wgpu::Buffer,
    agpre: wgpu::Buffer,
    row_loss: wgpu::Buffer,
    losses: wgpu::Buffer,
    zero_bias: wgpu::Buffer,
    since: wgpu::Buffer,
    mask_window: wgpu::Buffer,
    counters: wgpu::Buffer,
    topk_scratch: wgpu::Buffer,
    list_scratch: wgpu::Buffer,
    partials: wgpu::Buffer,
    norm2: wgpu::Buffer,
}

/// Trains an SAE on the GPU.
pub struct GpuSaeTrainer {
    gpu: Gpu,
    cfg: SaeConfig,
    source: Box<dyn ActivationSource>,
    buf: Buffers,
    kernels: StepKernels,
    input_scale: f32,
    d_in: usize,
    d_sae: usize,
    batch: usize,
    k: usize,
    k_aux: usize,
    rows_per_chunk: usize,
    step: u32,
    pending: u32,
    tracker: FiringTracker,
    host_x: Vec<f32>,
    lrs: Vec<f32>,
    partial_offsets: Vec<u32>,
}

/// Bytes one chunk of pre-activations may take: one binding, one buffer, and the common
/// browser limit of 256 MiB.
fn chunk_limit(gpu: &Gpu) -> u64 {
    (gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size)
        .min(256 << 20)
}

impl GpuSaeTrainer {
    /// Validates the config against the device, builds the source, initialises the SAE and
    /// uploads it.
    pub async fn new(gpu: &Gpu, cfg: &SaeConfig) -> Result<Self> {
        cfg.validate()?;
        let source = source::build(&cfg.source, cfg.seed)?;
        Self::with_source(gpu, cfg, source).await
    }

    /// As [`GpuSaeTrainer::new`], on a given source.
    pub async fn with_source(
        gpu: &Gpu,
        cfg: &SaeConfig,
        source: Box<dyn ActivationSource>,
    ) -> Result<Self> {
        Self::build(gpu, cfg, source, chunk_limit(gpu)).await
    }

    async fn build(
        gpu: &Gpu,
        cfg: &SaeConfig,
        mut source: Box<dyn ActivationSource>,
        chunk_bytes: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let (k, _aux) = match cfg.architecture {
            Architecture::TopK {
                k, aux_coefficient, ..
            } => (k as usize, aux_coefficient),
            ref other => return Err(EngineError::invalid(
                "architecture",
                other.name(),
                "the GPU trainer supports TopK so far; train this architecture with the CPU engine",
            )),
        };
        let (d_in, d_sae, batch) = (
            cfg.d_in() as usize,
            cfg.d_sae as usize,
            cfg.batch_size as usize,
        );
        let k_aux = cfg.k_aux() as usize;
        let rows = ((chunk_bytes / (4 * d_sae as u64)) as usize).clamp(1, batch);
        let check = gpu.check();
        let weights = (d_sae * d_in * 4) as u64;
        check.storage_buffer("the encoder and decoder weights", weights)?;
        check.storage_buffer("one chunk of pre-activations", (rows * d_sae * 4) as u64)?;
        // Weights, gradients, Adam's moments of both matrices, and one chunk of pre-activations.
        let total = 6 * weights + (rows * d_sae * 4) as u64;
        let params = initial_params(cfg, source.as_mut())?;
        let z = |what: &str, n: usize| gpu.storage_zeroed::<f32>(what, n.max(1));
        let zu = |what: &str, n: usize| gpu.storage_zeroed::<u32>(what, n.max(1));
        let shapes = [d_sae * d_in, d_sae, d_sae * d_in, d_in];
        let n_partials: usize = shapes
            .iter()
            .map(|&n| n.div_ceil((WG * CHUNK) as usize))
            .sum();
        let mut partial_offsets = Vec::new();
        let mut at = 0u32;
        for &n in &shapes {
            partial_offsets.push(at);
            at += n.div_ceil((WG * CHUNK) as usize) as u32;
        }
        let buf = Buffers {
            w_enc: gpu.storage_from("sae w_enc", &params.w_enc)?,
            b_enc: gpu.storage_from("sae b_enc", &params.b_enc)?,
            w_dec: gpu.storage_from("sae w_dec", &params.w_dec)?,
            b_dec: gpu.storage_from("sae b_dec", &params.b_dec)?,
            grads: [
                z("sae g w_enc", shapes[0])?,
                z("sae g b_enc", shapes[1])?,
                z("sae g w_dec", shapes[2])?,
                z("sae g b_dec", shapes[3])?,
            ],
            m: [
                z("sae m w_enc", shapes[0])?,
                z("sae m b_enc", shapes[1])?,
                z("sae m w_dec", shapes[2])?,
                z("sae m b_dec", shapes[3])?,
            ],
            v: [
                z("sae v w_enc", shapes[0])?,
                z("sae v b_enc", shapes[1])?,
                z("sae v w_dec", shapes[2])?,
                z("sae v b_dec", shapes[3])?,
            ],
            x: z("sae x", batch * d_in)?,
            xc: z("sae xc", batch * d_in)?,
            x_chunk: z("sae x chunk", rows * d_in)?,
            pre: z("sae pre", rows * d_sae)?,
            idx_chunk: zu("sae idx chunk", rows * k)?,
            val_chunk: z("sae val chunk", rows * k)?,
            aidx_chunk: zu("sae aux idx chunk", rows * k_aux)?,
            aval_chunk: z("sae aux val chunk", rows * k_aux)?,
            idx: zu("sae idx", batch * k)?,
            val: z("sae val", batch * k)?,
            aidx: zu("sae aux idx", batch * k_aux)?,
            aval: z("sae aux val", batch * k_aux)?,
            x_hat: z("sae x_hat", batch * d_in)?,
            e_hat: z("sae e_hat", batch * d_in)?,
            g: z("sae g", batch * d_in)?,
            g_val: z("sae g_val", batch * k)?,
            gpre: z("sae gpre", batch * k)?,
            ag_val: z("sae aux g_val", batch * k_aux)?,
            agpre: z("sae aux gpre", batch * k_aux)?,
            row_loss: z("sae row loss", batch)?,
            losses: z("sae losses", 2 * MAX_PENDING_STEPS as usize)?,
            zero_bias: z("sae zero bias", d_in)?,
            since: zu("sae since fired", d_sae)?,
            mask_window: zu("sae dead mask and window", 2 * d_sae)?,
            counters: zu("sae counters", d_sae + 1)?,
            topk_scratch: gpu.storage_zeroed::<u8>(
                "sae topk scratch",
                kernels::topk_scratch_bytes(rows) as usize,
            )?,
            list_scratch: gpu.storage_zeroed::<u8>(
                "sae list scratch",
                kernels::weight_grad_sparse_scratch_bytes(batch, k.max(k_aux), d_sae) as usize,
            )?,
            partials: z("sae grad partials", n_partials)?,
            norm2: z("sae grad norm", 1)?,
        };
        let _ = total;
        let kernels = StepKernels::new(gpu, STEP_SLOTS).await?;
        Ok(Self {
            gpu: gpu.clone(),
            tracker: FiringTracker::new(d_sae, dead_tokens(&cfg.architecture)),
            cfg: cfg.clone(),
            source,
            buf,
            kernels,
            input_scale: params.input_scale,
            d_in,
            d_sae,
            batch,
            k,
            k_aux,
            rows_per_chunk: rows,
            step: 0,
            pending: 0,
            host_x: vec![0.0; batch * d_in],
            lrs: Vec::new(),
            partial_offsets,
        })
    }

    /// Steps completed.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// Bytes of every buffer this trainer holds on the device (the step kernels' few uniform
    /// and scratch bytes aside).
    pub fn device_bytes(&self) -> u64 {
        let b = &self.buf;
        let mut all: Vec<&wgpu::Buffer> = vec![
            &b.w_enc,
            &b.b_enc,
            &b.w_dec,
            &b.b_dec,
            &b.x,
            &b.xc,
            &b.x_chunk,
            &b.pre,
            &b.idx_chunk,
            &b.val_chunk,
            &b.aidx_chunk,
            &b.aval_chunk,
            &b.idx,
            &b.val,
            &b.aidx,
            &b.aval,
            &b.x_hat,
            &b.e_hat,
            &b.g,
            &b.g_val,
            &b.gpre,
            &b.ag_val,
            &b.agpre,
            &b.row_loss,
            &b.losses,
            &b.zero_bias,
            &b.since,
            &b.mask_window,
            &b.counters,
            &b.topk_scratch,
            &b.list_scratch,
            &b.partials,
            &b.norm2,
        ];
        all.extend(b.grads.iter().chain(&b.m).chain(&b.v));
        all.iter().map(|x| x.size()).sum()
    }

    /// The largest single buffer this trainer holds, in bytes (what must fit the device's
    /// maximum buffer and binding sizes).
    pub fn largest_buffer(&self) -> u64 {
        let b = &self.buf;
        [&b.w_enc, &b.w_dec, &b.pre, &b.x, &b.list_scratch]
            .iter()
            .map(|x| x.size())
            .max()
            .unwrap_or(0)
    }

    /// Rows of pre-activations computed per chunk (the whole batch when it fits one binding).
    pub fn rows_per_chunk(&self) -> usize {
        self.rows_per_chunk
    }

    /// The source, for its ground truth and description.
    pub fn source(&self) -> &dyn ActivationSource {
        self.source.as_ref()
    }

    fn base(&self) -> StepParams {
        StepParams {
            batch: self.batch as u32,
            d_in: self.d_in as u32,
            d_sae: self.d_sae as u32,
            k: self.k as u32,
            dead_tokens: dead_tokens(&self.cfg.architecture).min(u32::MAX as u64 - 1) as u32,
            beta1: BETA1,
            beta2: BETA2,
            eps: EPS,
            max_norm: self.cfg.max_grad_norm,
            k_aux: self.k_aux.max(1) as f32,
            aux_coefficient: match self.cfg.architecture {
                Architecture::TopK {
                    aux_coefficient, ..
                } => aux_coefficient,
                _ => 0.0,
            },
            ..Default::default()
        }
    }

    /// Records and submits one training step.
    async fn step_once(&mut self) -> Result<()> {
        self.source.next_batch(&mut self.host_x);
        let s = self.input_scale;
        self.host_x.iter_mut().for_each(|v| *v *= s);
        let gpu = self.gpu.clone();
        let b = &self.buf;
        gpu.queue
            .write_buffer(&b.x, 0, bytemuck::cast_slice(&self.host_x));
        let (batch, d_in, d_sae, k, k_aux) =
            (self.batch, self.d_in, self.d_sae, self.k, self.k_aux);
        let base = self.base();
        let lr = learning_rate(&self.cfg, self.step);
        let t = self.step + 1;
        let slot = self.pending;
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for gb in &b.grads {
            enc.clear_buffer(gb, 0, None);
        }

        // Forward in row chunks: pre-activations, top-k, and AuxK's top-k among dead latents.
        let mut row = 0;
        while row < batch {
            let rows = self.rows_per_chunk.min(batch - row);
            let f4 = 4u64;
            enc.copy_buffer_to_buffer(
                &b.x,
                (row * d_in) as u64 * f4,
                &b.x_chunk,
                0,
                (rows * d_in) as u64 * f4,
            );
            kernels::encode(
                &gpu,
                &mut enc,
                &kernels::EncodeBuffers {
                    x: &b.x_chunk,
                    w_enc: &b.w_enc,
                    b_enc: &b.b_enc,
                    b_dec: &b.b_dec,
                    pre: &b.pre,
                },
                rows,
                d_in,
                d_sae,
            )
            .await?;
            kernels::topk_rows(
                &gpu,
                &mut enc,
                &kernels::TopkBuffers {
                    pre: &b.pre,
                    idx: &b.idx_chunk,
                    val: &b.val_chunk,
                    scratch: &b.topk_scratch,
                    mask: None,
                },
                rows,
                d_sae,
                k,
            )
            .await?;
            kernels::topk_rows(
                &gpu,
                &mut enc,
                &kernels::TopkBuffers {
                    pre: &b.pre,
                    idx: &b.aidx_chunk,
                    val: &b.aval_chunk,
                    scratch: &b.topk_scratch,
                    mask: Some(&b.mask_window),
                },
                rows,
                d_sae,
                k_aux,
            )
            .await?;
            for (src, dst, width) in [
                (&b.idx_chunk, &b.idx, k),
                (&b.val_chunk, &b.val, k),
                (&b.aidx_chunk, &b.aidx, k_aux),
                (&b.aval_chunk, &b.aval, k_aux),
            ] {
                enc.copy_buffer_to_buffer(
                    src,
                    0,
                    dst,
                    (row * width) as u64 * f4,
                    (rows * width) as u64 * f4,
                );
            }
            row += rows;
        }
        let dec = |idx, val, bias, out| kernels::DecodeSparseBuffers {
            idx,
            val,
            w_dec: &b.w_dec,
            b_dec: bias,
            x_hat: out,
        };
        kernels::decode_sparse(
            &gpu,
            &mut enc,
            &dec(&b.idx, &b.val, &b.b_dec, &b.x_hat),
            batch,
            k,
            d_in,
            d_sae,
        )
        .await?;
        kernels::decode_sparse(
            &gpu,
            &mut enc,
            &dec(&b.aidx, &b.aval, &b.zero_bias, &b.e_hat),
            batch,
            k_aux,
            d_in,
            d_sae,
        )
        .await?;

        // Reconstruction and AuxK gradients at the outputs, and the step's losses.
        let kx = &mut self.kernels;
        let bg_centre = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.x), Some(&b.b_dec), Some(&b.xc), None, None],
                ..Default::default()
            },
        );
        let bg_recon = kx.bind(
            &gpu,
            &Bindings {
                f: [
                    Some(&b.x_hat),
                    Some(&b.x),
                    Some(&b.g),
                    Some(&b.row_loss),
                    None,
                ],
                ..Default::default()
            },
        );
        let bg_sum_recon = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.row_loss), Some(&b.losses), None, None, None],
                ..Default::default()
            },
        );
        let bg_aux = kx.bind(
            &gpu,
            &Bindings {
                f: [
                    Some(&b.x),
                    Some(&b.x_hat),
                    Some(&b.e_hat),
                    Some(&b.row_loss),
                    None,
                ],
                counters: Some(&b.counters),
                ..Default::default()
            },
        );
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            kx.record(
                &mut pass,
                Kernel::Centre,
                &bg_centre,
                base,
                (batch * d_in) as u32,
            );
            kx.record(&mut pass, Kernel::ReconGrad, &bg_recon, base, batch as u32);
            kx.record(
                &mut pass,
                Kernel::ReduceSum,
                &bg_sum_recon,
                StepParams {
                    count: batch as u32,
                    out_index: 2 * slot,
                    ..base
                },
                1,
            );
            kx.record(&mut pass, Kernel::AuxGrad, &bg_aux, base, batch as u32);
            kx.record(
                &mut pass,
                Kernel::ReduceSum,
                &bg_sum_recon,
                StepParams {
                    count: batch as u32,
                    out_index: 2 * slot + 1,
                    ..base
                },
                1,
            );
        }
        // Gradients at the active entries.
        let lg = |idx, g, out| kernels::LatentGradSparseBuffers {
            idx,
            g,
            w_dec: &b.w_dec,
            g_val: out,
        };
        kernels::latent_grad_sparse(
            &gpu,
            &mut enc,
            &lg(&b.idx, &b.g, &b.g_val),
            batch,
            k,
            d_in,
            d_sae,
        )
        .await?;
        kernels::latent_grad_sparse(
            &gpu,
            &mut enc,
            &lg(&b.aidx, &b.e_hat, &b.ag_val),
            batch,
            k_aux,
            d_in,
            d_sae,
        )
        .await?;
        let bg_gpre = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.g_val), Some(&b.val), Some(&b.gpre), None, None],
                u: [Some(&b.idx), None],
                ..Default::default()
            },
        );
        let bg_agpre = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.ag_val), Some(&b.aval), Some(&b.agpre), None, None],
                u: [Some(&b.aidx), None],
                ..Default::default()
            },
        );
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            kx.record(
                &mut pass,
                Kernel::EntryGpre,
                &bg_gpre,
                StepParams {
                    count: (batch * k) as u32,
                    ..base
                },
                (batch * k) as u32,
            );
            kx.record(
                &mut pass,
                Kernel::EntryGpre,
                &bg_agpre,
                StepParams {
                    count: (batch * k_aux) as u32,
                    ..base
                },
                (batch * k_aux) as u32,
            );
        }
        // Weight gradients through the per-latent lists (main path, then AuxK).
        for (idx, val, g, gpre, width) in [
            (&b.idx, &b.val, &b.g, &b.gpre, k),
            (&b.aidx, &b.aval, &b.e_hat, &b.agpre, k_aux),
        ] {
            kernels::weight_grad_sparse(
                &gpu,
                &mut enc,
                &kernels::WeightGradSparseBuffers {
                    idx,
                    val,
                    g,
                    w_dec_grad: &b.grads[2],
                    encoder: Some(kernels::EncoderGradBuffers {
                        gpre,
                        xc: &b.xc,
                        w_enc_grad: &b.grads[0],
                        b_enc_grad: &b.grads[1],
                    }),
                    scratch: &b.list_scratch,
                },
                batch,
                width,
                d_in,
                d_sae,
            )
            .await?;
        }
        // b_dec, bookkeeping, the decoder projection, clipping, Adam and the unit-norm decoder.
        enc.clear_buffer(&b.counters, (d_sae * 4) as u64, Some(4));
        let bg_bdec = kx.bind(
            &gpu,
            &Bindings {
                f: [
                    Some(&b.g),
                    Some(&b.gpre),
                    Some(&b.w_enc),
                    Some(&b.grads[3]),
                    None,
                ],
                u: [Some(&b.idx), None],
                ..Default::default()
            },
        );
        let bg_abdec = kx.bind(
            &gpu,
            &Bindings {
                f: [
                    Some(&b.g),
                    Some(&b.agpre),
                    Some(&b.w_enc),
                    Some(&b.grads[3]),
                    None,
                ],
                u: [Some(&b.aidx), None],
                ..Default::default()
            },
        );
        let bg_fire = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.val), None, None, None, None],
                u: [Some(&b.idx), None],
                counters: Some(&b.counters),
            },
        );
        let bg_dead = kx.bind(
            &gpu,
            &Bindings {
                u: [Some(&b.since), Some(&b.mask_window)],
                counters: Some(&b.counters),
                ..Default::default()
            },
        );
        let bg_project = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.w_dec), Some(&b.grads[2]), None, None, None],
                ..Default::default()
            },
        );
        let params = [&b.w_enc, &b.b_enc, &b.w_dec, &b.b_dec];
        let shapes = [d_sae * d_in, d_sae, d_sae * d_in, d_in];
        let bg_sq: Vec<_> = (0..4)
            .map(|i| {
                kx.bind(
                    &gpu,
                    &Bindings {
                        f: [Some(&b.grads[i]), Some(&b.partials), None, None, None],
                        ..Default::default()
                    },
                )
            })
            .collect();
        let bg_norm = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.partials), Some(&b.norm2), None, None, None],
                ..Default::default()
            },
        );
        let bg_adam: Vec<_> = (0..4)
            .map(|i| {
                kx.bind(
                    &gpu,
                    &Bindings {
                        f: [
                            Some(params[i]),
                            Some(&b.grads[i]),
                            Some(&b.m[i]),
                            Some(&b.v[i]),
                            Some(&b.norm2),
                        ],
                        ..Default::default()
                    },
                )
            })
            .collect();
        let bg_norm_dec = kx.bind(
            &gpu,
            &Bindings {
                f: [Some(&b.w_dec), None, None, None, None],
                ..Default::default()
            },
        );
        let n_partials: u32 = shapes
            .iter()
            .map(|&n| n.div_ceil((WG * CHUNK) as usize) as u32)
            .sum();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            kx.record(
                &mut pass,
                Kernel::BdecGrad,
                &bg_bdec,
                StepParams { flags: 1, ..base },
                d_in as u32,
            );
            kx.record(
                &mut pass,
                Kernel::BdecGrad,
                &bg_abdec,
                StepParams {
                    flags: 0,
                    k: k_aux as u32,
                    ..base
                },
                d_in as u32,
            );
            kx.record(
                &mut pass,
                Kernel::FireCount,
                &bg_fire,
                StepParams {
                    count: (batch * k) as u32,
                    ..base
                },
                (batch * k) as u32,
            );
            kx.record(&mut pass, Kernel::DeadUpdate, &bg_dead, base, d_sae as u32);
            kx.record(
                &mut pass,
                Kernel::ProjectDecoder,
                &bg_project,
                base,
                d_sae as u32,
            );
            for i in 0..4 {
                kx.record(
                    &mut pass,
                    Kernel::SumSquares,
                    &bg_sq[i],
                    StepParams {
                        count: shapes[i] as u32,
                        out_index: self.partial_offsets[i],
                        ..base
                    },
                    shapes[i] as u32,
                );
            }
            kx.record(
                &mut pass,
                Kernel::ReduceSum,
                &bg_norm,
                StepParams {
                    count: n_partials,
                    out_index: 0,
                    ..base
                },
                1,
            );
            let c1 = 1.0 - BETA1.powi(t as i32);
            let c2 = 1.0 - BETA2.powi(t as i32);
            for i in 0..4 {
                kx.record(
                    &mut pass,
                    Kernel::Adam,
                    &bg_adam[i],
                    StepParams {
                        count: shapes[i] as u32,
                        lr,
                        c1,
                        c2,
                        ..base
                    },
                    shapes[i] as u32,
                );
            }
            kx.record(
                &mut pass,
                Kernel::NormalizeDecoder,
                &bg_norm_dec,
                base,
                d_sae as u32,
            );
        }
        kx.upload(&gpu);
        gpu.scoped(|| gpu.queue.submit([enc.finish()])).await?;
        self.lrs.push(lr);
        self.step += 1;
        self.pending += 1;
        Ok(())
    }

    /// Runs up to `n` steps (fewer if the run ends) and reports each, reading back the losses
    /// and firing counts once at the end.
    pub async fn run_steps(&mut self, n: u32) -> Result<Vec<StepReport>> {
        let n = n.min(self.cfg.steps.saturating_sub(self.step));
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(MAX_PENDING_STEPS - self.pending);
            for _ in 0..chunk {
                self.step_once().await?;
            }
            left -= chunk;
            out.extend(self.report().await?);
        }
        Ok(out)
    }

    /// Reads the pending steps' losses and the firing window back.
    async fn report(&mut self) -> Result<Vec<StepReport>> {
        let n = self.pending as usize;
        if n == 0 {
            return Ok(vec![]);
        }
        let losses: Vec<f32> = self.gpu.read(&self.buf.losses, 2 * n).await?;
        let window: Vec<u32> = self.gpu.read(&self.buf.mask_window, 2 * self.d_sae).await?;
        let fired: Vec<u64> = window[self.d_sae..].iter().map(|&c| c as u64).collect();
        let total: u64 = fired.iter().sum();
        self.tracker.record_counts(&fired, (n * self.batch) as u64);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&self.buf.mask_window, (self.d_sae * 4) as u64, None);
        self.gpu.queue.submit([enc.finish()]);
        let first = self.step - n as u32;
        let l0 = total as f32 / (n * self.batch) as f32;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let recon = losses[2 * i] / self.batch as f32;
            let aux = losses[2 * i + 1] / self.batch as f32;
            if !(recon + aux).is_finite() {
                return Err(EngineError::Diverged {
                    step: first + i as u32,
                    instance: 0,
                    value: (recon + aux).to_string(),
                });
            }
            out.push(StepReport {
                step: first + i as u32 + 1,
                loss: super::arch::Loss {
                    reconstruction: recon,
                    sparsity: 0.0,
                    auxiliary: aux,
                },
                lr: self.lrs[i],
                l0,
            });
        }
        self.pending = 0;
        self.lrs.clear();
        Ok(out)
    }

    /// The parameters, read back (trained on scaled inputs; see [`SaeParams::folded`]).
    pub async fn params(&self) -> Result<SaeParams> {
        let mut p = SaeParams::zeros(self.d_in, self.d_sae, &self.cfg.architecture);
        p.w_enc = self
            .gpu
            .read(&self.buf.w_enc, self.d_sae * self.d_in)
            .await?;
        p.b_enc = self.gpu.read(&self.buf.b_enc, self.d_sae).await?;
        p.w_dec = self
            .gpu
            .read(&self.buf.w_dec, self.d_sae * self.d_in)
            .await?;
        p.b_dec = self.gpu.read(&self.buf.b_dec, self.d_in).await?;
        p.input_scale = self.input_scale;
        Ok(p)
    }

    /// Metrics on `samples` fresh inputs, computed from the parameters read back.
    pub async fn evaluate(&mut self, samples: usize) -> Result<Evaluation> {
        let p = self.params().await?;
        let mut x = vec![0f32; samples * self.d_in];
        self.source.next_batch(&mut x);
        x.iter_mut().for_each(|v| *v *= p.input_scale);
        let f = super::arch::encode(&self.cfg.architecture, &p, &x, samples);
        let x_hat = super::arch::decode(&p, &f, samples);
        let truth = self
            .source
            .true_features()
            .map(|t| super::metrics::match_ground_truth(&p.w_dec, t, self.d_in));
        Ok(evaluation(
            &self.cfg,
            self.step,
            &x,
            &x_hat,
            &f,
            samples,
            &self.tracker,
            truth.as_ref(),
        ))
    }
}

/// Marks unused entries of a sparse code (re-exported for tests).
pub const EMPTY_SLOT: u32 = NO_LATENT;

#[cfg(test)]
mod tests;
