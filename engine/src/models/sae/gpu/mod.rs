//! The GPU trainer: the shared training loop of [`crate::models::sae::train`] with every tensor on the
//! device and one command encoder, one submit per step. The source records each batch into the
//! step's recording ([`ActivationSource::record_batch`]; a source that makes batches on the
//! host only has its rows uploaded ahead of the submit); the batch is then scaled into the
//! trainer's input, or, with a shuffle pool, a kernel gathers the scaled batch from a
//! device-side pool and puts the fresh rows in its place. Nothing
//! is read back but the per-step losses and firing counts when the caller asks for a report,
//! and the parameters when it asks for them.
//!
//! The TopK family (TopK and BatchTopK, with AuxK) trains through the sparse kernels: the
//! encoder is dense, the decoder and every gradient touch only the active latents. The batch's
//! pre-activations are computed in row chunks no larger than the device's binding limit, so a
//! 4096 × 32768 batch (512 MiB of pre-activations) trains under the browser's 256 MiB; TopK
//! reuses one chunk buffer, BatchTopK keeps every chunk for its selection across the batch.
//! ReLU + L1, JumpReLU and Gated train through dense matmuls over the same row chunks: each
//! chunk's activations and their gradients live only while the chunk is recorded, and every
//! gradient and per-latent statistic is a sum over rows that the chunks add to.

pub mod step;

use self::step::{Bindings, Kernel, StepKernels, StepParams};
use super::config::{Architecture, SaeConfig};
use super::kernels;
use super::params::{SaeParams, TRAINED_TENSORS};
use super::train::{
    dead_tokens, evaluate, initial_params, learning_rate, learning_rate_scales,
    sparsity_coefficient, Evaluation, StepReport, ADAM,
};
use crate::data::{self as source, ActivationSource, ShuffleSlots};
use crate::error::{EngineError, Result};
use crate::gpu::{Arena, ArenaLayout, Gpu, Recorder, Recording, Tensor, View};
use crate::kernels::adam::{adam_scratch_words, AdamStep};
use crate::kernels::rows;
use crate::metrics::sae::FiringTracker;
use std::sync::Arc;

/// `arch` of the dense path's kernels (see sae/step.wgsl).
const ARCH_RELU: u32 = 0;
const ARCH_JUMP: u32 = 1;
const ARCH_GATED: u32 = 2;
/// Sections of `lat_scratch`, what the dense path gathers per latent (see sae/step.wgsl).
const LAT_SCRATCH_SECTIONS: usize = 6;

/// The per-latent tensors, packed back to back in this order so the step kernels bind them as
/// one view `lat` [4, d_sae] and index them by section; every architecture has all four (zeros
/// where it does not use one), so the sections never move.
const PER_LATENT: [&str; 4] = ["b_enc", "r_mag", "b_mag", "log_threshold"];

/// The parameter arena's layout: the decoder, its bias, the encoder, then the per-latent group,
/// log θ last so Adam can give it its own rate (a scaled tensor ends its buffer). Names are
/// [`SaeParams`]' fields (latent-major: `w_enc` is `[d_sae, d_in]`, SAELens's `W_enc`
/// transposed).
fn layout(gpu: &Gpu, d_in: usize, d_sae: usize) -> Result<ArenaLayout> {
    let (w, b, n) = ([d_sae, d_in], [d_in], [d_sae]);
    let dec: [(&str, &[usize]); 1] = [("w_dec", &w)];
    let b_dec: [(&str, &[usize]); 1] = [("b_dec", &b)];
    let enc: [(&str, &[usize]); 1] = [("w_enc", &w)];
    let lat = PER_LATENT.map(|name| (name, &n[..]));
    ArenaLayout::for_device_grouped(gpu, &[&dec, &b_dec, &enc, &lat])
}

/// One arena's tensors (the parameters, or their gradient) as the kernels bind them.
#[derive(Clone, Copy)]
struct Tensors<'a> {
    w_enc: Tensor<'a>,
    b_enc: Tensor<'a>,
    /// The per-latent group [4, d_sae], b_enc first.
    lat: View<'a>,
    w_dec: Tensor<'a>,
    b_dec: Tensor<'a>,
}

impl<'a> Tensors<'a> {
    fn of(arena: &'a Arena) -> Result<Self> {
        Ok(Self {
            w_enc: arena.tensor("w_enc")?,
            b_enc: arena.tensor("b_enc")?,
            lat: arena.span(PER_LATENT[0], PER_LATENT[3])?,
            w_dec: arena.tensor("w_dec")?,
            b_dec: arena.tensor("b_dec")?,
        })
    }
}

/// The first elements of a trainer's buffer as a tensor of `dims` (a buffer is made for the
/// largest shape it takes: a chunk buffer holds a full chunk, the last may be shorter).
fn t<'a>(buf: &'a wgpu::Buffer, name: &'a str, dims: &[usize]) -> Result<Tensor<'a>> {
    Tensor::of(name, buf.into(), dims)
}

/// Writes `p`'s trained tensors into `arena` by name; those its architecture lacks stay zero.
fn write_params(gpu: &Gpu, arena: &Arena, p: &SaeParams) -> Result<()> {
    for (name, t) in TRAINED_TENSORS.iter().zip(p.tensors()) {
        if !t.is_empty() {
            arena.write(gpu, name, t)?;
        }
    }
    Ok(())
}

