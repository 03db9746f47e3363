//! `mechlab sae`: trains a sparse autoencoder from a preset, a JSON config or a share link and
//! writes a SAELens folder, `metrics.json` and, for planted features, `ground_truth.safetensors`.
//! `mechlab sae-inspect DIR` reads a SAELens folder back and reports what it holds.

use crate::common::{adapter, bar, placement, read_config, ConfigArgs};
use indicatif::ProgressBar;
use mechlab_engine::experiment::frontier::{self, FrontierPoint};
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::io::saelens;
use mechlab_engine::models::sae::config::{Architecture, SaeConfig, SaePreset};
use mechlab_engine::models::sae::link::{self as link, Sweep};
use mechlab_engine::models::sae::train::Evaluation;
use mechlab_engine::models::sae::trainer::SaeTrainer as Trainer;
use mechlab_engine::models::sae::SaeLab;
use mechlab_engine::train::engine::{Adapter, EngineChoice};
use mechlab_engine::train::lab::Lab;
use mechlab_engine::train::trainer::train_to_end;
use std::path::{Path, PathBuf};

/// Inputs the final metrics are measured on.
const EVAL_SAMPLES: usize = 8192;

/// Where the run's config comes from, and where its results go.
#[derive(clap::Args)]
pub struct Args {
    /// The config (presets: ground-truth, frontier, superposition-hidden), overrides and
    /// engine (every architecture trains on both).
    #[command(flatten)]
    common: ConfigArgs,
    /// Train this architecture (relu_l1, topk, batch_topk, gated, jumprelu) with its defaults
    /// instead of the config's; for `frontier`, sweep only this one.
    #[arg(long)]
    architecture: Option<String>,
    /// The folder to write (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Opens the trainer where [`placement`] puts it; returns it with the name of what runs it.
async fn trainer(
    cfg: &SaeConfig,
    engine: EngineChoice,
    cache: &mut Option<Adapter>,
) -> Result<(Trainer, String), String> {
    let adapter = adapter(engine, cache).await;
    let placement = placement::<SaeLab>(engine, adapter)?;
    let t = SaeLab::open(placement.chosen(adapter), cfg, ())
        .await
        .map_err(|e| e.to_string())?;
    Ok((t, placement.runs_on))
}

/// A SAELens folder to read back.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The folder holding cfg.json and sae_weights.safetensors.
    dir: PathBuf,
}

