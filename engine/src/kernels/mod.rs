//! General GPU ops, one per file, each with its host code, its CPU reference and tests that
//! compare the two on awkward shapes: dense products with transposes, bias and accumulation
//! ([`matmul`]), per-row TopK ([`topk`]), Adam with global-norm clipping ([`adam`]), and
//! LayerNorm ([`layernorm`]), the MLP's activations ([`activation`]) and causal attention
//! ([`attention`]) forward and backward, per-head projections ([`heads`]), embeddings
//! ([`embedding`]), the language-modelling loss ([`cross_entropy`]), the residual stream's
//! sums ([`add`]), linear layers by their weights' names ([`linear`]), column sums for bias gradients ([`sum_rows`]), row-wise
//! centring, norms, normalisation and a vector's sum ([`rows`]) and the edits that replace a
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
pub mod rows;
pub mod sum_rows;
pub mod topk;

pub use adam::{adam, adam_scratch_words, AdamStep, AdamTensor};
pub use matmul::{matmul, Matmul};
pub use topk::{topk_rows, topk_scratch_bytes, Topk, MAX_K};

pub(crate) use crate::gpu::tensor::{dim, elements};
use crate::gpu::Gpu;

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

mod common;
pub(crate) use common::{bool_consts, params, seg_rows, Kernel, Optional, Params};

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

    /// A whole test buffer as a tensor of `dims`.
    pub fn t<'a>(buf: &'a wgpu::Buffer, name: &'a str, dims: &[usize]) -> crate::gpu::Tensor<'a> {
        crate::gpu::Tensor::of(name, buf.into(), dims).unwrap()
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
