//! General GPU ops, one per file, each with its host code, its CPU reference and tests that
//! compare the two on awkward shapes: dense products with transposes, bias and accumulation
//! ([`matmul`]), per-row TopK ([`topk`]), Adam with global-norm clipping ([`adam`]), and
//! LayerNorm ([`layernorm`]), the MLP's activations ([`activation`]) and causal attention
//! ([`attention`]) forward and backward, per-head projections ([`heads`]), embeddings
//! ([`embedding`]), the language-modelling loss ([`cross_entropy`]), the residual stream's
//! sums ([`add`]), linear layers by their weights' names ([`linear`]), column sums for bias gradients ([`sum_rows`]) and the edits that replace a
//! hook's value ([`hook_edit`]). The
//! WGSL of `name.rs` is `shaders/name.wgsl`, whose first line names its host. Labs build on
//! these; a lab's own kernels live in its folder (`models/sae/kernels`).
//!
//! Every function validates shapes and buffer sizes first, then adds its dispatches to the
//! caller's [`Recording`], so a training step is one recording and one submit. Nothing is
//! submitted or read back here. All tensors are f32 (indices u32), row-major, bound as
//! [`View`]s: whole buffers, or tensors of a parameter arena. Inputs a kernel only reads are
//! declared `var<storage, read>`, so several views of one buffer (an arena's weight and bias)
//! may be bound to them in one dispatch; a buffer a kernel writes must appear in no other
//! binding of the call (Chromium refuses "writable storage buffer binding aliasing").
//!
//! Determinism: no kernel adds floats with atomics. Every output element is one chain of adds
//! in a fixed order, so a given device gives the same bits on every run; only integer counts use
//! atomics, and orders that depend on them are sorted away before any float is summed.

pub mod activation;
pub mod adam;
pub mod add;
pub mod attention;
pub mod cross_entropy;
pub mod embedding;
pub mod heads;
pub mod hook_edit;
pub mod layernorm;
pub mod linear;
pub mod matmul;
pub mod sum_rows;
pub mod topk;

pub use adam::{adam, adam_scratch_words, AdamStep, AdamTensor};
pub use matmul::{matmul, Matmul};
pub use topk::{topk_rows, topk_scratch_bytes, TopkBuffers, MAX_K};

use crate::error::Result;
pub(crate) use crate::gpu::tensor::{check_buffer, dim, elements};
use crate::gpu::{Gpu, Program, ProgramSpec, Recording, View};
use std::sync::Arc;

/// Marks an empty slot of a sparse code: a masked TopK found fewer than `k` eligible latents.
/// Kernels reading codes skip it (and any index past `d_sae`).
pub const NO_LATENT: u32 = u32::MAX;

/// Columns per row (or latent) in a 256-invocation workgroup for kernels with one invocation
/// per element of d_in-wide rows: the narrowest of 64, 128 and 256 that covers `d_in`, so a
/// workgroup serves 256 / width rows and narrow rows do not leave most invocations idle (on
/// software adapters every invocation of a workgroup costs time, busy or not).
pub(crate) fn row_width(d_in: u32) -> u32 {
    d_in.next_power_of_two().clamp(64, 256)
}

/// Workgroups a software adapter is given for a grid of independent items: it runs a few
/// workgroups at a time (one per CPU thread), and each costs microseconds to start and switch
/// however little it does, so grids of thousands of near-empty workgroups cost more than
/// their work. Hardware GPUs get one item per workgroup.
const SOFTWARE_GROUPS: u64 = 256;

/// Items each workgroup takes from a grid of `items` on this device (see [`SOFTWARE_GROUPS`]).
pub(crate) fn items_per_group(gpu: &Gpu, items: u64) -> u64 {
    if gpu.is_software() {
        items.div_ceil(SOFTWARE_GROUPS).max(1)
    } else {
        1
    }
}

const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Every kernel's uniform block fits in 16 words; each shader declares the prefix it reads.
pub(crate) type Params = [u32; 32];
pub(crate) const PARAMS_BYTES: u64 = 128;

/// Rows a 256-invocation workgroup of the row kernels handles on this device (`SEG_ROWS` in
/// `shaders/common.wgsl`; see [`Gpu::row_lanes`]).
pub(crate) fn seg_rows(gpu: &Gpu) -> u64 {
    256 / gpu.row_lanes() as u64
}

/// Packs the leading words of a uniform block.
pub(crate) fn params(words: &[u32]) -> Params {
    let mut p = [0; 32];
    p[..words.len()].copy_from_slice(words);
    p
}

