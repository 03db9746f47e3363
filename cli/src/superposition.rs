//! `mechlab superposition`: one config from a preset, a JSON file or a share link; a progress
//! bar; the result bundle as JSON.

use clap::{ArgGroup, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mechlab_engine::experiment::link;
use mechlab_engine::experiment::results::SuperpositionResult;
use mechlab_engine::experiment::superposition::{Preset, SuperpositionConfig};
use mechlab_engine::gpu::Gpu;
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::{GpuToyTrainer, ToyPath};
use std::path::PathBuf;

/// Where the run's config comes from, and where its results go.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["preset", "config", "link"])))]
pub struct Args {
    /// A preset: intro, sparsity-sweep, dimensionality, phase-diagram.
    #[arg(long)]
    preset: Option<String>,
    /// A JSON file holding a config (fields left out take their defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A share link copied from the app (the whole URL or just its fragment).
    #[arg(long)]
    link: Option<String>,
    /// Override the number of training steps.
    #[arg(long)]
    steps: Option<u32>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Which implementation trains: auto picks the fused GPU kernel when the model fits it.
    #[arg(long, value_enum, default_value_t = Engine::Auto)]
    engine: Engine,
    /// Where to write the results (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    Auto,
    Fused,
    General,
    Cpu,
}

fn load_config(args: &Args) -> Result<SuperpositionConfig, String> {
    let mut cfg = if let Some(name) = &args.preset {
        Preset::from_name(name).map_err(|e| e.to_string())?.config()
    } else if let Some(path) = &args.config {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text =
            String::from_utf8(text).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a valid config: {e}", path.display()))?
    } else if let Some(l) = &args.link {
        link::decode(l).map_err(|e| e.to_string())?
    } else {
        unreachable!("clap requires one source")
    };
    if let Some(s) = args.steps {
        cfg.steps = s;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Runs the command; the error string is printed on stderr and the process exits non-zero.
pub async fn run(args: Args) -> Result<(), String> {
    let cfg = load_config(&args)?;
    let bar = ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps, ETA {eta} {msg}",
        )
        .expect("static template"),
    );
    let chunk = (cfg.steps / 100).clamp(1, 1000);
    let (params, losses, adapter) = match args.engine {
        Engine::Cpu => {
            let mut t = CpuToyTrainer::new(&cfg).map_err(|e| e.to_string())?;
            let mut losses = Vec::new();
            while t.step() < cfg.steps {
                losses = t.run_steps(chunk.min(cfg.steps - t.step()));
                t.check_diverged().map_err(|e| e.to_string())?;
                bar.set_position(t.step() as u64);
            }
            (t.params().to_vec(), losses, "CPU reference".to_string())
        }
        engine => {
            let gpu = Gpu::new().await.map_err(|e| e.to_string())?;
            bar.println(format!("adapter: {}", gpu.adapter_name()));
            let path = match engine {
                Engine::Fused => Some(ToyPath::Fused),
                Engine::General => Some(ToyPath::General),
                _ => None,
            };
            let mut t = GpuToyTrainer::new(&gpu, &cfg, path)
                .await
                .map_err(|e| e.to_string())?;
            bar.set_message(format!("({:?} path)", t.path()));
            let mut losses = Vec::new();
            while t.step() < cfg.steps {
                let r = t
                    .run_steps(chunk.min(cfg.steps - t.step()))
                    .await
                    .map_err(|e| e.to_string())?;
                losses = r.mean_loss;
                bar.set_position(r.step as u64);
            }
            (
                t.params_flat().await.map_err(|e| e.to_string())?,
                losses,
                gpu.adapter_name(),
            )
        }
    };
    bar.finish();
    let result = SuperpositionResult::new(&cfg, cfg.steps, adapter, &params, &losses);
    let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
