//! The GPU context: one adapter, one device, a buffer pool and the compiled programs; the one
//! dispatch path ([`recorder`]), tensor views with their checks ([`tensor`]) and the limits
//! checked before any dispatch.
//!
//! Everything that dispatches takes a `&Gpu` from its caller, so tests and benchmarks can hand in
//! their own device. Nothing here blocks in the browser: readback is `map_async` plus an awaited
//! channel, and native code drives the same futures with `pollster` at the edge.

pub mod arena;
mod limits;
mod pool;
pub mod program;
mod readback;
pub mod recorder;
pub mod tensor;

pub use arena::{Arena, ArenaLayout};
pub use limits::LimitCheck;
pub use pool::BufferPool;
pub use program::{Program, ProgramCache, ProgramSpec};
pub use recorder::{grid, Recorder, Recording};
pub use tensor::{Tensor, TensorBuf, View};

use crate::error::{EngineError, Result};
use std::sync::Arc;

/// A device and queue with the caches every kernel uses. Cheap to clone (all handles are shared).
///
/// The caches sit behind `Arc` so native code can share a `Gpu` across threads; on wasm32 the
/// wgpu handles inside are not `Send`, which is fine for the browser's one thread per device.
#[allow(clippy::arc_with_non_send_sync)]
#[derive(Clone)]
pub struct Gpu {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// The device's queue.
    pub queue: wgpu::Queue,
    /// What the adapter says about itself (name, backend, type).
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own, so all of it is usable).
    pub limits: wgpu::Limits,
    programs: Arc<ProgramCache>,
    pool: Arc<BufferPool>,
    /// Set by [`Gpu::with_row_lanes`]; else the device's own choice.
    row_lanes: Option<u32>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_name())
            .finish()
    }
}

/// The backends [`Gpu::new`] opens, given `WGPU_BACKEND`: those it names, else the primary
/// ones (Vulkan, Metal, DX12, and WebGPU in a browser). Not OpenGL by default: on Mesa's
/// llvmpipe through EGL, the SAE's per-latent lists (storage atomics and barriers in
/// `sae/transpose_lists.wgsl`) came out with holes, so its gradients were wrong; with no
/// primary adapter the CPU reference trains instead.
pub fn backends(wgpu_backend: Option<&str>) -> wgpu::Backends {
    wgpu_backend.map_or(wgpu::Backends::PRIMARY, wgpu::Backends::from_comma_list)
}

impl Gpu {
    /// Opens the best adapter available: natively on the backends `WGPU_BACKEND` names (by
    /// default Vulkan, Metal or DX12, see [`backends`]), or `navigator.gpu` in a browser window
    /// or worker.
    pub async fn new() -> Result<Self> {
        let env = std::env::var("WGPU_BACKEND").ok();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backends(env.as_deref()),
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        Self::from_adapter(adapter).await
    }

