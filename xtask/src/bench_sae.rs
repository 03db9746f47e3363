//! `cargo xtask bench sae`: tokens per second of the SAE's TopK decoder (forward and backward)
//! through the sparse kernels and through dense matmuls, of a whole GPU TopK training step, of
//! the same TopK SAE written with burn (the peer in bench/burn-peer, `sae-topk` mode), and of
//! the GPU training step and the CPU reference for every architecture, at a small size (seconds
//! on lavapipe) and at d_in 768, d_sae 32768, k 32, batch 4096 (on hardware GPUs, or with
//! MECHLAB_BENCH_LARGE=1), with the GPU memory the trainer holds; on a software adapter the
//! large size's trainers are built for their memory and its decoders timed on a few rows.
//! Appended to bench/RESULTS.md with the adapter's name; nothing is asserted.
//! MECHLAB_BENCH_NO_BURN=1 leaves burn out.

use crate::tools::output;
use mechlab_engine::data::ReplaySource;
use mechlab_engine::gpu::{Gpu, Recorder, Tensor, View};
use mechlab_engine::models::sae::config::{
    Architecture, SaeConfig, SaePreset, SourceConfig, ARCHITECTURE_NAMES,
};
use mechlab_engine::models::sae::gpu::GpuSaeTrainer;
use mechlab_engine::models::sae::kernels as k;
use mechlab_engine::models::sae::train::CpuSaeTrainer;
use mechlab_engine::rng::{rng_normal, rng_unit};
use std::fmt::Write as _;

struct Size {
    name: &'static str,
    d_in: usize,
    d_sae: usize,
    k: usize,
    batch: usize,
}

const SMALL: Size = Size {
    name: "small",
    d_in: 64,
    d_sae: 4096,
    k: 16,
    batch: 512,
};
/// The smoke size (`cargo xtask bench smoke`): every path once, in moments.
const SMOKE: Size = Size {
    name: "smoke",
    d_in: 16,
    d_sae: 64,
    k: 4,
    batch: 32,
};
const LARGE: Size = Size {
    name: "large",
    d_in: 768,
    d_sae: 32768,
    k: 32,
    batch: 4096,
};

/// Rows the decoders are timed on at the large size on a software adapter, where the dense
/// decoder's three products over a whole batch would take minutes.
const SOFTWARE_DECODER_ROWS: usize = 256;

/// Runs `f(n)` (n repetitions, waited for), doubling n until a run is long enough; per second.
fn rate(f: impl FnMut(u32) -> Result<(), String>) -> Result<f64, String> {
    crate::bench::steps_per_second(f, 1)
}

