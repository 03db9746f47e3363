//! `cargo xtask bench dispatch`: the cost of recording and submitting a step of many tiny
//! dispatches, as a small transformer's step will have (200 by default), through the engine's
//! one dispatch path (`Recorder`/`Recording`) and through the path every kernel call took
//! before it, written out here as the peer in the same run: per call a new bind-group and
//! pipeline layout, the whole shader source formatted and used as the pipeline cache's key, a
//! fresh uniform buffer, a new bind group and its own compute pass. Both record the same
//! kernel (an elementwise sum of 64 values, `shaders/add.wgsl`, whose uniform block and
//! bindings are stable, so the peer does not have to track a kernel's layout as the engine's
//! kernels evolve: the per-call peer of an 8 × 8 × 8 matmul broke unseen when the engine began
//! declaring the row kernels' lanes per device, and the matmul's layout grew since) over the
//! same rotating buffers. The peer declares the row kernels' lane constants as
//! the engine does for this device. Appended to bench/RESULTS.md with the adapter's name;
//! nothing is asserted. At the smoke size (`cargo xtask bench smoke`) each path runs briefly.

use crate::tools::output;
use mechlab_engine::gpu::program::{layouts, read_only_bindings};
use mechlab_engine::gpu::{Gpu, Recorder, Tensor};
use mechlab_engine::kernels::add::add;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wgpu::util::DeviceExt;

/// Dispatches in one step.
const DISPATCHES: usize = 200;
/// Distinct operand sets the step rotates through (a model's layers bind different weights).
const OPERAND_SETS: usize = 8;
/// Values each dispatch adds.
const SIZE: usize = 64;
/// The engine's uniform block (every kernel's, whatever prefix it reads).
const UNIFORM_BYTES: u64 = 128;

const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");
const ADD_WGSL: &str = include_str!("../../shaders/add.wgsl");

struct Operands {
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
}

fn operands(gpu: &Gpu) -> Result<Vec<Operands>, String> {
    let e = |r: mechlab_engine::Result<wgpu::Buffer>| r.map_err(|e| e.to_string());
    (0..OPERAND_SETS)
        .map(|i| {
            let v: Vec<f32> = (0..SIZE).map(|j| ((i + j) % 7) as f32).collect();
            Ok(Operands {
                a: e(gpu.storage_from("a", &v))?,
                b: e(gpu.storage_from("b", &v))?,
                c: e(gpu.storage_zeroed::<f32>("c", SIZE))?,
            })
        })
        .collect()
}

/// What one timed run measured, per step.
struct Timing {
    /// Recording and submitting, on the CPU.
    record: Duration,
    /// Recording, submitting and waiting for the GPU to finish.
    total: Duration,
}

/// Runs `step` n times, doubling n until a run lasts [`crate::bench::min_time`]; per-step
/// times.
fn time_steps(gpu: &Gpu, mut step: impl FnMut() -> Result<(), String>) -> Result<Timing, String> {
    step()?;
    wait(gpu)?;
    let mut n = 4u32;
    let min_time = crate::bench::min_time();
    loop {
        let mut record = Duration::ZERO;
        let t = Instant::now();
        for _ in 0..n {
            let r = Instant::now();
            step()?;
            record += r.elapsed();
            wait(gpu)?;
        }
        let total = t.elapsed();
        if total >= min_time || n >= 1 << 16 {
            return Ok(Timing {
                record: record / n,
                total: total / n,
            });
        }
        n *= 2;
    }
}

