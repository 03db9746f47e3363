//! `cargo xtask bench superposition`: instance-steps per second of the fused GPU path, the
//! general GPU path, the CPU reference and the same training written with burn (the peer in
//! bench/burn-peer) on the same configs in one run, as ratios, appended to bench/RESULTS.md
//! with the adapter's name. Timings are never asserted. MECHLAB_BENCH_NO_BURN=1 leaves burn out.
//!
//! `cargo xtask bench smoke` runs every benchmark at its smoke size (each path briefly, tiny
//! shapes, no burn, nothing appended): seconds, so that the test command runs it and a
//! benchmark that breaks is seen at once.

use crate::tools::{output, root};
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::gpu::Gpu;
use mechlab_engine::models::toy::config::{Preset, SuperpositionConfig};
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::{GpuToyTrainer, ToyPath};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Each measurement grows its step count until it runs at least this long.
const MIN_TIME: Duration = Duration::from_millis(1500);

/// Whether the benchmarks run at their smoke sizes.
static SMOKE: AtomicBool = AtomicBool::new(false);

/// Whether the benchmarks run at their smoke sizes (`cargo xtask bench smoke`).
pub(crate) fn smoke() -> bool {
    SMOKE.load(Ordering::Relaxed)
}

/// How long a measurement runs at least: [`MIN_TIME`], or a moment at the smoke size.
pub(crate) fn min_time() -> Duration {
    if smoke() {
        Duration::from_millis(20)
    } else {
        MIN_TIME
    }
}

/// The burn peer, unless the smoke size or MECHLAB_BENCH_NO_BURN leaves it out (or it cannot
/// be built, which is said).
pub(crate) fn burn_peer() -> Option<std::path::PathBuf> {
    if smoke() || std::env::var("MECHLAB_BENCH_NO_BURN").is_ok() {
        return None;
    }
    match build_burn_peer() {
        Ok(b) => Some(b),
        Err(e) => {
            println!("burn peer unavailable: {e}");
            None
        }
    }
}

/// The benchmarks `cargo xtask bench smoke` runs, by name.
pub(crate) const SMOKE_BENCHMARKS: [&str; 4] = ["superposition", "sae", "dispatch", "lm"];

/// Runs the named benchmark (default: all).
pub fn run(name: Option<&str>) -> Result<(), String> {
    match name {
        Some("smoke") => {
            SMOKE.store(true, Ordering::Relaxed);
            for b in SMOKE_BENCHMARKS {
                println!("bench {b} (smoke size)");
                run(Some(b)).map_err(|e| format!("bench {b}: {e}"))?;
                println!("bench {b} (smoke size) ... ok");
            }
            Ok(())
        }
        None => superposition()
            .and_then(|_| crate::bench_sae::sae())
            .and_then(|_| crate::bench_dispatch::dispatch())
            .and_then(|_| crate::bench_lm::lm()),
        Some("superposition") => superposition(),
        Some("sae") => crate::bench_sae::sae(),
        Some("dispatch") => crate::bench_dispatch::dispatch(),
        Some("lm") => crate::bench_lm::lm(),
        Some("lm-profile") => crate::bench_lm::profile(),
        Some(other) => Err(format!(
            "unknown benchmark `{other}`; available: superposition, sae, dispatch, lm, lm-profile, smoke"
        )),
    }
}

struct Row {
    preset: &'static str,
    instances: usize,
    fused: Option<f64>,
    general: Option<f64>,
    cpu: f64,
    burn: Option<f64>,
    gpu_bytes: u64,
}

const BURN_MANIFEST: &str = "bench/burn-peer/Cargo.toml";

/// Builds the burn peer (once; burn takes over ten minutes to compile cold).
pub(crate) fn build_burn_peer() -> Result<std::path::PathBuf, String> {
    println!("building the burn peer (release; the first build takes over ten minutes)");
    crate::tools::run(&mut crate::tools::cmd(
        "cargo",
        &["build", "--release", "--manifest-path", BURN_MANIFEST],
    ))?;
    Ok(root().join("bench/burn-peer/target/release/mechlab-burn-peer"))
}