/// Bindings with the f32 places filled in order.
fn fs<const N: usize>(bufs: [View<'_>; N]) -> Bindings<'_> {
    let mut b = Bindings::default();
    for (slot, buf) in b.f.iter_mut().zip(bufs) {
        *slot = Some(buf);
    }
    b
}

/// Steps whose losses stay on the device before a report must read them.
pub const MAX_PENDING_STEPS: u32 = 1024;

/// Device buffers of one trainer, by what they hold.
struct Buffers {
    weights: Weights,
    batch: BatchBuffers,
    codes: Codes,
    dense: DenseBuffers,
    health: Health,
}

/// The trained tensors, their gradient and Adam's moments, and Adam's scratch.
struct Weights {
    /// The trained tensors by name (see [`layout`]); `grads`, `m` and `v` mirror it.
    params: Arena,
    grads: Arena,
    m: Arena,
    v: Arena,
    /// Adam's partial sums of squares and the gradient's global norm².
    adam_scratch: wgpu::Buffer,
}

impl Weights {
    /// Every buffer it holds.
    fn buffers(&self) -> Vec<&wgpu::Buffer> {
        let mut all: Vec<&wgpu::Buffer> = vec![&self.adam_scratch];
        all.extend(self.grads.buffers());
        all.extend(self.m.buffers());
        all.extend(self.v.buffers());
        all.extend(self.params.buffers());
        all
    }
}

/// The batch as the step sees it: its input `x` (scaled), centred (`xc`), a chunk's rows of
/// each, the reconstruction, and the loss's gradient and per-row terms.
struct BatchBuffers {
    x: wgpu::Buffer,
    xc: wgpu::Buffer,
    x_chunk: wgpu::Buffer,
    /// Dense path, when the batch takes more than one chunk: the chunk's rows of `xc`.
    xc_chunk: wgpu::Buffer,
    x_hat: wgpu::Buffer,
    e_hat: wgpu::Buffer,
    g: wgpu::Buffer,
    row_loss: wgpu::Buffer,
    /// Gated: the aux path's per-row loss (1 word otherwise).
    aux_row_loss: wgpu::Buffer,
    zero_bias: wgpu::Buffer,
}

impl BatchBuffers {
    /// Each row's loss `[batch]`, as a tensor.
    fn row_loss_t(&self, batch: usize) -> Result<Tensor<'_>> {
        Tensor::of("row loss", (&self.row_loss).into(), &[batch])
    }

    /// Every buffer it holds.
    fn buffers(&self) -> Vec<&wgpu::Buffer> {
        vec![
            &self.x,
            &self.xc,
            &self.x_chunk,
            &self.xc_chunk,
            &self.x_hat,
            &self.e_hat,
            &self.g,
            &self.row_loss,
            &self.aux_row_loss,
            &self.zero_bias,
        ]
    }
}

/// Pre-activations and the TopK family's sparse codes: the main and AuxK codes by chunk and
/// for the batch, their gradients, and the selections' scratch.
struct Codes {
    /// Pre-activations: one chunk of rows (TopK and the dense path, reused), or every chunk of
    /// the batch (BatchTopK).
    pre: Vec<wgpu::Buffer>,
    idx_chunk: wgpu::Buffer,
    val_chunk: wgpu::Buffer,
    aidx_chunk: wgpu::Buffer,
    aval_chunk: wgpu::Buffer,
    idx: wgpu::Buffer,
    val: wgpu::Buffer,
    aidx: wgpu::Buffer,
    aval: wgpu::Buffer,
    g_val: wgpu::Buffer,
    gpre: wgpu::Buffer,
    ag_val: wgpu::Buffer,
    agpre: wgpu::Buffer,
    topk_scratch: wgpu::Buffer,
    list_scratch: wgpu::Buffer,
    /// BatchTopK: the main code's row index, the selection's scratch and the inference
    /// threshold (1 word each on the other paths).
    code_rows: wgpu::Buffer,
    select_scratch: wgpu::Buffer,
    threshold: wgpu::Buffer,
}

impl Codes {
    /// Every buffer it holds.
    fn buffers(&self) -> Vec<&wgpu::Buffer> {
        let mut all: Vec<&wgpu::Buffer> = vec![
            &self.idx_chunk,
            &self.val_chunk,
            &self.aidx_chunk,
            &self.aval_chunk,
            &self.idx,
            &self.val,
            &self.aidx,
            &self.aval,
            &self.g_val,
            &self.gpre,
            &self.ag_val,
            &self.agpre,
            &self.topk_scratch,
            &self.list_scratch,
            &self.code_rows,
            &self.select_scratch,
            &self.threshold,
        ];
        all.extend(self.pre.iter());
        all
    }
}

/// The dense path's (ReLU + L1, JumpReLU, Gated) activations and per-latent sums, one chunk
/// at a time.
struct DenseBuffers {
    /// Dense path: one chunk's activations and their gradient `[rows, d_sae]` (1 word on the
    /// TopK path).
    f: wgpu::Buffer,
    gf: wgpu::Buffer,
    /// Gated: ReLU(π_gate), then (once decoded) the aux path's gradient at it.
    gate: wgpu::Buffer,
    /// [6, d_sae]: the dense path's per-latent scratch: decoder norms, the penalty's column
    /// statistic and Gated's per-latent sums.
    lat_scratch: wgpu::Buffer,
}

impl DenseBuffers {
    /// Every buffer it holds.
    fn buffers(&self) -> Vec<&wgpu::Buffer> {
        vec![&self.f, &self.gf, &self.gate, &self.lat_scratch]
    }
}

/// Latent health and what a report reads back: steps since each latent fired, the dead mask
/// and firing window, firing counts, and the pending steps' losses.
struct Health {
    since: wgpu::Buffer,
    mask_window: wgpu::Buffer,
    counters: wgpu::Buffer,
    losses: wgpu::Buffer,
}

impl Health {
    /// Every buffer it holds.
    fn buffers(&self) -> Vec<&wgpu::Buffer> {
        vec![&self.since, &self.mask_window, &self.counters, &self.losses]
    }

    /// The pending steps' losses, three a step, as a tensor.
    fn losses_t(&self) -> Result<Tensor<'_>> {
        let v = View::whole(&self.losses);
        Tensor::of("losses", v, &[v.len])
    }
}

/// The shuffle pool on the device (one buffer: a pool over the device's binding limit is
/// refused), with the slots the host draws for it, as the CPU trainer's `ShuffleBuffer` does.
struct DeviceShuffle {
    slots: ShuffleSlots,
    /// `[pool_rows, d_in]`, unscaled.
    pool: wgpu::Buffer,
    /// The step's slots, uploaded before its submit.
    slot_buf: wgpu::Buffer,
}

