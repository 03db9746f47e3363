//! The one dispatch path: every kernel of every lab is recorded through a [`Recording`] and
//! submitted with it.
//!
//! A [`Recorder`] belongs to whoever records steps (a trainer, a test, a benchmark) and keeps
//! what steps share: one uniform buffer whose slots hold each dispatch's parameter block (read
//! at a dynamic offset), and the bind groups made so far, keyed by program layout and buffers,
//! so a step that binds the same buffers as the last one creates nothing. A [`Recording`] is one
//! submit's worth of work: dispatches, copies and clears in order. On submit the parameter
//! blocks are written to the uniform buffer and the operations are encoded, consecutive
//! dispatches in one compute pass, then submitted. Because the uniform buffer is written only
//! right before its submit, and queue writes and submits run in order, the next recording may
//! reuse the slots at once.
//!
//! Bind groups keep their buffers alive, so the cache lives and dies with its recorder: a
//! trainer's buffers are freed when the trainer (and its recorder) is dropped.

use super::program::{Program, MAX_UNIFORM_BYTES};
use super::tensor::{check_view, View};
use super::Gpu;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::Arc;

/// Widest grid along x; more workgroups spill into y.
pub const MAX_GRID_X: u64 = 65_535;

/// A 2-D grid holding at least `groups` workgroups (shaders skip the excess).
pub fn grid(groups: u64) -> (u32, u32) {
    if groups <= MAX_GRID_X {
        (groups.max(1) as u32, 1)
    } else {
        (MAX_GRID_X as u32, groups.div_ceil(MAX_GRID_X) as u32)
    }
}

/// A slot of the uniform buffer holding one parameter block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u32);

/// A storage binding: a buffer, a byte offset and a size (`None`: to the end).
type Binding = (wgpu::Buffer, u64, Option<u64>);

type BindKey = (wgpu::BindGroupLayout, Vec<Binding>);

/// What recordings share across submits: the uniform buffer and the bind groups.
pub struct Recorder {
    gpu: Gpu,
    stride: u64,
    uniform: Option<wgpu::Buffer>,
    capacity: u32,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    created: u64,
    profile: Option<Profile>,
}

/// Time spent in each kind of operation while profiling (see [`Recorder::profile`]): by
/// `program::entry` and grid, the count and the seconds.
pub type Profile = std::collections::BTreeMap<String, (u32, f64)>;

impl Recorder {
    /// A recorder for `gpu` with nothing cached.
    pub fn new(gpu: &Gpu) -> Self {
        let align = gpu.limits.min_uniform_buffer_offset_alignment as u64;
        Self {
            gpu: gpu.clone(),
            stride: super::round_up(MAX_UNIFORM_BYTES, align.max(1)),
            uniform: None,
            capacity: 0,
            bind_groups: HashMap::new(),
            created: 0,
            profile: None,
        }
    }

    /// Starts (or, with `false`, stops) timing every operation on its own: each is then
    /// submitted alone and waited for, so a profiled step is slower than a real one, but the
    /// time of each kernel shows where a step's time goes. Natively only (a browser cannot
    /// wait for the device).
    pub fn profile(&mut self, on: bool) {
        self.profile = on.then(Profile::new);
    }

    /// What profiling has measured so far.
    pub fn profiled(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Starts one submit's worth of work.
    pub fn begin(&mut self) -> Recording<'_> {
        Recording {
            rec: self,
            ops: Vec::new(),
            params: Vec::new(),
            slots: 0,
            after: Vec::new(),
        }
    }

    /// Bind groups created so far (a step that binds what the last one bound creates none).
    pub fn bind_groups_created(&self) -> u64 {
        self.created
    }

    /// Bytes of the uniform buffer.
    pub fn uniform_bytes(&self) -> u64 {
        self.uniform.as_ref().map_or(0, wgpu::Buffer::size)
    }

    /// Makes room for `slots` parameter blocks; a new buffer invalidates every bind group.
    fn reserve(&mut self, slots: u32) {
        if slots <= self.capacity && self.uniform.is_some() {
            return;
        }
        let capacity = slots.next_power_of_two().max(64);
        self.uniform = Some(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mechlab uniforms"),
            size: self.stride * capacity as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        self.capacity = capacity;
        self.bind_groups.clear();
    }

    fn bind_group(&mut self, program: &Program, storage: Vec<Binding>) -> wgpu::BindGroup {
        let key = (program.bind_layout().clone(), storage);
        if let Some(bg) = self.bind_groups.get(&key) {
            return bg.clone();
        }
        let storage = &key.1;
        let uniform = self.uniform.as_ref().expect("reserved before binding");
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform,
                offset: 0,
                size: wgpu::BufferSize::new(program.uniform_bytes()),
            }),
        }];
        entries.extend(storage.iter().enumerate().map(|(i, (b, offset, size))| {
            wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: *offset,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            }
        }));
        let bg = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(program.label()),
                layout: program.bind_layout(),
                entries: &entries,
            });
        self.created += 1;
        self.bind_groups.insert(key, bg.clone());
        bg
    }
}

