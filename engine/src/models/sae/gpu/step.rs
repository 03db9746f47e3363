//! Host side of `shaders/sae/step.wgsl`: the training step's own kernels (reconstruction
//! gradient, the TopK family's per-entry gradients and AuxK, firing and dead-latent bookkeeping,
//! decoder projection, the dense path's activations and penalties, BatchTopK's threshold
//! estimate; the optimiser is [`crate::kernels::adam`], and the general row ops (centring,
//! decoder norms and renormalisation, the losses' sums) are [`crate::kernels::rows`]). One bind group layout
//! serves every entry point; each recorded dispatch gets its own parameter block in the step's
//! recording.

use crate::error::Result;
use crate::gpu::{grid, Gpu, Program, ProgramSpec, Recording, View};
use crate::models::sae::train::THRESHOLD_RATE;
use std::collections::HashMap;
use std::sync::Arc;

const SOURCE: &str = include_str!("../../../../../shaders/sae/step.wgsl");
/// Invocations per workgroup (WebGPU guarantees 256).
pub const WG: u32 = 256;
/// f32 arrays, u32 arrays and the atomic counters: the shared layout's storage bindings.
const N_STORAGE: u32 = 8;

/// The uniform block of every step kernel (matches `TrainParams` in the shader).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    pub batch: u32,
    pub d_in: u32,
    pub d_sae: u32,
    pub count: u32,
    pub out_index: u32,
    pub dead_tokens: u32,
    pub flags: u32,
    pub aux_coefficient: f32,
    pub k_aux: f32,
    pub coefficient: f32,
    pub bandwidth: f32,
    pub arch: u32,
    /// Rows this dispatch walks: the batch, or one chunk of it on the dense path.
    pub rows: u32,
    /// The first of those rows in the batch, where per-row outputs go.
    pub row0: u32,
    /// Keeps the uniform block's size a multiple of 16 bytes.
    pub _pad: [u32; 2],
}

// The uniform block's size must stay a multiple of 16 bytes.
const _: () = assert!(std::mem::size_of::<StepParams>().is_multiple_of(16));

/// The entry points of `sae/step.wgsl`, each with the buffers it binds in slot order (f32
/// slots 1–5, then u32 slots 6–7, then the counters; a number says where slots are skipped),
/// as the shader names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Reconstruction gradient and per-row loss. Slots: x, x_hat, g_x_hat, row_loss.
    ReconGrad,
    /// The TopK family's per-entry pre-activation gradient. Slots: g_val, code_val, g_pre;
    /// idx.
    EntryGpre,
    /// Per-latent firing counts. Slots: val; idx; counters.
    FireCount,
    /// Tokens since firing, dead mask, window counts, dead count. Slots: since, mask_window,
    /// counters.
    DeadUpdate,
    /// AuxK's residual gradient. Slots: x, x_hat, e_hat, row_loss; counters.
    AuxGrad,
    /// Removes the radial part of decoder-row gradients. Slots: w_dec, w_dec_grad.
    ProjectDecoder,
    /// The dense path's activation. Slots: pre, f, gate, lat.
    ActForward,
    /// The dense path's activation backward, per latent column. Slots: pre, f, gf, lat, glat;
    /// counters.
    DenseColBackward,
    /// ReLU + L1's penalty gradient on the decoder. Slots: w_dec, w_dec_grad, 4: lat.
    PenaltyDecoderGrad,
    /// The sparsity penalty's value. Slots: 2: sums, 4: lat.
    PenaltyValue,
    /// b_dec's gradient: Σ g less W_enc's column term. Slots: g_chunk, w_enc, b_dec_grad,
    /// 5: col_sums.
    BdecGrad,
    /// Gated's backward, per latent column. Slots: pre, f, gf, lat, g_aux_gate; counters.
    GatedColBackward,
    /// Gated's per-latent gradient sums into the gradient. Slots: 4: lat, 5: glat.
    GatedLatGrads,
    /// BatchTopK's running threshold from the smallest positive kept activation. Slots: val,
    /// threshold.
    ThresholdEma,
}