    /// Creates the device on a given adapter, asking for the adapter's full limits: toy models
    /// want all the workgroup memory they can get, and large runs want the largest bindings.
    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mechlab"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| EngineError::DeviceRequest(e.to_string()))?;
        #[allow(clippy::arc_with_non_send_sync)]
        Ok(Self {
            device,
            queue,
            info,
            limits,
            programs: Arc::new(ProgramCache::default()),
            pool: Arc::new(BufferPool::default()),
            row_lanes: None,
        })
    }

    /// Invocations the row kernels (LayerNorm, softmax, SoLU, the loss) give each row: `SEG` in
    /// `shaders/common.wgsl`, 1 on software adapters and 32 on GPUs.
    pub fn row_lanes(&self) -> u32 {
        // Software adapters run a workgroup's invocations as SIMD lanes on a CPU thread, and
        // every barrier switches between all of them: there a row is one invocation's loop,
        // with no barriers at all. A GPU splits each row over 32 invocations and a tree.
        let own = if self.is_software() { 1 } else { 32 };
        self.row_lanes.unwrap_or(own)
    }

    /// This device with row kernels giving each row `lanes` invocations (a power of two up to
    /// 256; others are rounded up to one): tests run both variants on any adapter.
    pub fn with_row_lanes(&self, lanes: u32) -> Self {
        Self {
            row_lanes: Some(lanes.clamp(1, 256).next_power_of_two()),
            ..self.clone()
        }
    }

    /// A one-line description of the adapter, as benchmarks and the UI print it.
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// True for software rasterizers (lavapipe, SwiftShader, WARP): the "GPU" is the CPU.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The compiled programs of this device.
    pub fn programs(&self) -> &ProgramCache {
        &self.programs
    }

    /// The program `spec` describes, compiled on first use (see [`ProgramCache::get`]).
    pub async fn program(&self, spec: &ProgramSpec<'_>) -> Result<Arc<Program>> {
        self.programs.get(self, spec).await
    }

    /// The buffer pool of this device.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Limit checks against this device's limits.
    pub fn check(&self) -> LimitCheck<'_> {
        LimitCheck::new(&self.limits)
    }

    /// Creates a storage buffer initialised from `data` (checked against the device's limits).
    pub fn storage_from<T: bytemuck::Pod>(&self, what: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.check().storage_buffer(what, bytes.len() as u64)?;
        let buffer = self.pool.acquire(
            &self.device,
            what,
            (bytes.len() as u64).max(4),
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        );
        self.queue.write_buffer(&buffer, 0, bytes);
        Ok(buffer)
    }

    /// A zeroed storage buffer of `len` elements of `T`.
    pub fn storage_zeroed<T: bytemuck::Pod>(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        let buffer = self.storage_dirty::<T>(what, len)?;
        // Pooled buffers come back dirty.
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&buffer, 0, None);
        self.queue.submit([enc.finish()]);
        Ok(buffer)
    }

    /// A storage buffer of `len` elements of `T` as the pool has it, not zeroed: for a caller
    /// that zeroes it in its own recording ([`Recording::clear`]) rather than in a submit of
    /// its own, as [`Gpu::storage_zeroed`] does.
    pub fn storage_dirty<T: bytemuck::Pod>(&self, what: &str, len: usize) -> Result<wgpu::Buffer> {
        // In u64: on wasm32 a usize product passes 4 GiB by wrapping, and a buffer too large
        // for the device would become a tiny one instead of a refusal naming the limit.
        let bytes = len as u64 * std::mem::size_of::<T>() as u64;
        self.check().storage_buffer(what, bytes)?;
        Ok(self.pool.acquire(
            &self.device,
            what,
            bytes.max(4),
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        ))
    }

    /// A uniform buffer holding `value`.
    pub fn uniform_from<T: bytemuck::Pod>(&self, what: &str, value: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(value);
        let buffer = self.pool.acquire(
            &self.device,
            what,
            bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        self.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// Returns a buffer to the pool for reuse by a later run of the same size.
    pub fn recycle(&self, buffer: wgpu::Buffer) {
        self.pool.release(buffer);
    }

    /// Reads `len` elements of `T` from the start of `src`, without blocking the browser thread.
    pub async fn read<T: bytemuck::Pod>(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
        readback::read(self, src, 0, len).await
    }

    /// Reads `len` elements of `T` from byte `offset` of `src` (a multiple of 4).
    pub async fn read_at<T: bytemuck::Pod>(
        &self,
        src: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> Result<Vec<T>> {
        readback::read(self, src, offset, len).await
    }

    /// Runs `f` inside a validation and out-of-memory error scope, turning anything the device
    /// reports into [`EngineError::Gpu`] instead of an uncaptured panic.
    pub async fn scoped<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        // Both scopes are popped before either answer is awaited. Scopes are a stack per
        // thread, popped in the reverse order of their pushes (wgpu panics otherwise), and
        // while this awaits, another task of the thread (the worker's measurement beside the
        // run Run just started) may push and pop its own.
        let (v, o) = (validation.pop(), oom.pop());
        let (v, o) = (v.await, o.await);
        match v.or(o) {
            Some(e) => Err(EngineError::Gpu(e.to_string())),
            None => Ok(out),
        }
    }
}

/// Rounds `n` up to a multiple of `m`.
pub fn round_up(n: u64, m: u64) -> u64 {
    n.div_ceil(m) * m
}

#[cfg(test)]
mod tests {
    use super::{backends, Gpu};
    use crate::gpu_test;

    /// OpenGL only when asked for: by default a machine without Vulkan, Metal or DX12 has no
    /// adapter (and trains on the CPU reference) rather than a GL one that gets SAE gradients
    /// wrong.
    #[test]
    fn opengl_only_when_asked_for() {
        let default = backends(None);
        assert!(!default.contains(wgpu::Backends::GL), "{default:?}");
        assert!(default.contains(wgpu::Backends::VULKAN | wgpu::Backends::METAL));
        assert!(default.contains(wgpu::Backends::DX12 | wgpu::Backends::BROWSER_WEBGPU));
        assert_eq!(backends(Some("gl")), wgpu::Backends::GL);
        assert_eq!(backends(Some("vulkan")), wgpu::Backends::VULKAN);
    }
    use std::future::Future;
    use std::task::Poll;

    /// Two scoped calls of one thread whose waits overlap (a measurement's chunk and a run's
    /// first submit in the worker): in the browser, where a scope's answer is a promise, the
    /// second pushes its scopes while the first waits, and both must still come back. Before
    /// the fix this panicked in Chromium: "error scopes must be popped in reverse order".
    async fn overlapping_scopes(gpu: &Gpu) {
        let mut a = std::pin::pin!(gpu.scoped(|| 1));
        let mut b = std::pin::pin!(gpu.scoped(|| 2));
        let (mut got_a, mut got_b) = (None, None);
        std::future::poll_fn(|cx| {
            if got_a.is_none() {
                if let Poll::Ready(v) = a.as_mut().poll(cx) {
                    got_a = Some(v);
                }
            }
            if got_b.is_none() {
                if let Poll::Ready(v) = b.as_mut().poll(cx) {
                    got_b = Some(v);
                }
            }
            if got_a.is_some() && got_b.is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        assert_eq!(got_a.unwrap().unwrap(), 1);
        assert_eq!(got_b.unwrap().unwrap(), 2);
    }
    gpu_test!(
        gpu_overlapping_error_scopes_both_come_back,
        overlapping_scopes
    );
}
