//! The worker's Superposition lab: every instance of a config trained side by side on WebGPU,
//! or on the CPU reference when there is none and the config is small.

use mechlab_engine::metrics::superposition::superposition_metrics;
use mechlab_engine::models::toy::config::SuperpositionConfig;
use mechlab_engine::models::toy::{unflatten, ToyLab, ToyTrainer};
use mechlab_engine::train::trainer::Trainer;
use mechlab_engine::EngineError;

use super::update::ToyUpdate;
use crate::protocol::{Job, Update};
use crate::worker::work::{LabJob, LabWork, Opened};
use mechlab_engine::data::LocalFuture;
use mechlab_engine::train::engine::{place, Adapter, EngineChoice};
use mechlab_engine::train::lab::Lab;

/// Largest `instances × params × batch` the CPU fallback takes on; beyond it one step takes
/// seconds and a run would never finish.
pub const CPU_FALLBACK_LIMIT: u64 = 2_000_000;

/// The trainer (CPU reference or GPU) and its config.
pub struct ToyWork {
    trainer: ToyTrainer,
    cfg: SuperpositionConfig,
}

/// Builds the trainer where [`place`] puts it for `engine`: on auto, WebGPU when there is an
/// adapter, else the CPU reference if the config is small enough.
pub async fn open(
    cfg: &SuperpositionConfig,
    engine: EngineChoice,
    gpu: Adapter,
) -> Result<Opened<ToyWork>, String> {
    cfg.validate().map_err(|e| e.to_string())?;
    let cost = cpu_cost(cfg);
    let cpu_too_large = (cost > CPU_FALLBACK_LIMIT).then(|| {
        format!(
            "this run needs WebGPU: instances × parameters × batch = {cost} is more than the CPU \
             fallback's {CPU_FALLBACK_LIMIT}; shrink the sweep, the model or the batch"
        )
    });
    let placement = place(&ToyLab::request(engine, cpu_too_large, "WebGPU"), &gpu)?;
    let trainer = ToyLab::open(placement.chosen(&gpu), cfg, ())
        .await
        .map_err(|e| e.to_string())?;
    let (chunk, max_chunk) = match &trainer {
        // Start small when a step is big (software adapters take seconds for the phase
        // diagram); the loop grows the chunk fourfold per chunk on fast GPUs.
        ToyTrainer::Gpu(_) => ((2e6 / step_work(cfg) as f64).clamp(1.0, 50.0), 5000.0),
        // A first guess of ~50 M multiply-adds a second; the loop corrects it at once.
        ToyTrainer::Cpu(_) => ((5e6 / (cost * 4).max(1) as f64).clamp(1.0, 200.0), 2000.0),
    };
    Ok(Opened {
        work: ToyWork {
            trainer,
            cfg: cfg.clone(),
        },
        adapter: placement.runs_on,
        chunk,
        max_chunk,
        start: 0,
    })
}

impl LabJob for ToyWork {
    type Experiment = SuperpositionConfig;

    async fn open(
        e: &SuperpositionConfig,
        job: &Job,
        gpu: Adapter,
    ) -> Result<Opened<Self>, String> {
        open(e, job.engine, gpu).await
    }
}

impl LabWork for ToyWork {
    fn advance(
        &mut self,
        n: u32,
        _: f64,
        _: u32,
    ) -> LocalFuture<'_, Result<(u32, Update), EngineError>> {
        Box::pin(self.chunk(n))
    }
}

impl ToyWork {
    /// Trains `n` steps; returns them with the chunk's losses, weights and measures.
    async fn chunk(&mut self, n: u32) -> Result<(u32, Update), EngineError> {
        let losses = self.trainer.run_steps(n).await?;
        let params = self.trainer.params_flat().await?;
        let cfg = &self.cfg;
        let (h, f) = (cfg.n_hidden as usize, cfg.n_features as usize);
        let metrics = params
            .chunks(cfg.params_per_instance())
            .map(|block| superposition_metrics(&unflatten(block, h, f).w))
            .collect();
        Ok((
            n,
            Update::new(&ToyUpdate {
                losses,
                params,
                metrics,
            })?,
        ))
    }
}

/// The CPU fallback's cost measure: instances × parameters per instance × batch size.
pub fn cpu_cost(cfg: &SuperpositionConfig) -> u64 {
    cfg.n_instances() as u64 * cfg.params_per_instance() as u64 * cfg.batch_size as u64
}

/// Multiply-adds of one training step over all instances, roughly.
fn step_work(cfg: &SuperpositionConfig) -> u64 {
    let per_sample = cfg.n_features as u64 * cfg.n_hidden as u64;
    (cfg.n_instances() as u64 * cfg.batch_size as u64 * per_sample).max(1)
}