fn wait(gpu: &Gpu) -> Result<(), String> {
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decoder forward + backward per second over `rows` rows: (sparse, dense).
fn decoder_rates(gpu: &Gpu, s: &Size, rows: usize) -> Result<(f64, f64), String> {
    let e = |r: mechlab_engine::Result<()>| r.map_err(|e| e.to_string());
    let (d, n, kk) = (s.d_in, s.d_sae, s.k);
    let f32s = |what: &str, v: Vec<f32>| gpu.storage_from(what, &v).map_err(|e| e.to_string());
    let w_dec = f32s(
        "w_dec",
        (0..n * d)
            .map(|i| 0.03 * rng_normal(1, i as u32, 0))
            .collect(),
    )?;
    let b_dec = f32s("b_dec", vec![0.1; d])?;
    let g = f32s(
        "g",
        (0..rows * d).map(|i| rng_normal(2, i as u32, 0)).collect(),
    )?;
    let idx_host: Vec<u32> = (0..rows * kk)
        .map(|i| (mechlab_engine::rng::rng_u32(3, i as u32, 0, 0) as usize % n) as u32)
        .collect();
    let val_host: Vec<f32> = (0..rows * kk)
        .map(|i| rng_unit(4, i as u32, 0, 0))
        .collect();
    let mut dense = vec![0f32; rows * n];
    for (e_, (&j, &v)) in idx_host.iter().zip(&val_host).enumerate() {
        dense[(e_ / kk) * n + j as usize] = v;
    }
    let idx = gpu
        .storage_from("idx", &idx_host)
        .map_err(|e| e.to_string())?;
    let val = f32s("val", val_host)?;
    let f = f32s("f", dense)?;
    let z = |what: &str, c: usize| {
        gpu.storage_zeroed::<f32>(what, c)
            .map_err(|e| e.to_string())
    };
    let (x_hat, g_val, gf, gw) = (
        z("x_hat", rows * d)?,
        z("g_val", rows * kk)?,
        z("gf", rows * n)?,
        z("gw", n * d)?,
    );
    let scratch = gpu
        .storage_zeroed::<u8>(
            "scratch",
            k::weight_grad_sparse_scratch_bytes(rows, kk, n) as usize,
        )
        .map_err(|e| e.to_string())?;
    let t = |buf, name, dims: &[usize]| {
        Tensor::of(name, View::from(buf), dims).map_err(|e| e.to_string())
    };
    let code = k::Code {
        idx: t(&idx, "idx", &[rows, kk])?,
        val: t(&val, "val", &[rows, kk])?,
        rows: None,
    };
    let (w_dec, b_dec) = (t(&w_dec, "w_dec", &[n, d])?, t(&b_dec, "b_dec", &[d])?);
    let (g, gw) = (t(&g, "g", &[rows, d])?, t(&gw, "gw", &[n, d])?);
    let (f, gf) = (t(&f, "f", &[rows, n])?, t(&gf, "gf", &[rows, n])?);
    let x_hat = t(&x_hat, "x_hat", &[rows, d])?;
    let g_val = t(&g_val, "g_val", &[rows, kk])?;
    let scratch = Tensor::all("scratch", View::from(&scratch)).map_err(|e| e.to_string())?;
    let sparse = rate(|reps| {
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        for _ in 0..reps {
            let decode = k::DecodeSparse {
                code,
                w_dec,
                b_dec,
                x_hat,
            };
            e(pollster::block_on(k::decode_sparse(&mut rec, &decode)))?;
            let latent = k::LatentGradSparse {
                code,
                g,
                w_dec,
                g_val,
            };
            e(pollster::block_on(k::latent_grad_sparse(&mut rec, &latent)))?;
            let weight = k::WeightGradSparse {
                code,
                g,
                w_dec_grad: gw,
                encoder: None,
                scratch,
            };
            e(pollster::block_on(k::weight_grad_sparse(&mut rec, &weight)))?;
        }
        rec.submit();
        wait(gpu)
    })?;
    let dense = rate(|reps| {
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        for _ in 0..reps {
            let decode = k::DecodeDense {
                f,
                w_dec,
                b_dec,
                x_hat,
            };
            e(pollster::block_on(k::decode_dense(&mut rec, &decode)))?;
            let latent = k::LatentGradDense { g, w_dec, gf };
            e(pollster::block_on(k::latent_grad_dense(&mut rec, &latent)))?;
            let weight = k::WeightGradDense {
                coef: f,
                rows: g,
                grad: gw,
            };
            e(pollster::block_on(k::weight_grad_dense(&mut rec, &weight)))?;
        }
        rec.submit();
        wait(gpu)
    })?;
    Ok((sparse * rows as f64, dense * rows as f64))
}

/// The benchmark's config at size `s` for the architecture called `name` (its defaults, with
/// the size's k for the TopK family).
fn config(s: &Size, name: &str) -> Result<SaeConfig, String> {
    let mut cfg = SaePreset::GroundTruth.config();
    if let SourceConfig::GroundTruth { d, n_features, .. } = &mut cfg.source {
        *d = s.d_in as u32;
        *n_features = (4 * s.d_in) as u32;
    }
    cfg.architecture = Architecture::by_name(name).map_err(|e| e.to_string())?;
    if let Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } = &mut cfg.architecture
    {
        *k = s.k as u32;
    }
    cfg.d_sae = s.d_sae as u32;
    cfg.batch_size = s.batch as u32;
    cfg.steps = 1 << 30;
    Ok(cfg)
}

/// Pre-generated activations, so the timings are the SAE's and not the generator's.
fn replay(cfg: &SaeConfig, batches: usize) -> Result<Box<ReplaySource>, String> {
    let mut src = mechlab_engine::data::build(&cfg.source, 0).map_err(|e| e.to_string())?;
    let d = cfg.d_in() as usize;
    let mut data = vec![0f32; batches * cfg.batch_size as usize * d];
    src.next_batch(&mut data);
    Ok(Box::new(
        ReplaySource::new(data, d).map_err(|e| e.to_string())?,
    ))
}

