//! `cargo xtask bench dispatch`: the cost of recording and submitting a step of many tiny
//! dispatches, as a small transformer's step will have (200 by default), through the engine's
//! one dispatch path (`Recorder`/`Recording`) and through the path every kernel call took
//! before it, written out here as the peer in the same run: per call a new bind-group and
//! pipeline layout, the whole shader source formatted and used as the pipeline cache's key, a
//! fresh uniform buffer, a new bind group and its own compute pass. Both record the same
//! kernel (an 8 × 8 × 8 matmul from `shaders/matmul.wgsl`) over the same rotating buffers.
//! Appended to bench/RESULTS.md with the adapter's name; nothing is asserted.

use crate::tools::output;
use mechlab_engine::gpu::program::{layouts, read_only_bindings};
use mechlab_engine::gpu::{Gpu, Recorder};
use mechlab_engine::kernels::{matmul, Matmul};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wgpu::util::DeviceExt;

/// Dispatches in one step.
const DISPATCHES: usize = 200;
/// Distinct operand sets the step rotates through (a model's layers bind different weights).
const OPERAND_SETS: usize = 8;
/// Each measurement grows its step count until it lasts this long.
const MIN_TIME: Duration = Duration::from_millis(1500);
const SIZE: usize = 8;

const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");
const MATMUL_WGSL: &str = include_str!("../../shaders/matmul.wgsl");

struct Operands {
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
}

fn operands(gpu: &Gpu) -> Result<Vec<Operands>, String> {
    let e = |r: mechlab_engine::Result<wgpu::Buffer>| r.map_err(|e| e.to_string());
    (0..OPERAND_SETS)
        .map(|i| {
            let v: Vec<f32> = (0..SIZE * SIZE).map(|j| ((i + j) % 7) as f32).collect();
            Ok(Operands {
                a: e(gpu.storage_from("a", &v))?,
                b: e(gpu.storage_from("b", &v))?,
                c: e(gpu.storage_zeroed::<f32>("c", SIZE * SIZE))?,
            })
        })
        .collect()
}

fn product(o: &Operands) -> Matmul<'_> {
    Matmul {
        a: (&o.a).into(),
        b: (&o.b).into(),
        c: (&o.c).into(),
        m: SIZE,
        n: SIZE,
        k: SIZE,
        trans_a: false,
        trans_b: false,
        bias: None,
        centre: None,
        accumulate: false,
    }
}

/// What one timed run measured, per step.
struct Timing {
    /// Recording and submitting, on the CPU.
    record: Duration,
    /// Recording, submitting and waiting for the GPU to finish.
    total: Duration,
}

/// Runs `step` n times, doubling n until a run lasts MIN_TIME; per-step times.
fn time_steps(gpu: &Gpu, mut step: impl FnMut() -> Result<(), String>) -> Result<Timing, String> {
    step()?;
    wait(gpu)?;
    let mut n = 4u32;
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
        if total >= MIN_TIME || n >= 1 << 16 {
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
        pollster::block_on(matmul(&mut rec, &product(&ops[i % ops.len()])))
            .map_err(|e| e.to_string())?;
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
    let gpu_kernel = !gpu.is_software();
    let (entry, tile) = if gpu_kernel {
        ("matmul", 64u32)
    } else {
        ("matmul_wide", 128)
    };
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    // Which bindings are read-only is the shader's, the same on every call: found once here so
    // the peer pays only for what the old path did.
    let read_only = read_only_bindings("per call", MATMUL_WGSL, 3).expect("matmul's bindings");
    for i in 0..DISPATCHES {
        let o = &ops[i % ops.len()];
        let constants = "const TRANS_A: bool = false;\nconst TRANS_B: bool = false;\n\
             const CENTRE: bool = false;\nconst BIAS: bool = false;\nconst ACCUMULATE: bool = false;\n";
        let decls = "var<private> bias: array<f32, 1>;\nvar<private> centre: array<f32, 1>;\n";
        let source = format!("{constants}{decls}{COMMON_WGSL}{MATMUL_WGSL}");
        // The same layouts the engine's programs have, made anew on every call as before.
        let (bgl, pl) = layouts(&gpu.device, "per call", 64, 3, read_only);
        let key = (format!("matmul\n{source}"), entry.to_string());
        let pipeline = cache
            .entry(key)
            .or_insert_with(|| {
                let module = gpu
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("matmul (per call)"),
                        source: wgpu::ShaderSource::Wgsl(source.clone().into()),
                    });
                Arc::new(
                    gpu.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some("matmul (per call)"),
                            layout: Some(&pl),
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: Default::default(),
                            cache: None,
                        }),
                )
            })
            .clone();
        let tiles_n = (SIZE as u32).div_ceil(tile);
        let tiles = (SIZE as u32).div_ceil(tile) * tiles_n;
        let mut params = [0u32; 16];
        params[..5].copy_from_slice(&[SIZE as u32, SIZE as u32, SIZE as u32, tiles_n, tiles]);
        let align = gpu.limits.min_uniform_buffer_offset_alignment as usize;
        let mut bytes = vec![0u8; 64usize.div_ceil(align) * align];
        bytes[..64].copy_from_slice(bytemuck::cast_slice(&params));
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("matmul (per call)"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniform,
                offset: 0,
                size: wgpu::BufferSize::new(64),
            }),
        }];
        for (j, b) in [&o.a, &o.b, &o.c].into_iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: j as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("matmul (per call)"),
            layout: &bgl,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[0]);
        pass.dispatch_workgroups(tiles, 1, 1);
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
        "A step of {DISPATCHES} dispatches of an {SIZE} × {SIZE} × {SIZE} matmul over {OPERAND_SETS} rotating operand sets, recorded and submitted as one submit.\n"
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
