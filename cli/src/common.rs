//! What every lab's command shares: where the config comes from (`--preset | --config |
//! --link`), the overrides (`--steps`, `--seed`), where it trains (`--engine`), reading a
//! config file the way the link codec reads links, and the progress bar.

use clap::ArgGroup;
use indicatif::{ProgressBar, ProgressStyle};
use mechlab_engine::experiment::link::{self, LinkConfig};
use mechlab_engine::gpu::Gpu;
use mechlab_engine::train::engine::{place, Adapter, EngineChoice, Placement, Request};
use mechlab_engine::train::lab::Lab;
use std::path::{Path, PathBuf};

/// The config's source and the overrides, the same for every lab.
#[derive(clap::Args)]
#[command(group(ArgGroup::new("from").required(true).args(["preset", "config", "link"])))]
pub struct ConfigArgs {
    /// A preset, by name (each lab lists its own).
    #[arg(long)]
    pub preset: Option<String>,
    /// A JSON file holding a config; fields left out take their defaults (for fields with
    /// kinds, such as an SAE's architecture, the defaults of the kind it names).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A share link copied from the app (the whole URL or just its fragment).
    #[arg(long)]
    pub link: Option<String>,
    /// Override the number of training steps.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where it trains: auto (the GPU on a hardware adapter; the CPU reference where the lab
    /// measured it faster, such as lavapipe for SAEs, or when no adapter opens), gpu or cpu.
    #[arg(long, value_parser = engine_choice, default_value = "auto")]
    pub engine: EngineChoice,
}

/// Parses `--engine`.
pub(crate) fn engine_choice(s: &str) -> Result<EngineChoice, String> {
    EngineChoice::ALL
        .into_iter()
        .find(|e| e.name() == s)
        .ok_or_else(|| format!("`{s}` is not an engine; choose auto, gpu or cpu"))
}

/// The adapter `engine` may train on, opened once per process and kept in `cache` (no adapter
/// is opened for `--engine cpu`).
pub async fn adapter(engine: EngineChoice, cache: &mut Option<Adapter>) -> &Adapter {
    if cache.is_none() {
        *cache = Some(match engine {
            EngineChoice::Cpu => Err("not opened (--engine cpu)".to_string()),
            _ => Gpu::new()
                .await
                .map(|g| {
                    let name = g.adapter_name();
                    (g, name)
                })
                .map_err(|e| e.to_string()),
        });
    }
    cache.as_ref().expect("set above")
}

/// Where a run of lab `L` trains natively ([`place`], the CPU reference taking any config),
/// "auto" preferring the CPU reference on software adapters where the lab says it is faster.
pub fn placement<L: Lab>(engine: EngineChoice, adapter: &Adapter) -> Result<Placement, String> {
    place(&L::request(engine, None, GPU_NAME), adapter)
}

/// Where a forward pass (no training) runs: the GPU wherever there is one, as "auto" asks.
pub fn forward_placement(engine: EngineChoice, adapter: &Adapter) -> Result<Placement, String> {
    let request = Request {
        choice: engine,
        cpu_too_large: None,
        cpu_faster_on_software: false,
        gpu_name: GPU_NAME,
    };
    place(&request, adapter)
}

/// What the GPU is called in the CLI's messages.
const GPU_NAME: &str = "a GPU adapter";

/// Reads a JSON config file as the link codec reads a link: fields left out take their
/// defaults, and errors name the file and the field.
pub fn read_config<C: LinkConfig>(path: &Path) -> Result<C, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text =
        String::from_utf8(text).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    link::from_json(&value)
        .map_err(|e| format!("{} is not a valid {} config: {e}", path.display(), C::TITLE))
}

/// A progress bar over `len` steps.
pub fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps, ETA {eta} {msg}",
        )
        .expect("static template"),
    );
    bar
}