/// The ground-truth source's batches at size `s`, rows/s: drawn on the host (`next_batch`:
/// the CPU reference's way, and what the GPU trainer paid every step before its sources drew
/// on the device) and on the device (`record_batch`).
fn source_rates(gpu: &Gpu, s: &Size) -> Result<(f64, f64), String> {
    let cfg = config(s, "topk")?;
    let build = || mechlab_engine::data::build(&cfg.source, 0).map_err(|e| e.to_string());
    let (mut host, mut device) = (build()?, build()?);
    let mut x = vec![0f32; s.batch * s.d_in];
    let on_host = rate(|n| {
        (0..n).for_each(|_| host.next_batch(&mut x));
        Ok(())
    })?;
    let out = gpu
        .storage_zeroed::<f32>("batch", s.batch * s.d_in)
        .map_err(|e| e.to_string())?;
    let on_device = rate(|n| {
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        for _ in 0..n {
            pollster::block_on(device.record_batch(&mut rec, (&out).into(), s.batch))
                .map_err(|e| e.to_string())?;
        }
        rec.submit();
        wait(gpu)
    })?;
    Ok((on_host * s.batch as f64, on_device * s.batch as f64))
}

struct Row {
    size: String,
    sparse: f64,
    dense: f64,
    step: f64,
    /// burn's tokens/s and whether its `topk` was used (see [`burn_rate`]).
    burn: Option<(f64, bool)>,
    cpu: Option<f64>,
    bytes: u64,
    largest: u64,
}

/// One architecture's training step at one size: GPU (None when the trainer refuses or fails)
/// and CPU (small size only) tokens/s.
struct ArchRow {
    arch: &'static str,
    size: &'static str,
    gpu: Option<f64>,
    cpu: Option<f64>,
}

/// A GPU trainer on `batches` replayed batches.
fn gpu_trainer(gpu: &Gpu, cfg: &SaeConfig, batches: usize) -> Result<GpuSaeTrainer, String> {
    pollster::block_on(GpuSaeTrainer::with_source(gpu, cfg, replay(cfg, batches)?))
        .map_err(|e| e.to_string())
}