fn wait(gpu: &Gpu) -> Result<(), String> {
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The engine's path: one recording per step, programs and bind groups cached.
fn recorder_step(recorder: &mut Recorder, ops: &[Operands]) -> Result<(), String> {
    let mut rec = recorder.begin();
    for i in 0..DISPATCHES {
        let o = &ops[i % ops.len()];
        let [a, b, c] = [("a", &o.a), ("b", &o.b), ("c", &o.c)]
            .map(|(name, buf)| Tensor::of(name, buf.into(), &[SIZE]).map_err(|e| e.to_string()));
        pollster::block_on(add(&mut rec, a?, b?, c?)).map_err(|e| e.to_string())?;
    }
    rec.submit();
    Ok(())
}

type PipelineKey = (String, String);

/// The path before the recorder, as each kernel call took it (see the module doc).
fn per_call_step(
    gpu: &Gpu,
    cache: &mut HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>,
    ops: &[Operands],
) {
    let entry = "add";
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    // Which bindings are read-only is the shader's, the same on every call: found once here so
    // the peer pays only for what the old path did.
    let read_only = read_only_bindings("per call", ADD_WGSL, 3).expect("add's bindings");
    let lanes = gpu.row_lanes();
    for i in 0..DISPATCHES {
        let o = &ops[i % ops.len()];
        // The constants the engine declares for every kernel on this device.
        let constants = format!(
            "const SEG: u32 = {lanes}u;\nconst SEG_ROWS: u32 = {}u;\n",
            256 / lanes
        );
        let source = format!("{constants}{COMMON_WGSL}{ADD_WGSL}");
        // The same layouts the engine's programs have, made anew on every call as before.
        let (bgl, pl) = layouts(&gpu.device, "per call", UNIFORM_BYTES, 3, read_only);
        let key = (format!("add\n{source}"), entry.to_string());
        let pipeline = cache
            .entry(key)
            .or_insert_with(|| {
                let module = gpu
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("add (per call)"),
                        source: wgpu::ShaderSource::Wgsl(source.clone().into()),
                    });
                Arc::new(
                    gpu.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some("add (per call)"),
                            layout: Some(&pl),
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: Default::default(),
                            cache: None,
                        }),
                )
            })
            .clone();
        let mut params = [0u32; UNIFORM_BYTES as usize / 4];
        params[0] = SIZE as u32;
        let align = gpu.limits.min_uniform_buffer_offset_alignment as usize;
        let mut bytes = vec![0u8; (UNIFORM_BYTES as usize).div_ceil(align) * align];
        bytes[..UNIFORM_BYTES as usize].copy_from_slice(bytemuck::cast_slice(&params));
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("add (per call)"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset: 0,
                size: wgpu::BufferSize::new(UNIFORM_BYTES),
            }),
        }];
        for (j, b) in [&o.a, &o.b, &o.c].into_iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: j as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("add (per call)"),
            layout: &bgl,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[0]);
        pass.dispatch_workgroups((SIZE as u32).div_ceil(256), 1, 1);
    }
    gpu.queue.submit([encoder.finish()]);
}

/// Runs the benchmark and appends its table to bench/RESULTS.md.
pub fn dispatch() -> Result<(), String> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
    let adapter = gpu.adapter_name();
    println!("adapter: {adapter}");
    let ops = operands(&gpu)?;
    let mut recorder = Recorder::new(&gpu);
    let new = time_steps(&gpu, || recorder_step(&mut recorder, &ops))?;
    let mut cache = HashMap::new();
    let old = time_steps(&gpu, || {
        per_call_step(&gpu, &mut cache, &ops);
        Ok(())
    })?;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / DISPATCHES as f64;
    let mut table = String::new();
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let _ = writeln!(
        table,
        "\n## dispatch — {adapter} — commit {} — {}\n",
        commit.trim(),
        date.trim()
    );
    let _ = writeln!(
        table,
        "A step of {DISPATCHES} dispatches of a {SIZE}-value elementwise sum over {OPERAND_SETS} rotating operand sets, recorded and submitted as one submit.\n"
    );
    let _ = writeln!(
        table,
        "| path | record + submit per dispatch | with the GPU's work, per dispatch | record + submit per step |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|");
    for (name, t) in [
        ("per call (before the recorder)", &old),
        ("recorder (bind groups and programs cached)", &new),
    ] {
        let _ = writeln!(
            table,
            "| {name} | {:.2} µs | {:.2} µs | {:.3} ms |",
            per(t.record),
            per(t.total),
            t.record.as_secs_f64() * 1e3
        );
    }
    let _ = writeln!(
        table,
        "\nRecording and submitting costs {:.1}× less per dispatch through the recorder ({:.1}× with the GPU's work).",
        old.record.as_secs_f64() / new.record.as_secs_f64(),
        old.total.as_secs_f64() / new.total.as_secs_f64()
    );
    let _ = writeln!(
        table,
        "Bind groups the recorder created over the whole run: {} (one per operand set).",
        recorder.bind_groups_created()
    );
    crate::bench::append_results(&table)
}
