//! `cargo xtask bench lm`: the Transformer lab's training speed, GPU path against the CPU
//! reference in one run, at the small size (2 layers, d_model 128, n_ctx 128, a 2048-token BPE
//! on Shakespeare, batch 16), as tokens/s and effective FLOP/s, appended to bench/RESULTS.md
//! with the adapter, beside the same model written with burn (bench/burn-peer, `lm` mode: burn
//! tensor ops, autodiff and AdamW on the same first wgpu adapter).

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
    let steps = if software { 4 } else { 20 };
    println!("timing {steps} steps of each");
    let cpu_s = time_steps(steps, || {
        cpu.train_step().map(|_| ()).map_err(|e| e.to_string())
    })?;
    let gpu_s = time_steps(steps, || {
        pollster::block_on(g.train_step())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let (gpu_bytes, largest) = (gpu.pool().created_bytes(), gpu.pool().largest_bytes());
    let burn_bin = crate::bench::build_burn_peer()?;
    let shape = serde_json::json!({
        "n_layers": cfg.model.n_layers,
        "d_model": cfg.model.d_model,
        "n_heads": cfg.model.n_heads,
        "d_head": cfg.model.d_head,
        "d_mlp": cfg.model.d_mlp,
        "n_ctx": cfg.model.n_ctx,
        "d_vocab": cfg.model.d_vocab,
        "act_fn": cfg.model.act_fn.name(),
        "attn_only": cfg.model.attn_only,
        "batch": cfg.batch_size,
    })
    .to_string();
    println!("timing burn on the same adapter");
    let burn = crate::bench::run_burn_peer(&burn_bin, &["lm", shape.as_str()])?;
    let burn_rate = burn["tokens_per_second"]
        .as_f64()
        .ok_or_else(|| format!("burn peer output {burn} lacks tokens_per_second"))?;
    let burn_s = tokens / burn_rate;
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
    for (name, s) in [
        ("mechlab GPU", gpu_s),
        ("burn (wgpu, autodiff, AdamW)", burn_s),
        ("mechlab CPU reference (one core)", cpu_s),
    ] {
        let _ = writeln!(
            table,
            "| {name} | {s:.3} | {:.3e} | {:.3e} |",
            tokens / s,
            tokens / s * flops
        );
    }
    let _ = writeln!(
        table,
        "\nmechlab GPU / burn: {:.2}×. mechlab GPU / CPU reference: {:.2}×. burn trains on random \
         tokens made on the device; mechlab on Shakespeare's windows (the same work a step).",
        burn_s / gpu_s,
        cpu_s / gpu_s
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let _ = writeln!(
        table,
        "mechlab's GPU memory: {:.1} MiB in buffers (parameters, gradients, Adam's moments, \
         activations, a batch of tokens); the largest binding {:.1} MiB (target ≤ 256 MiB).",
        mib(gpu_bytes),
        mib(largest)
    );
    println!(
        "mechlab GPU {:.0} tokens/s, burn {:.0}, CPU reference {:.0}: {:.2}× burn",
        tokens / gpu_s,
        burn_rate,
        tokens / cpu_s,
        burn_s / gpu_s
    );
    crate::bench::append_results(&table)
}

/// `cargo xtask bench lm-profile`: one GPU training step of the `small` preset with every
/// kernel submitted and timed on its own, printed slowest first (not appended to the results:
/// waiting after each kernel changes the total).
pub fn profile() -> Result<(), String> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
    let corpus = Corpus::shakespeare().map_err(|e| e.to_string())?;
    let run = LmPreset::Small.runs().remove(0);
    let mut g = GpuLmTrainer::new(&gpu, &run, &corpus).map_err(|e| e.to_string())?;
    let step = |g: &mut GpuLmTrainer| {
        pollster::block_on(g.train_step())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let plain = time_steps(2, || step(&mut g))?;
    g.profile(true);
    step(&mut g)?;
    let mut rows: Vec<_> = g
        .profiled()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let total: f64 = rows.iter().map(|r| r.1 .1).sum();
    println!(
        "on {}: {plain:.3} s a step; profiled, {total:.3} s in kernels",
        gpu.adapter_name()
    );
    for (k, (n, s)) in rows {
        println!(
            "{:>8.1} ms {:>5.1}% {n:>4}× {k}",
            s * 1e3,
            100.0 * s / total
        );
    }
    Ok(())
}