/// A whole GPU training step, tokens/s, with the trainer's memory (total, largest buffer).
fn gpu_step_rate(gpu: &Gpu, s: &Size, cfg: &SaeConfig) -> Result<(f64, u64, u64), String> {
    let mut t = gpu_trainer(gpu, cfg, 4)?;
    let (bytes, largest) = (t.device_bytes(), t.largest_buffer());
    let step = rate(|n| {
        pollster::block_on(t.run_steps(n))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    Ok((step * s.batch as f64, bytes, largest))
}

/// Builds a trainer (buffers allocated and filled, nothing trained) and returns its memory
/// (total, largest buffer), or why it was refused: whether the large size fits the limits
/// without a step that takes minutes on a software adapter.
fn large_memory(gpu: &Gpu, cfg: &SaeConfig) -> Result<(u64, u64), String> {
    let t = gpu_trainer(gpu, cfg, 1)?;
    Ok((t.device_bytes(), t.largest_buffer()))
}

/// The CPU reference's training step, tokens/s.
fn cpu_step_rate(s: &Size, cfg: &SaeConfig) -> Result<f64, String> {
    let mut c = CpuSaeTrainer::with_source(cfg, replay(cfg, 4)?).map_err(|e| e.to_string())?;
    Ok(rate(|n| c.run_steps(n).map(|_| ()).map_err(|e| e.to_string()))? * s.batch as f64)
}

/// The TopK SAE written with burn (bench/burn-peer `sae-topk`) on the first wgpu adapter:
/// tokens/s, and whether burn's `topk` selected the latents (else a sort did, `topk` being wrong
/// at that size).
fn burn_rate(bin: &std::path::Path, s: &Size) -> Result<(f64, bool), String> {
    let mut args = vec!["sae-topk".to_string()];
    args.extend([s.d_in, s.d_sae, s.k, s.batch].map(|v| v.to_string()));
    let v = crate::bench::run_burn_peer(bin, &args)?;
    let rate = v["tokens_per_second"]
        .as_f64()
        .ok_or_else(|| format!("burn peer output {v} lacks tokens_per_second"))?;
    Ok((rate, v["selection"] == "topk"))
}

/// Runs the SAE benchmark.
pub fn sae() -> Result<(), String> {
    let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
    let adapter = gpu.adapter_name();
    println!("adapter: {adapter}");
    let large = !gpu.is_software() || std::env::var("MECHLAB_BENCH_LARGE").is_ok();
    let burn_bin = crate::bench::burn_peer();
    let sizes = if crate::bench::smoke() {
        vec![&SMOKE]
    } else {
        vec![&SMALL, &LARGE]
    };
    let mut rows = Vec::new();
    let mut arch_rows = Vec::new();
    let mut memory_rows = Vec::new();
    let mut large_decoder = None;
    let mut source_rows = Vec::new();
    for s in sizes {
        println!("  {} ground-truth batches, host and device ...", s.name);
        source_rows.push((s, source_rates(&gpu, s)?));
        if s.name == "large" && !large {
            println!(
                "large: training steps not timed on a software adapter (MECHLAB_BENCH_LARGE=1 \
                 times them); building each architecture's trainer to measure its memory, and \
                 timing the decoders on {SOFTWARE_DECODER_ROWS} rows"
            );
            for name in ARCHITECTURE_NAMES {
                memory_rows.push((name, large_memory(&gpu, &config(s, name)?)));
            }
            large_decoder = Some(decoder_rates(&gpu, s, SOFTWARE_DECODER_ROWS)?);
            continue;
        }
        println!(
            "{} (d_in {}, d_sae {}, k {}, batch {}) ...",
            s.name, s.d_in, s.d_sae, s.k, s.batch
        );
        // Dense codes of a whole large batch exceed one binding; time both paths on as many
        // rows as one binding holds and report per token.
        let fit = (((256u64 << 20).min(gpu.limits.max_storage_buffer_binding_size))
            / (4 * s.d_sae as u64)) as usize;
        let dec_rows = s.batch.min(fit);
        let (sparse, dense) = decoder_rates(&gpu, s, dec_rows)?;
        let (step, bytes, largest) = gpu_step_rate(&gpu, s, &config(s, "topk")?)?;
        let burn = burn_bin.as_deref().and_then(|b| match burn_rate(b, s) {
            Ok(r) => Some(r),
            Err(e) => {
                println!("{e}");
                None
            }
        });
        // Every architecture's whole training step; the CPU reference at the small size only.
        for name in ARCHITECTURE_NAMES {
            println!("  {name} training step ...");
            let cfg = config(s, name)?;
            let gpu_rate = if name == "topk" {
                Some(step)
            } else {
                match gpu_step_rate(&gpu, s, &cfg) {
                    Ok(r) => Some(r.0),
                    Err(e) => {
                        println!("  {name} on the GPU: {e}");
                        None
                    }
                }
            };
            let cpu = if s.name != "large" {
                Some(cpu_step_rate(s, &cfg)?)
            } else {
                None
            };
            arch_rows.push(ArchRow {
                arch: name,
                size: s.name,
                gpu: gpu_rate,
                cpu,
            });
        }
        let cpu = arch_rows
            .iter()
            .find(|r| r.arch == "topk" && r.size == s.name)
            .and_then(|r| r.cpu);
        rows.push(Row {
            size: format!(
                "{} (d_in {}, d_sae {}, k {}, batch {})",
                s.name, s.d_in, s.d_sae, s.k, s.batch
            ),
            sparse,
            dense,
            step,
            burn,
            cpu,
            bytes,
            largest,
        });
    }
    let fmt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3e}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}×", a / b),
        _ => "—".into(),
    };
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let mut table = String::new();
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let _ = writeln!(
        table,
        "\n## sae — {} — commit {} — {}\n",
        adapter,
        commit.trim(),
        date.trim()
    );
    let _ = writeln!(table, "TopK:\n");
    let _ = writeln!(table, "| size | sparse decoder fwd+bwd tokens/s | dense decoder fwd+bwd tokens/s | sparse/dense | GPU training step tokens/s | CPU reference tokens/s | burn tokens/s | GPU/CPU | GPU/burn | GPU memory | largest buffer |");
    let _ = writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {:.3e} | {:.3e} | {:.1}× | {:.3e} | {} | {} | {} | {} | {} | {} |",
            r.size,
            r.sparse,
            r.dense,
            r.sparse / r.dense,
            r.step,
            fmt(r.cpu),
            fmt(r.burn.map(|b| b.0)),
            ratio(Some(r.step), r.cpu),
            ratio(Some(r.step), r.burn.map(|b| b.0)),
            mib(r.bytes),
            mib(r.largest),
        );
    }
    let _ = writeln!(table, "\nEvery architecture's training step (its default hyper-parameters; k as above for TopK and BatchTopK):\n");
    let _ = writeln!(
        table,
        "| architecture | size | GPU training step tokens/s | CPU reference tokens/s | GPU/CPU |"
    );
    let _ = writeln!(table, "|---|---|---:|---:|---:|");
    for r in &arch_rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} |",
            r.arch,
            r.size,
            fmt(r.gpu),
            fmt(r.cpu),
            ratio(r.gpu, r.cpu),
        );
    }
    if !memory_rows.is_empty() {
        let _ = writeln!(
            table,
            "\nThe large size (d_in {}, d_sae {}, k {}, batch {}), trainers built but not timed on \
             this software adapter, against the limits {} MiB per buffer and {} MiB per binding:\n",
            LARGE.d_in,
            LARGE.d_sae,
            LARGE.k,
            LARGE.batch,
            gpu.limits.max_buffer_size >> 20,
            gpu.limits.max_storage_buffer_binding_size >> 20,
        );
        let _ = writeln!(table, "| architecture | GPU memory | largest buffer |");
        let _ = writeln!(table, "|---|---:|---:|");
        for (arch, m) in &memory_rows {
            let _ = match m {
                Ok((bytes, largest)) => {
                    writeln!(table, "| {arch} | {} | {} |", mib(*bytes), mib(*largest))
                }
                Err(e) => writeln!(table, "| {arch} | refused: {e} | |"),
            };
        }
    }
    if let Some((sparse, dense)) = large_decoder {
        let _ = writeln!(
            table,
            "\nThe TopK decoder's forward + backward at the large size's d_sae {} and k {} (d_in \
             {}), on {SOFTWARE_DECODER_ROWS} rows: sparse {sparse:.3e} tokens/s, dense \
             {dense:.3e} tokens/s, sparse/dense {:.1}×.",
            LARGE.d_sae,
            LARGE.k,
            LARGE.d_in,
            sparse / dense
        );
    }
    let _ = writeln!(
        table,
        "\nThe ground-truth source's batches (n_features 4 × d_in, the preset's sparsity), drawn \
         on the host (`next_batch`) and on the device (`record_batch`, what the GPU trainer \
         uses):\n"
    );
    let _ = writeln!(
        table,
        "| size | host rows/s | device rows/s | device/host |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|");
    for (s, (host, device)) in &source_rows {
        let _ = writeln!(
            table,
            "| {} (d_in {}, batch {}) | {host:.3e} | {device:.3e} | {:.1}× |",
            s.name,
            s.d_in,
            s.batch,
            device / host
        );
    }
    let sorted: Vec<&str> = rows
        .iter()
        .filter(|r| r.burn.is_some_and(|b| !b.1))
        .map(|r| r.size.split(' ').next().unwrap_or_default())
        .collect();
    let _ = writeln!(
        table,
        "\nActivations are replayed from memory so the generator is not timed. \
         burn: burn 0.22 (wgpu backend, autodiff, Adam) on the first wgpu adapter, a TopK SAE as a \
         framework user writes it (dense encoder and ReLU, each row's k-th value from `topk` \
         masking the rest, dense decoder, MSE, backward, Adam, decoder rows renormalised after the \
         step) on four replayed batches of Gaussian activations. It leaves out what mechlab's step \
         also does (dead-latent tracking and AuxK once latents die, projecting the decoder \
         gradient, reading the losses and firing counts back), which only favours burn.{}",
        if sorted.is_empty() {
            String::new()
        } else {
            format!(
                " At {}, burn's `topk` gave wrong values on this adapter and the peer sorted instead.",
                sorted.join(", ")
            )
        }
    );
    crate::bench::append_results(&table)
}