/// The config and what to train: one SAE, or the frontier of the architectures named.
fn load_config(args: &Args) -> Result<(SaeConfig, Sweep), String> {
    let c = &args.common;
    let (mut cfg, mut sweep) = if let Some(name) = &c.preset {
        let preset = SaePreset::from_name(name).map_err(|e| e.to_string())?;
        let sweep = if preset == SaePreset::Frontier {
            Sweep::all()
        } else {
            Sweep::Single
        };
        (preset.config(), sweep)
    } else if let Some(path) = &c.config {
        (read_config::<SaeConfig>(path)?, Sweep::Single)
    } else if let Some(l) = &c.link {
        link::decode(l).map_err(|e| e.to_string())?
    } else {
        unreachable!("clap requires one source")
    };
    if let Some(a) = &args.architecture {
        cfg.architecture = Architecture::by_name(a).map_err(|e| e.to_string())?;
        // A frontier narrows to the architecture asked for.
        if let Sweep::Frontier(_) = sweep {
            sweep = Sweep::Frontier(vec![cfg.architecture.name()]);
        }
    }
    if let Some(s) = c.steps {
        cfg.steps = s;
    }
    if let Some(s) = c.seed {
        cfg.seed = s;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok((cfg, sweep))
}

/// Trains one SAE with a progress bar and writes its folder; returns its evaluation.
async fn train_one(
    cfg: &SaeConfig,
    engine: EngineChoice,
    gpu: &mut Option<Adapter>,
    dir: &Path,
    bar: &ProgressBar,
) -> Result<Evaluation, String> {
    let (mut t, engine_name) = trainer(cfg, engine, gpu).await?;
    bar.println(format!("{}: {engine_name}", cfg.architecture.label()));
    let chunk = (cfg.steps / 200).clamp(1, 100);
    let mut last = None;
    train_to_end(&mut t, chunk, |_, r| {
        if let Some(r) = r.last() {
            bar.set_message(format!(
                "{} loss {:.4} L0 {:.1}",
                cfg.architecture.label(),
                r.loss.total(),
                r.l0
            ));
            last = Some(*r);
        }
        bar.inc(r.len() as u64);
    })
    .await
    .map_err(|e| e.to_string())?;
    let (eval, params) = t
        .evaluate_with_params(EVAL_SAMPLES)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files =
        saelens::to_saelens(&params, cfg, saelens::SOURCE_HOOK_NAME).map_err(|e| e.to_string())?;
    saelens::write_dir(dir, &files).map_err(|e| e.to_string())?;
    let source = t.source();
    if let Some(features) = source.true_features() {
        let d = cfg.d_in() as usize;
        let bytes = saelens::ground_truth_safetensors(features, features.len() / d, d)
            .map_err(|e| e.to_string())?;
        write(&dir.join("ground_truth.safetensors"), &bytes)?;
    }
    let metrics = serde_json::json!({
        "config": cfg,
        "link": link::encode(cfg),
        "engine": engine_name,
        "steps": t.step(),
        "eval_samples": EVAL_SAMPLES,
        "final_loss": last,
        "source": source.describe(),
        "input_scale": params.input_scale,
        "metrics": eval.metrics,
    });
    write(
        &dir.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    )?;
    Ok(eval)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs `mechlab sae`.
pub async fn run(args: Args) -> Result<(), String> {
    let (cfg, sweep) = load_config(&args)?;
    let mut gpu = None;
    if sweep == Sweep::Single {
        let b = bar(cfg.steps as u64);
        let eval = train_one(&cfg, args.common.engine, &mut gpu, &args.out, &b).await?;
        b.finish();
        print_summary(&cfg, &eval);
        eprintln!("wrote {}", args.out.display());
        return Ok(());
    }
    // A frontier (each architecture across its sparsity sweep) or a sweep over one field: one
    // folder per run, named by what the run varies.
    let runs = sweep.runs(&cfg).map_err(|e| e.to_string())?;
    let b = bar(runs.iter().map(|r| r.steps as u64).sum());
    let mut points = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let name = match &sweep {
            Sweep::Key(k) => format!("{}-{}", k.key, k.values[i]),
            _ => format!(
                "{}-{}",
                run.architecture.name(),
                frontier::knob(&run.architecture)
            ),
        };
        let dir = args.out.join(name);
        let eval = train_one(run, args.common.engine, &mut gpu, &dir, &b).await?;
        let mut point = serde_json::to_value(FrontierPoint::new(run, &eval.metrics))
            .map_err(|e| e.to_string())?;
        point["dir"] = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .into();
        points.push(point);
    }
    b.finish();
    let architectures: Vec<&str> = match &sweep {
        Sweep::Frontier(names) => names.clone(),
        _ => vec![cfg.architecture.name()],
    };
    let json = serde_json::json!({
        "config": cfg,
        "architectures": architectures,
        "sweep": sweep.encode(),
        "points": points,
    });
    write(
        &args.out.join("frontier.json"),
        serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    )?;
    for p in &points {
        eprintln!(
            "{:>10} {:>6}: L0 {:>6.2}  NMSE {:.4}",
            p["architecture"].as_str().unwrap_or(""),
            p["sparsity"],
            p["l0"].as_f64().unwrap_or(f64::NAN),
            p["normalized_mse"].as_f64().unwrap_or(f64::NAN)
        );
    }
    eprintln!("wrote {}", args.out.join("frontier.json").display());
    Ok(())
}

fn print_summary(cfg: &SaeConfig, eval: &Evaluation) {
    let m = &eval.metrics;
    let r = &m.reconstruction;
    eprintln!(
        "{}: MSE {:.5}, NMSE {:.4}, explained variance {:.4}, L0 {:.2}, L1 {:.3}, dead {:.1}%, dense {:.1}%",
        cfg.architecture.label(),
        r.mse,
        r.normalized_mse,
        r.explained_variance,
        r.l0,
        r.l1,
        100.0 * m.fraction_dead,
        100.0 * m.fraction_dense
    );
    if let Some(gt) = &m.ground_truth {
        eprintln!(
            "ground truth: MMCS {:.3}, {} of {} features recovered (cosine ≥ {})",
            gt.mmcs, gt.recovered, gt.n_true, gt.threshold
        );
    }
}

/// Runs `mechlab sae-inspect`.
pub fn inspect(args: InspectArgs) -> Result<(), String> {
    let files = saelens::read_dir(&args.dir).map_err(|e| e.to_string())?;
    let (params, cfg) =
        saelens::from_saelens(&files.cfg_json, &files.weights).map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "architecture": cfg.architecture,
        "saelens_architecture": cfg.saelens_architecture,
        "notes": cfg.notes,
        "d_in": params.d_in,
        "d_sae": params.d_sae,
        "k": cfg.k,
        "hook_name": cfg.hook_name,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
    );
    Ok(())
}
