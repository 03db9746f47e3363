//! `mechlab superposition`: one config from a preset, a JSON file or a share link; a progress
//! bar; the result bundle as JSON.

use crate::common::{adapter, bar, placement, read_config, ConfigArgs};
use clap::ValueEnum;
use mechlab_engine::experiment::link::LinkConfig;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::experiment::results::SuperpositionResult;
use mechlab_engine::models::toy::config::{Preset, SuperpositionConfig};
use mechlab_engine::models::toy::gpu::{GpuToyTrainer, ToyPath};
use mechlab_engine::models::toy::{ToyLab, ToyTrainer};
use mechlab_engine::train::lab::Lab;
use mechlab_engine::train::trainer::{train_to_end, Trainer};
use std::path::PathBuf;

/// Where the run's config comes from, and where its results go.
#[derive(clap::Args)]
pub struct Args {
    /// The config (presets: intro, sparsity-sweep, dimensionality, phase-diagram), overrides
    /// and engine.
    #[command(flatten)]
    common: ConfigArgs,
    /// The GPU path: the fused kernel (one workgroup per instance, when the model fits it) or
    /// the general one; by default the fused one when it fits.
    #[arg(long, value_enum)]
    path: Option<GpuPath>,
    /// Where to write the results (JSON).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum GpuPath {
    Fused,
    General,
}

fn load_config(args: &Args) -> Result<SuperpositionConfig, String> {
    let c = &args.common;
    let mut cfg = if let Some(name) = &c.preset {
        Preset::from_name(name).map_err(|e| e.to_string())?.config()
    } else if let Some(path) = &c.config {
        read_config::<SuperpositionConfig>(path)?
    } else if let Some(l) = &c.link {
        SuperpositionConfig::from_link(l).map_err(|e| e.to_string())?
    } else {
        unreachable!("clap requires one source")
    };
    if let Some(s) = c.steps {
        cfg.steps = s;
    }
    if let Some(s) = c.seed {
        cfg.seed = s;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Runs the command; the error string is printed on stderr and the process exits non-zero.
pub async fn run(args: Args) -> Result<(), String> {
    let cfg = load_config(&args)?;
    let bar = bar(cfg.steps as u64);
    let chunk = (cfg.steps / 100).clamp(1, 1000);
    let mut cache = None;
    let adapter = adapter(args.common.engine, &mut cache).await;
    let placement = placement::<ToyLab>(args.common.engine, adapter)?;
    bar.println(format!("training on {}", placement.runs_on));
    let mut t = match (placement.chosen(adapter), args.path) {
        // A path the user named, rather than the one the trainer picks.
        (Some(gpu), Some(path)) => {
            let path = match path {
                GpuPath::Fused => ToyPath::Fused,
                GpuPath::General => ToyPath::General,
            };
            let t = GpuToyTrainer::new(gpu, &cfg, Some(path))
                .await
                .map_err(|e| e.to_string())?;
            ToyTrainer::Gpu(Box::new(t))
        }
        (gpu, _) => ToyLab::open(gpu, &cfg, ())
            .await
            .map_err(|e| e.to_string())?,
    };
    if let ToyTrainer::Gpu(g) = &t {
        bar.set_message(format!("({:?} path)", g.path()));
    }
    train_to_end(&mut t, chunk, |t, _| bar.set_position(t.step() as u64))
        .await
        .map_err(|e| e.to_string())?;
    let params = t.params_flat().await.map_err(|e| e.to_string())?;
    let adapter = placement.runs_on;
    bar.finish();
    let result = SuperpositionResult::new(&cfg, cfg.steps, adapter, &params);
    let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