/// A storage binding that some variants of a kernel go without. Given, it is declared after the
/// fixed bindings (read-only unless the kernel writes it); absent, as a one-element private
/// array that the specialised shader never touches. (Binding some other buffer of the call in
/// its place could alias a writable binding, which WebGPU implementations may refuse.)
pub(crate) struct Optional<'a> {
    pub name: &'static str,
    pub elem: &'static str,
    pub buffer: Option<View<'a>>,
    /// The kernel writes it.
    pub writes: bool,
}

/// A kernel specialised for one call: its program (the common helpers and `body` after
/// `constants` and the optional bindings' declarations) and its storage bindings in order.
pub(crate) struct Kernel<'a> {
    program: Arc<Program>,
    storage: Vec<View<'a>>,
}

impl<'a> Kernel<'a> {
    /// `storage` (buffers or views) are bindings 1.. in order, then the optional ones that are
    /// given.
    pub(crate) async fn new<S: Into<View<'a>>>(
        gpu: &Gpu,
        label: &'static str,
        constants: &str,
        body: &'static str,
        storage: Vec<S>,
        optional: &[Optional<'a>],
    ) -> Result<Self> {
        let mut storage: Vec<View<'a>> = storage.into_iter().map(Into::into).collect();
        let lanes = gpu.row_lanes();
        let mut variant = format!(
            "const SEG: u32 = {lanes}u;\nconst SEG_ROWS: u32 = {}u;\n{constants}",
            256 / lanes
        );
        for o in optional {
            let (name, elem) = (o.name, o.elem);
            let access = if o.writes { "read_write" } else { "read" };
            match o.buffer {
                Some(b) => {
                    storage.push(b);
                    let at = storage.len();
                    variant += &format!(
                        "@group(0) @binding({at}) var<storage, {access}> {name}: array<{elem}>;\n"
                    );
                }
                None => variant += &format!("var<private> {name}: array<{elem}, 1>;\n"),
            }
        }
        let program = gpu
            .program(&ProgramSpec {
                label,
                variant: &variant,
                body: &[COMMON_WGSL, body],
                uniform_bytes: PARAMS_BYTES,
                storage: storage.len() as u32,
            })
            .await?;
        Ok(Self { program, storage })
    }

    /// Adds a dispatch of `entry` over `groups` workgroups.
    pub(crate) async fn dispatch(
        &self,
        rec: &mut Recording<'_>,
        entry: &str,
        p: Params,
        groups: u64,
    ) -> Result<()> {
        rec.dispatch_views(&self.program, entry, &p, &self.storage, groups)
            .await
    }
}

/// WGSL `const` declarations of booleans.
pub(crate) fn bool_consts(items: &[(&str, bool)]) -> String {
    items
        .iter()
        .map(|(name, v)| format!("const {name}: bool = {v};\n"))
        .collect()
}

#[cfg(test)]
pub(crate) mod test_data {
    //! Deterministic inputs for the kernel tests, and their timing natively.

    /// Prints the time since its start natively; does nothing in the browser (no clock in std).
    pub struct Timer(#[cfg(not(target_arch = "wasm32"))] std::time::Instant);

    impl Timer {
        pub fn start() -> Self {
            Self(
                #[cfg(not(target_arch = "wasm32"))]
                std::time::Instant::now(),
            )
        }

        pub fn report(&self, what: &str) {
            #[cfg(not(target_arch = "wasm32"))]
            eprintln!("{what}: {:?}", self.0.elapsed());
            #[cfg(target_arch = "wasm32")]
            let _ = what;
        }
    }

    /// Adds what `f` records to one recording and submits it; an error fails the test.
    pub async fn record<F>(gpu: &crate::gpu::Gpu, f: F)
    where
        F: AsyncFnOnce(&mut crate::gpu::Recording<'_>) -> crate::error::Result<()>,
    {
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        f(&mut rec).await.unwrap();
        rec.submit();
    }

    /// `n` values in [-1, 1) from a hash of (seed, i): reproducible, no RNG state.
    pub fn values(seed: u32, n: usize) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let mut h = i.wrapping_mul(0x9e37_79b9) ^ seed.wrapping_mul(0x85eb_ca6b);
                h ^= h >> 16;
                h = h.wrapping_mul(0x7feb_352d);
                h ^= h >> 15;
                h = h.wrapping_mul(0x846c_a68b);
                h ^= h >> 16;
                (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }
}