/// The same training written with burn on the same (first wgpu) adapter; instance-steps/s.
fn burn_rate(bin: &std::path::Path, cfg: &SuperpositionConfig) -> Result<f64, String> {
    let join = |v: Vec<f32>| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    let mut args = vec![
        cfg.n_features.to_string(),
        cfg.n_hidden.to_string(),
        cfg.batch_size.to_string(),
        cfg.importance_decay.to_string(),
        join(cfg.feature_probability.values()),
    ];
    if let Some(r) = &cfg.relative_importance {
        args.push(join(r.values()));
    }
    let v = run_burn_peer(bin, &args)?;
    v["instance_steps_per_second"]
        .as_f64()
        .ok_or_else(|| format!("burn peer output {v} lacks instance_steps_per_second"))
}

/// Runs the burn peer with `args` and parses the JSON line it prints last.
pub(crate) fn run_burn_peer<S: AsRef<std::ffi::OsStr>>(
    bin: &std::path::Path,
    args: &[S],
) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("running the burn peer: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the burn peer failed: {}",
            failure_reason(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("burn peer output {line:?}: {e}"))
}

/// The line of a failed run's stderr that says why: the innermost of a chain of causes (burn
/// prints them under `Caused by:`), else the panic's message, without lavapipe's noise.
fn failure_reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    let cause = lines
        .iter()
        .rposition(|l| *l == "Caused by:")
        .and_then(|i| lines.get(i + 1));
    let panic = lines.iter().position(|l| l.contains("panicked at"));
    match (cause, panic) {
        (Some(c), _) => c.to_string(),
        (None, Some(i)) => lines.get(i + 1).unwrap_or(&lines[i]).to_string(),
        (None, None) => lines.first().copied().unwrap_or("no message").to_string(),
    }
}

/// Times `n` steps at a time, doubling `n` until one measurement lasts MIN_TIME; returns
/// steps per second.
pub(crate) fn steps_per_second(
    mut step: impl FnMut(u32) -> Result<(), String>,
    start: u32,
) -> Result<f64, String> {
    step(start.min(10))?; // warm-up: pipeline compilation, first allocations
    let mut n = start;
    loop {
        let t = Instant::now();
        step(n)?;
        let dt = t.elapsed();
        if dt >= min_time() || n >= 1 << 20 {
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
    let burn_bin = burn_peer();
    let mut rows = Vec::new();
    // The smoke size: the first preset alone.
    let presets = if smoke() {
        &Preset::ALL[..1]
    } else {
        Preset::ALL
    };
    for &preset in presets {
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
        let burn = burn_bin.as_deref().and_then(|b| match burn_rate(b, &cfg) {
            Ok(r) => Some(r),
            Err(e) => {
                println!("{e}");
                None
            }
        });
        rows.push(Row {
            burn,
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
        "| preset | instances | fused inst-steps/s | general inst-steps/s | CPU inst-steps/s | burn inst-steps/s | fused/general | fused/CPU | fused/burn | 10k steps (fused) | GPU memory |"
    );
    let _ = writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
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
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} MiB |",
            r.preset,
            r.instances,
            fmt(r.fused),
            fmt(r.general),
            fmt(Some(r.cpu)),
            fmt(r.burn),
            ratio(r.fused, r.general),
            ratio(r.fused, Some(r.cpu)),
            ratio(r.fused, r.burn),
            ten_k,
            r.gpu_bytes as f64 / (1 << 20) as f64,
        );
    }
    let _ = writeln!(
        table,
        "\nburn: burn 0.22 (wgpu backend, autodiff, Adam), batched over instances, on the first wgpu adapter."
    );
    append_results(&table)
}

/// Prints a benchmark's table and appends it to bench/RESULTS.md (only prints it at the smoke
/// size).
pub(crate) fn append_results(table: &str) -> Result<(), String> {
    print!("{table}");
    if smoke() {
        return Ok(());
    }
    let path = root().join("bench/RESULTS.md");
    let mut existing =
        std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".into());
    existing.push_str(table);
    std::fs::create_dir_all(root().join("bench")).map_err(|e| e.to_string())?;
    std::fs::write(&path, existing).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("appended to {}", path.display());
    Ok(())
}