enum Op {
    Dispatch {
        program: Arc<Program>,
        pipeline: Arc<wgpu::ComputePipeline>,
        storage: Vec<Binding>,
        slot: Slot,
        grid: (u32, u32),
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
    Clear {
        buffer: wgpu::Buffer,
        offset: u64,
        size: Option<u64>,
    },
}

/// Views as bind-group entries: a whole buffer without an offset or size, as
/// [`Recording::dispatch`] binds it, so both paths share bind groups.
fn bindings(views: &[View<'_>]) -> Vec<Binding> {
    views
        .iter()
        .map(|v| {
            let size = (!v.is_whole()).then(|| v.bytes());
            (v.buffer.clone(), v.offset, size)
        })
        .collect()
}

/// One submit's dispatches, copies and clears, in order (see the module doc).
pub struct Recording<'r> {
    rec: &'r mut Recorder,
    ops: Vec<Op>,
    params: Vec<u8>,
    slots: u32,
    /// Scratch buffers to return to the pool once the work is submitted (see
    /// [`Recording::recycle_after`]).
    after: Vec<wgpu::Buffer>,
}

impl<'r> Recording<'r> {
    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.rec.gpu
    }

    /// Dispatches recorded so far.
    pub fn dispatches(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o, Op::Dispatch { .. }))
            .count()
    }

    /// The grid for `groups` workgroups, refused when the device cannot take it (the message
    /// is formatted only then).
    fn checked_grid(&self, program: &Program, entry: &str, groups: u64) -> Result<(u32, u32)> {
        let g = grid(groups);
        if g.1 > self.gpu().limits.max_compute_workgroups_per_dimension {
            self.gpu().check().workgroups(
                &format!("{}::{entry} (rows of the grid)", program.label()),
                g.1 as u64,
            )?;
        }
        Ok(g)
    }

    /// Returns `buffer` (scratch this recording uses) to the pool once the recording is
    /// submitted. Not before: a buffer taken from the pool meanwhile may be written at once
    /// (`Gpu::storage_from` writes through the queue), ahead of this recording's own use of it.
    pub fn recycle_after(&mut self, buffer: wgpu::Buffer) {
        self.after.push(buffer);
    }

    /// Stores a parameter block for the dispatches that follow; several may share one slot.
    pub fn params<P: bytemuck::Pod>(&mut self, p: &P) -> Slot {
        let bytes = bytemuck::bytes_of(p);
        debug_assert!(bytes.len() as u64 <= MAX_UNIFORM_BYTES);
        let at = self.slots as usize * self.rec.stride as usize;
        self.params.resize(at + self.rec.stride as usize, 0);
        self.params[at..at + bytes.len()].copy_from_slice(bytes);
        self.slots += 1;
        Slot(self.slots - 1)
    }

    /// Adds a dispatch of `entry` over `groups` workgroups laid out by [`grid`], with its own
    /// parameter block; `storage` are bindings 1.. in order. Fails before recording anything
    /// when the grid is beyond the device or the shader does not compile.
    pub async fn dispatch<P: bytemuck::Pod>(
        &mut self,
        program: &Arc<Program>,
        entry: &str,
        params: &P,
        storage: &[&wgpu::Buffer],
        groups: u64,
    ) -> Result<()> {
        let g = self.checked_grid(program, entry, groups)?;
        let pipeline = program.pipeline(&self.rec.gpu, entry).await?;
        let slot = self.params(params);
        let storage = storage.iter().map(|&b| (b.clone(), 0, None)).collect();
        self.push_dispatch(program, pipeline, slot, storage, g);
        Ok(())
    }

    /// Adds a dispatch of a pipeline already fetched from `program`, reading parameter block
    /// `slot`, over a grid the caller has checked, binding views the caller has checked.
    pub fn dispatch_at(
        &mut self,
        program: &Arc<Program>,
        pipeline: &Arc<wgpu::ComputePipeline>,
        slot: Slot,
        storage: &[View<'_>],
        grid: (u32, u32),
    ) {
        self.push_dispatch(program, pipeline.clone(), slot, bindings(storage), grid);
    }

    fn push_dispatch(
        &mut self,
        program: &Arc<Program>,
        pipeline: Arc<wgpu::ComputePipeline>,
        slot: Slot,
        storage: Vec<Binding>,
        grid: (u32, u32),
    ) {
        debug_assert_eq!(storage.len() as u32, program.storage_bindings());
        self.ops.push(Op::Dispatch {
            program: program.clone(),
            pipeline,
            storage,
            slot,
            grid,
        });
    }

    /// As [`Recording::dispatch`], binding tensors inside buffers ([`View`]s of an arena);
    /// each view's offset must be a multiple of the device's storage-offset alignment, as
    /// [`super::ArenaLayout`] places them.
    pub async fn dispatch_views<P: bytemuck::Pod>(
        &mut self,
        program: &Arc<Program>,
        entry: &str,
        params: &P,
        views: &[View<'_>],
        groups: u64,
    ) -> Result<()> {
        for v in views {
            if !v.is_whole() {
                check_view(self.gpu(), "view", v, 0)?;
            }
        }
        let g = self.checked_grid(program, entry, groups)?;
        let pipeline = program.pipeline(&self.rec.gpu, entry).await?;
        let slot = self.params(params);
        self.push_dispatch(program, pipeline, slot, bindings(views), g);
        Ok(())
    }

    /// Copies `size` bytes between buffers, in order with the dispatches.
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.ops.push(Op::Copy {
            src: src.clone(),
            src_offset,
            dst: dst.clone(),
            dst_offset,
            size,
        });
    }

    /// Zeroes `size` bytes of `buffer` from `offset` (all of the rest with `None`).
    pub fn clear(&mut self, buffer: &wgpu::Buffer, offset: u64, size: Option<u64>) {
        self.ops.push(Op::Clear {
            buffer: buffer.clone(),
            offset,
            size,
        });
    }

    /// Writes the parameter blocks to the uniform buffer and hands back the recorder and
    /// the operations to encode.
    fn write_params(self) -> (&'r mut Recorder, Vec<Op>, Vec<wgpu::Buffer>) {
        let Recording {
            rec,
            ops,
            params,
            slots,
            after,
        } = self;
        if slots > 0 {
            rec.reserve(slots);
            let uniform = rec.uniform.as_ref().expect("reserved");
            rec.gpu.queue.write_buffer(uniform, 0, &params);
        }
        (rec, ops, after)
    }

    /// Writes the parameter blocks and encodes everything into a command buffer.
    fn encode(self) -> (wgpu::CommandBuffer, Vec<wgpu::Buffer>) {
        let (rec, ops, after) = self.write_params();
        (encode_ops(rec, ops), after)
    }

    /// Submits each operation alone and waits for it, adding its time to the profile.
    #[cfg(not(target_arch = "wasm32"))]
    fn submit_profiled(self) {
        let (rec, ops, after) = self.write_params();
        for op in ops {
            let key = match &op {
                Op::Dispatch {
                    program,
                    pipeline,
                    grid,
                    ..
                } => format!(
                    "{}::{} {}x{}",
                    program.label(),
                    program.entry_of(pipeline),
                    grid.0,
                    grid.1
                ),
                Op::Copy { size, .. } => format!("copy {size} B"),
                Op::Clear { .. } => "clear".into(),
            };
            let gpu = rec.gpu.clone();
            let cb = encode_ops(rec, vec![op]);
            let start = std::time::Instant::now();
            gpu.queue.submit([cb]);
            let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
            let secs = start.elapsed().as_secs_f64();
            let e = rec
                .profile
                .as_mut()
                .expect("profiling")
                .entry(key)
                .or_default();
            e.0 += 1;
            e.1 += secs;
        }
        after.into_iter().for_each(|b| rec.gpu.recycle(b));
    }

    /// Submits the work.
    pub fn submit(self) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.rec.profile.is_some() {
            return self.submit_profiled();
        }
        let gpu = self.rec.gpu.clone();
        let (cb, after) = self.encode();
        gpu.queue.submit([cb]);
        after.into_iter().for_each(|b| gpu.recycle(b));
    }

    /// Submits the work inside an error scope, so a validation or out-of-memory error comes
    /// back as [`crate::EngineError::Gpu`].
    pub async fn submit_scoped(self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        if self.rec.profile.is_some() {
            self.submit_profiled();
            return Ok(());
        }
        let gpu = self.rec.gpu.clone();
        let after = gpu
            .scoped(|| {
                let (cb, after) = self.encode();
                gpu.queue.submit([cb]);
                after
            })
            .await?;
        after.into_iter().for_each(|b| gpu.recycle(b));
        Ok(())
    }
}

/// Encodes `ops` in order, consecutive dispatches in one compute pass.
fn encode_ops(rec: &mut Recorder, ops: Vec<Op>) -> wgpu::CommandBuffer {
    let gpu = rec.gpu.clone();
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    let stride = rec.stride;
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        match op {
            Op::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                size,
            } => enc.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size),
            Op::Clear {
                buffer,
                offset,
                size,
            } => enc.clear_buffer(&buffer, offset, size),
            first @ Op::Dispatch { .. } => {
                let mut pass = enc.begin_compute_pass(&Default::default());
                let mut next = Some(first);
                while let Some(Op::Dispatch {
                    program,
                    pipeline,
                    storage,
                    slot,
                    grid,
                }) = next
                {
                    let bg = rec.bind_group(&program, storage);
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bg, &[(slot.0 as u64 * stride) as u32]);
                    pass.dispatch_workgroups(grid.0, grid.1, 1);
                    next = ops.next_if(|o| matches!(o, Op::Dispatch { .. }));
                }
            }
        }
    }
    enc.finish()
}