/// Trains an SAE on the GPU.
pub struct GpuSaeTrainer {
    gpu: Gpu,
    cfg: SaeConfig,
    source: Box<dyn ActivationSource>,
    buf: Buffers,
    kernels: StepKernels,
    /// Records every step; kept across steps so they reuse its bind groups and uniform
    /// buffer (taken out while a step records).
    recorder: Option<Recorder>,
    input_scale: f32,
    d_in: usize,
    d_sae: usize,
    batch: usize,
    k: usize,
    k_aux: usize,
    rows_per_chunk: usize,
    /// Trains through dense activations (ReLU + L1, JumpReLU, Gated) rather than sparse codes.
    dense: bool,
    /// Selects over the whole batch (BatchTopK) rather than per row.
    batch_topk: bool,
    step: u32,
    pending: u32,
    tracker: FiringTracker,
    /// The step's batch from the source, `[batch, d_in]` unscaled: recorded there by the
    /// source, or uploaded from `host_x` (allocated only for a source that draws on the host).
    fresh: wgpu::Buffer,
    host_x: Vec<f32>,
    shuffle: Option<DeviceShuffle>,
    lrs: Vec<f32>,
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
        let (dense, batch_topk, k) = match cfg.architecture {
            Architecture::TopK { k, .. } => (false, false, k as usize),
            Architecture::BatchTopK { k, .. } => (false, true, k as usize),
            Architecture::ReluL1 { .. }
            | Architecture::JumpRelu { .. }
            | Architecture::Gated { .. } => (true, false, 1),
        };
        let (d_in, d_sae, batch) = (
            cfg.d_in() as usize,
            cfg.d_sae as usize,
            cfg.batch_size as usize,
        );
        if batch_topk && (batch * d_sae) as u64 >= u32::MAX as u64 {
            return Err(EngineError::invalid(
                "batch_size",
                batch,
                format!(
                    "BatchTopK on the GPU selects among batch × d_sae = {} pre-activations, \
                     which must fit 32-bit indices",
                    batch * d_sae
                ),
            ));
        }
        let k_aux = if dense { 1 } else { cfg.k_aux() as usize };
        let rows = ((chunk_bytes / (4 * d_sae as u64)) as usize).clamp(1, batch);
        let chunks = batch.div_ceil(rows);
        let gated = matches!(cfg.architecture, Architecture::Gated { .. });
        let check = gpu.check();
        let weights = (d_sae * d_in * 4) as u64;
        check.storage_buffer("each weight matrix (encoder, decoder)", weights)?;
        check.storage_buffer("one chunk of pre-activations", (rows * d_sae * 4) as u64)?;
        let params = initial_params(cfg, source.as_mut())?;
        let shuffle = match cfg.shuffle_pool_rows() {
            Some(pool_rows) => {
                check.storage_buffer("the shuffle pool", (pool_rows * d_in * 4) as u64)?;
                let mut pool = vec![0f32; pool_rows * d_in];
                source.next_batch(&mut pool);
                Some(DeviceShuffle {
                    slots: ShuffleSlots::new(pool_rows, batch, cfg.seed),
                    pool: gpu.storage_from("sae shuffle pool", &pool)?,
                    slot_buf: gpu.storage_zeroed::<u32>("sae shuffle slots", batch)?,
                })
            }
            None => None,
        };
        let z = |what: &str, n: usize| gpu.storage_zeroed::<f32>(what, n.max(1));
        let zu = |what: &str, n: usize| gpu.storage_zeroed::<u32>(what, n.max(1));
        let arena = Arena::zeroed(gpu, "sae params", Arc::new(layout(gpu, d_in, d_sae)?))?;
        write_params(gpu, &arena, &params)?;
        let dense_len = if dense { rows * d_sae } else { 1 };
        let adam_lens: Vec<usize> = arena.layout().buffer_lens().to_vec();
        let buf = Buffers {
            weights: Weights {
                grads: arena.mirror(gpu, "sae grads")?,
                m: arena.mirror(gpu, "sae adam m")?,
                v: arena.mirror(gpu, "sae adam v")?,
                params: arena,
                adam_scratch: z("sae adam scratch", adam_scratch_words(&adam_lens))?,
            },
            batch: BatchBuffers {
                x: z("sae x", batch * d_in)?,
                xc: z("sae xc", batch * d_in)?,
                x_chunk: z("sae x chunk", rows * d_in)?,
                xc_chunk: z(
                    "sae xc chunk",
                    if dense && chunks > 1 { rows * d_in } else { 1 },
                )?,
                x_hat: z("sae x_hat", batch * d_in)?,
                e_hat: z("sae e_hat", batch * d_in)?,
                g: z("sae g", batch * d_in)?,
                row_loss: z("sae row loss", batch)?,
                aux_row_loss: z("sae aux row loss", if gated { batch } else { 1 })?,
                zero_bias: z("sae zero bias", d_in)?,
            },
            codes: Codes {
                pre: (0..if batch_topk { chunks } else { 1 })
                    .map(|_| z("sae pre", rows * d_sae))
                    .collect::<Result<_>>()?,
                idx_chunk: zu("sae idx chunk", if batch_topk { 1 } else { rows * k })?,
                val_chunk: z("sae val chunk", if batch_topk { 1 } else { rows * k })?,
                aidx_chunk: zu("sae aux idx chunk", rows * k_aux)?,
                aval_chunk: z("sae aux val chunk", rows * k_aux)?,
                idx: zu("sae idx", batch * k)?,
                val: z("sae val", batch * k)?,
                aidx: zu("sae aux idx", batch * k_aux)?,
                aval: z("sae aux val", batch * k_aux)?,
                g_val: z("sae g_val", batch * k)?,
                gpre: z("sae gpre", batch * k)?,
                ag_val: z("sae aux g_val", batch * k_aux)?,
                agpre: z("sae aux gpre", batch * k_aux)?,
                topk_scratch: gpu.storage_zeroed::<u8>(
                    "sae topk scratch",
                    kernels::topk_scratch_bytes(rows, d_sae) as usize,
                )?,
                list_scratch: gpu.storage_zeroed::<u8>(
                    "sae list scratch",
                    kernels::weight_grad_sparse_scratch_bytes(batch, k.max(k_aux), d_sae) as usize,
                )?,
                code_rows: zu(
                    "sae code rows",
                    if batch_topk {
                        kernels::code_rows_len(batch, batch * k)
                    } else {
                        1
                    },
                )?,
                select_scratch: gpu.storage_zeroed::<u8>(
                    "sae batch topk scratch",
                    if batch_topk {
                        kernels::batch_topk_scratch_bytes() as usize
                    } else {
                        4
                    },
                )?,
                threshold: gpu.storage_from("sae batch threshold", &[params.batch_threshold])?,
            },
            dense: DenseBuffers {
                f: z("sae f", dense_len)?,
                gf: z("sae gf", dense_len)?,
                gate: z("sae gate", if gated { dense_len } else { 1 })?,
                lat_scratch: z("sae per-latent scratch", LAT_SCRATCH_SECTIONS * d_sae)?,
            },
            health: Health {
                since: zu("sae since fired", d_sae)?,
                mask_window: zu("sae dead mask and window", 2 * d_sae)?,
                counters: zu("sae counters", d_sae + 1)?,
                losses: z("sae losses", 3 * MAX_PENDING_STEPS as usize)?,
            },
        };
        let kernels = StepKernels::new(gpu).await?;
        Ok(Self {
            gpu: gpu.clone(),
            tracker: FiringTracker::new(d_sae, dead_tokens(&cfg.architecture)),
            cfg: cfg.clone(),
            source,
            buf,
            kernels,
            recorder: Some(Recorder::new(gpu)),
            input_scale: params.input_scale,
            d_in,
            d_sae,
            batch,
            k,
            k_aux,
            rows_per_chunk: rows,
            dense,
            batch_topk,
            step: 0,
            pending: 0,
            fresh: gpu.storage_zeroed::<f32>("sae fresh batch", batch * d_in)?,
            host_x: Vec::new(),
            shuffle,
            lrs: Vec::new(),
        })
    }

    /// The config it trains.
    pub fn config(&self) -> &SaeConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// Bytes of every buffer this trainer holds on the device (the step kernels' few uniform
    /// and scratch bytes aside).
    pub fn device_bytes(&self) -> u64 {
        let b = &self.buf;
        let mut all = b.weights.buffers();
        all.extend(b.batch.buffers());
        all.extend(b.codes.buffers());
        all.extend(b.dense.buffers());
        all.extend(b.health.buffers());
        all.push(&self.fresh);
        if let Some(sh) = &self.shuffle {
            all.extend([&sh.pool, &sh.slot_buf]);
        }
        all.iter().map(|x| x.size()).sum()
    }

    /// The largest single buffer this trainer holds, in bytes (what must fit the device's
    /// maximum buffer and binding sizes).
    pub fn largest_buffer(&self) -> u64 {
        let b = &self.buf;
        let pool = self.shuffle.as_ref().map_or(0, |sh| sh.pool.size());
        [&b.codes.pre[0], &b.batch.x, &b.codes.list_scratch]
            .into_iter()
            .chain(b.weights.params.buffers())
            .map(|x| x.size())
            .chain([pool])
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
            dead_tokens: dead_tokens(&self.cfg.architecture).min(u32::MAX as u64 - 1) as u32,
            k_aux: self.k_aux.max(1) as f32,
            aux_coefficient: match self.cfg.architecture {
                Architecture::TopK {
                    aux_coefficient, ..
                }
                | Architecture::BatchTopK {
                    aux_coefficient, ..
                } => aux_coefficient,
                _ => 0.0,
            },
            bandwidth: match self.cfg.architecture {
                Architecture::JumpRelu { bandwidth, .. } => bandwidth,
                _ => 1.0,
            },
            arch: match self.cfg.architecture {
                Architecture::JumpRelu { .. } => ARCH_JUMP,
                Architecture::Gated { .. } => ARCH_GATED,
                _ => ARCH_RELU,
            },
            rows: self.batch as u32,
            row0: 0,
            ..Default::default()
        }
    }

    /// Records and submits one training step.
    async fn step_once(&mut self) -> Result<()> {
        let lr = learning_rate(&self.cfg, self.step);
        let base = StepParams {
            coefficient: sparsity_coefficient(&self.cfg.architecture, self.step),
            ..self.base()
        };
        let mut recorder = self
            .recorder
            .take()
            .expect("the recorder is put back after each step");
        let recorded = self.record_step(&mut recorder, base, lr).await;
        self.recorder = Some(recorder);
        recorded?;
        self.lrs.push(lr);
        self.step += 1;
        self.pending += 1;
        Ok(())
    }

    /// Records the step's batch into `x`, scaled: the source records it into `fresh` (or its
    /// host rows are uploaded there, ahead of the submit), then the shuffle pool's gather, or a
    /// plain scaling, brings it to `x`.
    async fn record_batch(&mut self, rec: &mut Recording<'_>) -> Result<()> {
        let (batch, d_in) = (self.batch, self.d_in);
        let fresh = (&self.fresh).into();
        if !self.source.record_batch(rec, fresh, batch).await? {
            self.host_x.resize(batch * d_in, 0.0);
            self.source.next_batch(&mut self.host_x);
            let q = &self.gpu.queue;
            q.write_buffer(&self.fresh, 0, bytemuck::cast_slice(&self.host_x));
        }
        match &mut self.shuffle {
            Some(sh) => {
                let q = &self.gpu.queue;
                q.write_buffer(&sh.slot_buf, 0, bytemuck::cast_slice(sh.slots.draw()));
                let sb = kernels::GatherScatter {
                    slots: t(&sh.slot_buf, "slots", &[batch])?,
                    fresh: t(&self.fresh, "fresh batch", &[batch, d_in])?,
                    pool: t(&sh.pool, "shuffle pool", &[sh.slots.pool_rows(), d_in])?,
                    x: t(&self.buf.batch.x, "x", &[batch, d_in])?,
                };
                kernels::gather_scatter(rec, &sb, self.input_scale).await
            }
            None => {
                let shape = [batch, d_in];
                let fresh = t(&self.fresh, "fresh batch", &shape)?;
                let x = t(&self.buf.batch.x, "x", &shape)?;
                crate::kernels::add::scale(rec, fresh, x, self.input_scale).await
            }
        }
    }

    /// Records one step's work, its batch first, and submits it.
    async fn record_step(
        &mut self,
        recorder: &mut Recorder,
        base: StepParams,
        lr: f32,
    ) -> Result<()> {
        let mut rec = recorder.begin();
        self.record_batch(&mut rec).await?;
        for gb in self.buf.weights.grads.buffers() {
            rec.clear(gb, 0, None);
        }
        {
            let b = &self.buf;
            let p = Tensors::of(&b.weights.params)?;
            let shape = [self.batch, self.d_in];
            let x = t(&b.batch.x, "x", &shape)?;
            let xc = t(&b.batch.xc, "xc", &shape)?;
            rows::centre(&mut rec, x, p.b_dec, xc).await?;
        }
        if self.dense {
            self.record_dense(&mut rec, base).await?;
        } else {
            self.record_sparse(&mut rec, base).await?;
        }
        self.record_update(&mut rec, base, lr).await?;
        rec.submit_scoped().await
    }

    /// The TopK family: encode in row chunks and select (per row for TopK, over the whole batch
    /// for BatchTopK), decode and differentiate only active latents, AuxK on the dead ones.
    /// Both architectures share everything past the selection, AuxK included; BatchTopK's code
    /// carries a row index, since its rows hold different numbers of latents.
    async fn record_sparse(&self, rec: &mut Recording<'_>, base: StepParams) -> Result<()> {
        let b = &self.buf;
        let (p, g_all) = (
            Tensors::of(&b.weights.params)?,
            Tensors::of(&b.weights.grads)?,
        );
        let (batch, d_in, d_sae, k, k_aux) =
            (self.batch, self.d_in, self.d_sae, self.k, self.k_aux);
        let slot = self.pending;
        let f4 = 4u64;
        let (mut row, mut chunk) = (0, 0);
        while row < batch {
            let rows = self.rows_per_chunk.min(batch - row);
            // BatchTopK keeps every chunk's pre-activations for its selection over the batch;
            // TopK selects per chunk and reuses one buffer.
            let pre = &b.codes.pre[chunk % b.codes.pre.len()];
            rec.copy(
                &b.batch.x,
                (row * d_in) as u64 * f4,
                &b.batch.x_chunk,
                0,
                (rows * d_in) as u64 * f4,
            );
            let pre_t = t(pre, "pre", &[rows, d_sae])?;
            let eb = kernels::Encode {
                x: t(&b.batch.x_chunk, "x chunk", &[rows, d_in])?,
                w_enc: p.w_enc,
                b_enc: p.b_enc,
                b_dec: p.b_dec,
                pre: pre_t,
            };
            kernels::encode(rec, &eb).await?;
            // (chunk's code, mask, width, the batch's code): AuxK's per-row selection over dead
            // latents, and TopK's own.
            let mut selections = vec![(
                (&b.codes.aidx_chunk, &b.codes.aval_chunk),
                Some(&b.health.mask_window),
                k_aux,
                (&b.codes.aidx, &b.codes.aval),
            )];
            if !self.batch_topk {
                selections.push((
                    (&b.codes.idx_chunk, &b.codes.val_chunk),
                    None,
                    k,
                    (&b.codes.idx, &b.codes.val),
                ));
            }
            for ((idx, val), mask, width, (all_idx, all_val)) in selections {
                let tb = kernels::Topk {
                    pre: pre_t,
                    idx: t(idx, "idx chunk", &[rows, width])?,
                    val: t(val, "val chunk", &[rows, width])?,
                    scratch: Tensor::all("topk scratch", (&b.codes.topk_scratch).into())?,
                    mask: mask.map(|m| t(m, "dead mask", &[d_sae])).transpose()?,
                };
                kernels::topk_rows(rec, &tb).await?;
                let at = (row * width) as u64 * f4;
                let bytes = (rows * width) as u64 * f4;
                rec.copy(idx, 0, all_idx, at, bytes);
                rec.copy(val, 0, all_val, at, bytes);
            }
            row += rows;
            chunk += 1;
        }
        let main_rows = if self.batch_topk {
            let per = self.rows_per_chunk;
            let pre = b
                .codes
                .pre
                .iter()
                .enumerate()
                .map(|(c, pre)| t(pre, "pre", &[per.min(batch - c * per), d_sae]))
                .collect::<Result<Vec<_>>>()?;
            let rows = Tensor::all("code rows", (&b.codes.code_rows).into())?;
            let sb = kernels::BatchTopk {
                pre: &pre,
                code: kernels::Code {
                    idx: t(&b.codes.idx, "idx", &[batch, k])?,
                    val: t(&b.codes.val, "val", &[batch, k])?,
                    rows: Some(rows),
                },
                scratch: Tensor::all("select scratch", (&b.codes.select_scratch).into())?,
            };
            kernels::batch_topk(rec, &sb).await?;
            Some(rows)
        } else {
            None
        };
        // The main code (k entries a row on average) and AuxK's (k_aux a row) through the same
        // sparse kernels, the main one with its row index.
        // The main code (k entries a row on average, with its row index) and AuxK's.
        let main = kernels::Code {
            idx: t(&b.codes.idx, "idx", &[batch, k])?,
            val: t(&b.codes.val, "val", &[batch, k])?,
            rows: main_rows,
        };
        let aux = kernels::Code {
            idx: t(&b.codes.aidx, "aux idx", &[batch, k_aux])?,
            val: t(&b.codes.aval, "aux val", &[batch, k_aux])?,
            rows: None,
        };
        let zero_bias = t(&b.batch.zero_bias, "zero bias", &[d_in])?;
        let (x_hat, e_hat) = (
            t(&b.batch.x_hat, "x_hat", &[batch, d_in])?,
            t(&b.batch.e_hat, "e_hat", &[batch, d_in])?,
        );
        for (code, bias, out) in [(main, p.b_dec, x_hat), (aux, zero_bias, e_hat)] {
            let db = kernels::DecodeSparse {
                code,
                w_dec: p.w_dec,
                b_dec: bias,
                x_hat: out,
            };
            kernels::decode_sparse(rec, &db).await?;
        }
        // Reconstruction and AuxK gradients at the outputs (AuxK's overwrites e_hat), losses.
        let kx = &self.kernels;
        {
            let bg_recon =
                fs([&b.batch.x, &b.batch.x_hat, &b.batch.g, &b.batch.row_loss].map(View::from));
            let mut bg_aux = fs([
                &b.batch.x,
                &b.batch.x_hat,
                &b.batch.e_hat,
                &b.batch.row_loss,
            ]
            .map(View::from));
            bg_aux.counters = Some((&b.health.counters).into());
            let bg_aux = bg_aux;
            let (row_loss, losses) = (b.batch.row_loss_t(batch)?, b.health.losses_t()?);
            kx.record(rec, Kernel::ReconGrad, &bg_recon, base, batch as u32);
            rows::sum_into(rec, row_loss, losses, 3 * slot as usize).await?;
            kx.record(rec, Kernel::AuxGrad, &bg_aux, base, batch as u32);
            rows::sum_into(rec, row_loss, losses, 3 * slot as usize + 2).await?;
        }
        let g = t(&b.batch.g, "g", &[batch, d_in])?;
        for (code, g, out) in [
            (main, g, t(&b.codes.g_val, "g_val", &[batch, k])?),
            (
                aux,
                e_hat,
                t(&b.codes.ag_val, "aux g_val", &[batch, k_aux])?,
            ),
        ] {
            let lb = kernels::LatentGradSparse {
                code,
                g,
                w_dec: p.w_dec,
                g_val: out,
            };
            kernels::latent_grad_sparse(rec, &lb).await?;
        }
        {
            let mut bg = fs([&b.codes.g_val, &b.codes.val, &b.codes.gpre].map(View::from));
            bg.u[0] = Some((&b.codes.idx).into());
            let bg_gpre = bg;
            let mut bg = fs([&b.codes.ag_val, &b.codes.aval, &b.codes.agpre].map(View::from));
            bg.u[0] = Some((&b.codes.aidx).into());
            let bg_agpre = bg;
            let n = |w: usize| StepParams {
                count: (batch * w) as u32,
                ..base
            };
            let (nk, na) = ((batch * k) as u32, (batch * k_aux) as u32);
            kx.record(rec, Kernel::EntryGpre, &bg_gpre, n(k), nk);
            kx.record(rec, Kernel::EntryGpre, &bg_agpre, n(k_aux), na);
        }
        let xc = t(&b.batch.xc, "xc", &[batch, d_in])?;
        let list_scratch = Tensor::all("list scratch", (&b.codes.list_scratch).into())?;
        for (code, g, gpre) in [
            (main, g, t(&b.codes.gpre, "gpre", &[batch, k])?),
            (aux, e_hat, t(&b.codes.agpre, "aux gpre", &[batch, k_aux])?),
        ] {
            let wb = kernels::WeightGradSparse {
                code,
                g,
                w_dec_grad: g_all.w_dec,
                encoder: Some(kernels::EncoderGrad {
                    gpre,
                    xc,
                    w_enc_grad: g_all.w_enc,
                    b_enc_grad: g_all.b_enc,
                }),
                scratch: list_scratch,
            };
            kernels::weight_grad_sparse(rec, &wb).await?;
        }
        // b_dec's gradient: Σ g, less the encoder's term Σ_(b,t) gpre · W_enc[idx] summed per
        // latent first, which is b_enc's gradient (main and AuxK entries, just accumulated):
        // d_sae products per input dimension instead of one per entry of both codes.
        let mut bg = fs([(&b.batch.g).into(), p.w_enc.view, g_all.b_dec.view]);
        bg.f[4] = Some(g_all.b_enc.view);
        let bg_bdec = bg;
        let mut bg = fs([(&b.codes.val).into()]);
        bg.u[0] = Some((&b.codes.idx).into());
        bg.counters = Some((&b.health.counters).into());
        let bg_fire = bg;
        let bg_threshold = self
            .batch_topk
            .then(|| fs([&b.codes.val, &b.codes.threshold].map(View::from)));
        let di = d_in as u32;
        let bdec = StepParams {
            flags: 1,
            out_index: 0,
            ..base
        };
        kx.record(rec, Kernel::BdecGrad, &bg_bdec, bdec, di);
        let entries = StepParams {
            count: (batch * k) as u32,
            ..base
        };
        kx.record(
            rec,
            Kernel::FireCount,
            &bg_fire,
            entries,
            (batch * k) as u32,
        );
        if let Some(bg) = &bg_threshold {
            kx.record(rec, Kernel::ThresholdEma, bg, entries, 1);
        }
        Ok(())
    }

    /// ReLU + L1, JumpReLU and Gated: dense activations, matmul decoder and backward, the
    /// activation's backward one latent column per invocation, over row chunks. A chunk's
    /// activations, their gradients and its reconstruction are spent before the next chunk
    /// reuses their buffers; what outlives it (weight and per-latent gradients, the penalty's
    /// column statistics, firing counts, per-row losses, b_dec's row sums) is summed over chunks.
    async fn record_dense(&self, rec: &mut Recording<'_>, base: StepParams) -> Result<()> {
        let b = &self.buf;
        let (p, g_all) = (
            Tensors::of(&b.weights.params)?,
            Tensors::of(&b.weights.grads)?,
        );
        let (batch, d_in, d_sae) = (self.batch, self.d_in, self.d_sae);
        let slot = self.pending;
        let gated = base.arch == ARCH_GATED;
        let whole = self.rows_per_chunk == batch;
        let f4 = 4u64;
        // The per-latent scratch gathers sums over the chunks.
        rec.clear(&b.dense.lat_scratch, 0, None);
        let scratch = View::from(&b.dense.lat_scratch);
        let kx = &self.kernels;
        {
            let norms = View {
                len: d_sae,
                ..scratch
            };
            rows::row_norms(rec, p.w_dec, Tensor::of("decoder norms", norms, &[d_sae])?).await?;
        }
        // Gated's aux path reconstructs into e_hat and takes its output gradient in x_hat, whose
        // main reconstruction is spent by then.
        let (x_aux, g_aux) = (&b.batch.e_hat, &b.batch.x_hat);
        // The chunk's inputs, centred and not: copied into the chunk buffers before each chunk,
        // or read in place when the batch is one chunk. Every chunk binds the same buffers.
        let (x, xc) = if whole {
            (&b.batch.x, &b.batch.xc)
        } else {
            (&b.batch.x_chunk, &b.batch.xc_chunk)
        };
        let mut bg = fs([&b.codes.pre[0], &b.dense.f, &b.dense.gate].map(View::from));
        bg.f[3] = Some(p.lat);
        let bg_act = bg;
        let bg_recon = fs([x, &b.batch.x_hat, &b.batch.g, &b.batch.row_loss].map(View::from));
        let bg_aux = gated.then(|| fs([x, x_aux, g_aux, &b.batch.aux_row_loss].map(View::from)));
        // Slot 5: the aux path's gradient at ReLU(π_gate) for Gated, glat otherwise.
        let (col, last_f) = if gated {
            (Kernel::GatedColBackward, View::from(&b.dense.gate))
        } else {
            (Kernel::DenseColBackward, g_all.lat)
        };
        let mut bg = fs([&b.codes.pre[0], &b.dense.f, &b.dense.gf].map(View::from));
        bg.f[3] = Some(p.lat);
        bg.f[4] = Some(last_f);
        bg.u[1] = Some(scratch);
        bg.counters = Some((&b.health.counters).into());
        let bg_col = bg;
        // b_dec's gradient: each chunk's Σ g, and once the column sums of the gradient at
        // W_enc xc are complete, their term (glat's b_enc section, or Gated's own in
        // lat_scratch).
        let mut bg = fs([(&b.batch.g).into(), p.w_enc.view, g_all.b_dec.view]);
        bg.f[4] = Some(if gated { scratch } else { g_all.b_enc.view });
        let bg_bdec = bg;
        let mut row = 0;
        while row < batch {
            let rows = self.rows_per_chunk.min(batch - row);
            let last = row + rows == batch;
            let chunk = StepParams {
                rows: rows as u32,
                row0: row as u32,
                ..base
            };
            if !whole {
                let (at, bytes) = ((row * d_in) as u64 * f4, (rows * d_in) as u64 * f4);
                rec.copy(&b.batch.x, at, x, 0, bytes);
                rec.copy(&b.batch.xc, at, xc, 0, bytes);
            }
            // The chunk's rows of each buffer it binds.
            let by_input = |buf, name| t(buf, name, &[rows, d_in]);
            let by_latent = |buf, name| t(buf, name, &[rows, d_sae]);
            let eb = kernels::Encode {
                x: by_input(x, "x chunk")?,
                w_enc: p.w_enc,
                b_enc: p.b_enc,
                b_dec: p.b_dec,
                pre: by_latent(&b.codes.pre[0], "pre")?,
            };
            kernels::encode(rec, &eb).await?;
            {
                let n = (rows * d_sae) as u32;
                kx.record(rec, Kernel::ActForward, &bg_act, chunk, n);
            }
            let (f, gf) = (by_latent(&b.dense.f, "f")?, by_latent(&b.dense.gf, "gf")?);
            // Gated's ReLU(π_gate) (one word on the other paths).
            let gate = gated
                .then(|| by_latent(&b.dense.gate, "gate"))
                .transpose()?;
            let (x_hat, g) = (
                by_input(&b.batch.x_hat, "x_hat")?,
                by_input(&b.batch.g, "g")?,
            );
            let mut decodes = vec![(f, x_hat)];
            if let Some(gate) = gate {
                decodes.push((gate, by_input(x_aux, "aux x_hat")?));
            }
            for (f, x_hat) in decodes {
                let db = kernels::DecodeDense {
                    f,
                    w_dec: p.w_dec,
                    b_dec: p.b_dec,
                    x_hat,
                };
                kernels::decode_dense(rec, &db).await?;
            }
            {
                let n = rows as u32;
                kx.record(rec, Kernel::ReconGrad, &bg_recon, chunk, n);
                if let Some(bg) = &bg_aux {
                    kx.record(rec, Kernel::ReconGrad, bg, chunk, n);
                }
            }
            let mut grads = vec![(g, gf)];
            if let Some(gate) = gate {
                // ReLU(π_gate) is spent once decoded; its buffer takes the aux gradient.
                grads.push((by_input(g_aux, "aux g")?, gate));
            }
            for (g, gf) in grads {
                let lb = kernels::LatentGradDense {
                    g,
                    w_dec: p.w_dec,
                    gf,
                };
                kernels::latent_grad_dense(rec, &lb).await?;
            }
            {
                kx.record(rec, col, &bg_col, chunk, d_sae as u32);
            }
            for (coef, rows, grad) in [
                (gf, by_input(xc, "xc chunk")?, g_all.w_enc),
                (f, g, g_all.w_dec),
            ] {
                let wb = kernels::WeightGradDense { coef, rows, grad };
                kernels::weight_grad_dense(rec, &wb).await?;
            }
            let bdec = StepParams {
                out_index: if gated { 5 * d_sae as u32 } else { 0 },
                flags: u32::from(last),
                ..chunk
            };
            kx.record(rec, Kernel::BdecGrad, &bg_bdec, bdec, d_in as u32);
            row += rows;
        }
        let mut bg = Bindings::default();
        bg.f[1] = Some((&b.health.losses).into());
        bg.u[1] = Some(scratch);
        let bg_pen = bg;
        // Gated's aux loss and per-latent gradients; the decoder's penalty gradient (JumpReLU's
        // L0 penalty has none).
        let bg_gated = gated.then(|| {
            let mut bg = Bindings::default();
            bg.f[4] = Some(g_all.lat);
            bg.u[1] = Some(scratch);
            bg
        });
        let bg_pen_dec = (base.arch != ARCH_JUMP).then(|| {
            let mut bg = fs([p.w_dec.view, g_all.w_dec.view]);
            bg.u[1] = Some(scratch);
            bg
        });
        let losses = b.health.losses_t()?;
        rows::sum_into(rec, b.batch.row_loss_t(batch)?, losses, 3 * slot as usize).await?;
        if let Some(lat) = &bg_gated {
            let aux = Tensor::of("aux row loss", (&b.batch.aux_row_loss).into(), &[batch])?;
            rows::sum_into(rec, aux, losses, 3 * slot as usize + 2).await?;
            kx.record(rec, Kernel::GatedLatGrads, lat, base, d_sae as u32);
        }
        let value = StepParams {
            out_index: 3 * slot + 1,
            ..base
        };
        kx.record(rec, Kernel::PenaltyValue, &bg_pen, value, 1);
        if let Some(bg) = &bg_pen_dec {
            let w = (d_sae * d_in) as u32;
            kx.record(rec, Kernel::PenaltyDecoderGrad, bg, base, w);
        }
        Ok(())
    }

    /// What every path shares after the gradients: dead-latent bookkeeping, the decoder
    /// projection, clipping, Adam and the unit-norm decoder.
    async fn record_update(
        &self,
        rec: &mut Recording<'_>,
        base: StepParams,
        lr: f32,
    ) -> Result<()> {
        let b = &self.buf;
        let d_sae = self.d_sae;
        let unit = self.cfg.architecture.unit_norm_decoder();
        rec.clear(&b.health.counters, (d_sae * 4) as u64, Some(4));
        let kx = &self.kernels;
        let bg_dead = Bindings {
            u: [
                Some((&b.health.since).into()),
                Some((&b.health.mask_window).into()),
            ],
            counters: Some((&b.health.counters).into()),
            ..Default::default()
        };
        kx.record(rec, Kernel::DeadUpdate, &bg_dead, base, d_sae as u32);
        let (p, g_all) = (
            Tensors::of(&b.weights.params)?,
            Tensors::of(&b.weights.grads)?,
        );
        if unit {
            let bg_project = fs([p.w_dec.view, g_all.w_dec.view]);
            kx.record(rec, Kernel::ProjectDecoder, &bg_project, base, d_sae as u32);
        }
        // JumpReLU's log θ has a rate of its own.
        let log_threshold_scale =
            learning_rate_scales(&self.cfg.architecture)[super::params::LOG_THRESHOLD];
        let tensors = b.weights.params.adam_tensors(
            &b.weights.grads,
            &b.weights.m,
            &b.weights.v,
            &[("log_threshold", log_threshold_scale)],
        )?;
        let step = AdamStep {
            cfg: ADAM,
            lr,
            t: self.step + 1,
            max_norm: self.cfg.max_grad_norm,
        };
        let scratch = Tensor::all("adam scratch", (&b.weights.adam_scratch).into())?;
        crate::kernels::adam(rec, &tensors, scratch, &step).await?;
        if unit {
            rows::normalize_rows(rec, p.w_dec).await?;
        }
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
        let losses: Vec<f32> = self.gpu.read(&self.buf.health.losses, 3 * n).await?;
        let window: Vec<u32> = self
            .gpu
            .read(&self.buf.health.mask_window, 2 * self.d_sae)
            .await?;
        let fired: Vec<u64> = window[self.d_sae..].iter().map(|&c| c as u64).collect();
        let total: u64 = fired.iter().sum();
        self.tracker.record_counts(&fired, (n * self.batch) as u64);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&self.buf.health.mask_window, (self.d_sae * 4) as u64, None);
        self.gpu.queue.submit([enc.finish()]);
        let first = self.step - n as u32;
        let l0 = total as f32 / (n * self.batch) as f32;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // Reconstruction and AuxK come as batch sums; the penalty kernel averages itself.
            let loss = super::arch::Loss {
                reconstruction: losses[3 * i] / self.batch as f32,
                sparsity: losses[3 * i + 1],
                auxiliary: losses[3 * i + 2] / self.batch as f32,
            };
            if !loss.total().is_finite() {
                return Err(EngineError::Diverged {
                    step: first + i as u32,
                    instance: 0,
                    value: loss.total().to_string(),
                });
            }
            out.push(StepReport {
                step: first + i as u32 + 1,
                loss,
                lr: self.lrs[i],
                l0,
            });
        }
        self.pending = 0;
        self.lrs.clear();
        Ok(out)
    }

    /// Replaces the parameters (they must have this config's shapes); Adam's moments stay.
    pub async fn set_params(&mut self, p: &SaeParams) -> Result<()> {
        let like = self.params().await?;
        super::train::check_shapes(&like, p)?;
        write_params(&self.gpu, &self.buf.weights.params, p)?;
        self.gpu.queue.write_buffer(
            &self.buf.codes.threshold,
            0,
            bytemuck::bytes_of(&p.batch_threshold),
        );
        self.input_scale = p.input_scale;
        Ok(())
    }

    /// The gradient of the last step as the optimiser saw it (after the TopK family's and
    /// Gated's decoder projection, before clipping), shaped like the parameters.
    pub async fn last_gradient(&self) -> Result<SaeParams> {
        self.read_tensors(&self.buf.weights.grads).await
    }

    /// The parameters, read back (trained on scaled inputs; see [`SaeParams::folded`]).
    pub async fn params(&self) -> Result<SaeParams> {
        let mut p = self.read_tensors(&self.buf.weights.params).await?;
        let threshold: Vec<f32> = self.gpu.read(&self.buf.codes.threshold, 1).await?;
        p.batch_threshold = threshold[0];
        p.input_scale = self.input_scale;
        Ok(p)
    }

    /// The tensors of `arena` (the parameters or their gradient) by name, those this
    /// architecture lacks left empty.
    async fn read_tensors(&self, arena: &Arena) -> Result<SaeParams> {
        let mut p = SaeParams::zeros(self.d_in, self.d_sae, &self.cfg.architecture);
        let mut all = arena.read_all(&self.gpu).await?;
        for (name, t) in TRAINED_TENSORS.iter().zip(p.tensors_mut()) {
            if !t.is_empty() {
                let at = all.iter().position(|(n, _, _)| n == name);
                let at = at.ok_or_else(|| EngineError::invalid("tensor", name, "missing"))?;
                *t = std::mem::take(&mut all[at].2);
            }
        }
        Ok(p)
    }

    /// Metrics on `samples` fresh inputs, computed from the parameters read back.
    pub async fn evaluate(&mut self, samples: usize) -> Result<Evaluation> {
        Ok(self.evaluate_with_params(samples).await?.0)
    }

    /// [`Self::evaluate`] and the parameters it evaluated, read back from the device once.
    pub async fn evaluate_with_params(
        &mut self,
        samples: usize,
    ) -> Result<(Evaluation, SaeParams)> {
        let p = self.params().await?;
        let e = evaluate(
            &self.cfg,
            self.step,
            &p,
            self.source.as_mut(),
            &self.tracker,
            samples,
        );
        Ok((e, p))
    }
}

#[cfg(test)]
mod tests;
