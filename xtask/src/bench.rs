//! `cargo xtask bench superposition`: instance-steps per second of the fused GPU path, the
//! general GPU path and the CPU reference on the same configs in one run, as ratios, appended
//! to bench/RESULTS.md with the adapter's name. Timings are never asserted.

use crate::tools::{output, root};
use mechlab_engine::experiment::superposition::{Preset, SuperpositionConfig};
use mechlab_engine::gpu::Gpu;
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::{GpuToyTrainer, ToyPath};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Each measurement grows its step count until it runs at least this long.
const MIN_TIME: Duration = Duration::from_millis(1500);

/// Runs the named benchmark (default: all).
pub fn run(name: Option<&str>) -> Result<(), String> {
    match name {
        None | Some("superposition") => superposition(),
        Some(other) => Err(format!(
            "unknown benchmark `{other}`; available: superposition"
        )),
    }
}

struct Row {
    preset: &'static str,
    instances: usize,
    fused: Option<f64>,
    general: Option<f64>,
    cpu: f64,
    gpu_bytes: u64,
}

/// Times `n` steps at a time, doubling `n` until one measurement lasts MIN_TIME; returns
/// steps per second.
fn steps_per_second(
    mut step: impl FnMut(u32) -> Result<(), String>,
    start: u32,
) -> Result<f64, String> {
    step(start.min(10))?; // warm-up: pipeline compilation, first allocations
    let mut n = start;
    loop {
        let t = Instant::now();
        step(n)?;
        let dt = t.elapsed();
        if dt >= MIN_TIME || n >= 1 << 20 {
            return Ok(n as f64 / dt.as_secs_f64());
        }
        n *= 2;
    }
}

fn gpu_rate(gpu: &Gpu, cfg: &SuperpositionConfig, path: ToyPath) -> Result<(f64, u64), String> {
    let mut t =
        pollster::block_on(GpuToyTrainer::new(gpu, cfg, Some(path))).map_err(|e| e.to_string())?;
    let bytes = t.gpu_bytes();
    let rate = steps_per_second(
        |n| {
            pollster::block_on(t.run_steps(n))
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
        20,
    )?;
    Ok((rate * cfg.n_instances() as f64, bytes))
}

fn superposition() -> Result<(), String> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
    let adapter = gpu.adapter_name();
    println!("adapter: {adapter}");
    let mut rows = Vec::new();
    for preset in Preset::ALL {
        let cfg = preset.config();
        println!("{} ({} instances) ...", preset.name(), cfg.n_instances());
        let fused = gpu_rate(&gpu, &cfg, ToyPath::Fused).ok();
        let general = gpu_rate(&gpu, &cfg, ToyPath::General)?;
        let mut cpu_t = CpuToyTrainer::new(&cfg).map_err(|e| e.to_string())?;
        let cpu = steps_per_second(
            |n| {
                cpu_t.run_steps(n);
                Ok(())
            },
            1,
        )? * cfg.n_instances() as f64;
        rows.push(Row {
            preset: preset.name(),
            instances: cfg.n_instances(),
            fused: fused.map(|f| f.0),
            general: Some(general.0),
            cpu,
            gpu_bytes: fused.map_or(general.1, |f| f.1),
        });
    }

    let mut table = String::new();
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let _ = writeln!(
        table,
        "\n## superposition — {} — commit {} — {}\n",
        adapter,
        commit.trim(),
        date.trim()
    );
    let _ = writeln!(
        table,
        "| preset | instances | fused inst-steps/s | general inst-steps/s | CPU inst-steps/s | fused/general | fused/CPU | 10k steps (fused) | GPU memory |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3e}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}×", a / b),
        _ => "—".into(),
    };
    for r in &rows {
        let ten_k = r.fused.map_or("—".into(), |f| {
            format!("{:.1} s", 10_000.0 * r.instances as f64 / f)
        });
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} MiB |",
            r.preset,
            r.instances,
            fmt(r.fused),
            fmt(r.general),
            fmt(Some(r.cpu)),
            ratio(r.fused, r.general),
            ratio(r.fused, Some(r.cpu)),
            ten_k,
            r.gpu_bytes as f64 / (1 << 20) as f64,
        );
    }
    let _ = writeln!(
        table,
        "\nThe burn peer (burn 0.22 on wgpu) is not measured by this version of the benchmark."
    );
    print!("{table}");
    let path = root().join("bench/RESULTS.md");
    let mut existing =
        std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".into());
    existing.push_str(&table);
    std::fs::create_dir_all(root().join("bench")).map_err(|e| e.to_string())?;
    std::fs::write(&path, existing).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("appended to {}", path.display());
    Ok(())
}
