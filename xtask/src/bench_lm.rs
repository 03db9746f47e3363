//! `cargo xtask bench lm`: the Transformer lab's training speed, GPU path against the CPU
//! reference in one run, at the small size (2 layers, d_model 128, n_ctx 128, a 2048-token BPE
//! on Shakespeare, batch 16), as tokens/s and effective FLOP/s, appended to bench/RESULTS.md
//! with the adapter. The burn peer for this lab is not written yet.

use mechlab_engine::data::text::Corpus;
use mechlab_engine::gpu::Gpu;
use mechlab_engine::models::transformer::gpu::GpuLmTrainer;
use mechlab_engine::models::transformer::lm::{CpuLmTrainer, LmPreset};
use std::fmt::Write;
use std::time::Instant;

/// Seconds a step takes over `steps` steps after one untimed step.
fn time_steps(steps: u32, mut step: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    step()?;
    let start = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    Ok(start.elapsed().as_secs_f64() / steps as f64)
}

/// Runs the benchmark and appends its table.
pub fn lm() -> Result<(), String> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
    let adapter = gpu.adapter_name();
    let corpus = Corpus::shakespeare().map_err(|e| e.to_string())?;
    let run = LmPreset::Small.runs().remove(0);
    println!("building the tokenizer and both trainers (BPE trains on the corpus twice)");
    let mut cpu = CpuLmTrainer::new(&run, &corpus).map_err(|e| e.to_string())?;
    let mut g = GpuLmTrainer::new(&gpu, &run, &corpus).map_err(|e| e.to_string())?;
    let cfg = cpu.config().clone();
    let tokens = (cfg.batch_size * cfg.model.n_ctx) as f64;
    let software = gpu.is_software();
    let steps = if software { 2 } else { 20 };
    println!("timing {steps} steps of each");
    let cpu_s = time_steps(steps, || {
        cpu.train_step().map(|_| ()).map_err(|e| e.to_string())
    })?;
    let gpu_s = time_steps(steps, || {
        pollster::block_on(g.train_step())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let flops = cfg.training_flops_per_token();
    let commit = crate::tools::output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let date = crate::tools::output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n## lm — {adapter} — commit {} — {}\n",
        commit.trim(),
        date.trim()
    );
    let _ = writeln!(
        table,
        "The `small` preset: {} layers, d_model {}, {} heads of {}, d_mlp {}, n_ctx {}, d_vocab {} \
         (BPE), {} parameters, batch {}; {:.2e} training FLOPs a token.\n",
        cfg.model.n_layers,
        cfg.model.d_model,
        cfg.model.n_heads,
        cfg.model.d_head,
        cfg.model.d_mlp,
        cfg.model.n_ctx,
        cfg.model.d_vocab,
        cfg.model.parameter_count(),
        cfg.batch_size,
        flops
    );
    let _ = writeln!(table, "| path | s/step | tokens/s | effective FLOP/s |");
    let _ = writeln!(table, "|---|---:|---:|---:|");
    for (name, s) in [("GPU", gpu_s), ("CPU reference (one core)", cpu_s)] {
        let _ = writeln!(
            table,
            "| {name} | {s:.3} | {:.3e} | {:.3e} |",
            tokens / s,
            tokens / s * flops
        );
    }
    let _ = writeln!(
        table,
        "\nGPU/CPU: {:.2}×. burn: not written yet for this lab.",
        cpu_s / gpu_s
    );
    crate::bench::append_results(&table)
}