impl Kernel {
    fn entry(self) -> &'static str {
        match self {
            Kernel::ReconGrad => "recon_grad",
            Kernel::EntryGpre => "entry_gpre",
            Kernel::FireCount => "fire_count",
            Kernel::DeadUpdate => "dead_update",
            Kernel::AuxGrad => "aux_grad",
            Kernel::ProjectDecoder => "project_decoder",
            Kernel::ActForward => "act_forward",
            Kernel::DenseColBackward => "dense_col_backward",
            Kernel::PenaltyDecoderGrad => "penalty_decoder_grad",
            Kernel::PenaltyValue => "penalty_value",
            Kernel::BdecGrad => "bdec_grad",
            Kernel::GatedColBackward => "gated_col_backward",
            Kernel::GatedLatGrads => "gated_lat_grads",
            Kernel::ThresholdEma => "threshold_ema",
        }
    }

    const ALL: [Kernel; 14] = [
        Kernel::ReconGrad,
        Kernel::EntryGpre,
        Kernel::FireCount,
        Kernel::DeadUpdate,
        Kernel::AuxGrad,
        Kernel::ProjectDecoder,
        Kernel::ActForward,
        Kernel::DenseColBackward,
        Kernel::PenaltyDecoderGrad,
        Kernel::PenaltyValue,
        Kernel::BdecGrad,
        Kernel::GatedColBackward,
        Kernel::GatedLatGrads,
        Kernel::ThresholdEma,
    ];
}

/// Tensors bound to one dispatch: up to five f32 slots, two more slots (u32, or the dense
/// path's f32 scratch in slot 7) and the counters. Unused places take a small dummy buffer of
/// their own: WebGPU refuses overlapping bindings when one is writable, and every binding here
/// is, so views in one bind group must not overlap (views of one arena's distinct tensors
/// may share its buffer).
#[derive(Default)]
pub struct Bindings<'a> {
    /// Slots 1–5.
    pub f: [Option<View<'a>>; 5],
    /// Slots 6–7.
    pub u: [Option<View<'a>>; 2],
    /// Slot 8.
    pub counters: Option<View<'a>>,
}

/// The compiled step kernels and the dummies that fill unused bindings.
pub struct StepKernels {
    program: Arc<Program>,
    pipelines: HashMap<Kernel, Arc<wgpu::ComputePipeline>>,
    dummies: Vec<wgpu::Buffer>,
}

impl StepKernels {
    /// Compiles every entry point.
    pub async fn new(gpu: &Gpu) -> Result<Self> {
        let constants =
            format!("const WG: u32 = {WG}u;\nconst THRESHOLD_RATE: f32 = {THRESHOLD_RATE:?};\n");
        let program = gpu
            .program(&ProgramSpec {
                label: "sae_step",
                variant: &constants,
                body: &[SOURCE],
                uniform_bytes: std::mem::size_of::<StepParams>() as u64,
                storage: N_STORAGE,
            })
            .await?;
        let mut pipelines = HashMap::new();
        for k in Kernel::ALL {
            pipelines.insert(k, program.pipeline(gpu, k.entry()).await?);
        }
        let dummies = (0..N_STORAGE)
            .map(|_| gpu.storage_zeroed::<u32>("sae step dummy", 4))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            program,
            pipelines,
            dummies,
        })
    }

    /// Adds `kernel` over `threads` invocations (or `groups` workgroups for the reductions)
    /// with its own parameter block.
    pub fn record(
        &self,
        rec: &mut Recording<'_>,
        kernel: Kernel,
        b: &Bindings,
        params: StepParams,
        threads: u32,
    ) {
        let groups = match kernel {
            Kernel::PenaltyValue | Kernel::ThresholdEma => 1,
            _ => threads.div_ceil(WG).max(1),
        };
        let storage: Vec<View> =
            b.f.iter()
                .chain(b.u.iter())
                .chain(std::iter::once(&b.counters))
                .zip(&self.dummies)
                .map(|(x, d)| x.unwrap_or(View::whole(d)))
                .collect();
        let slot = rec.params(&params);
        rec.dispatch_at(
            &self.program,
            &self.pipelines[&kernel],
            slot,
            &storage,
            grid(groups as u64),
        );
    }
}
