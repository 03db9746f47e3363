//! The worker's Superposition lab: every instance of a config trained side by side on WebGPU,
//! or on the CPU reference when there is none and the config is small.

use mechlab_engine::experiment::superposition::SuperpositionConfig;
use mechlab_engine::metrics::superposition::superposition_metrics;
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::GpuToyTrainer;
use mechlab_engine::models::toy::{unflatten, ToyTrainer};
use mechlab_engine::train::trainer::Trainer;
use mechlab_engine::EngineError;

use super::work::Opened;
use crate::protocol::{ToyUpdate, Update};
use mechlab_engine::train::engine::{place, Adapter, EngineChoice, Request};

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
    let request = Request {
        choice: engine,
        cpu_too_large: (cost > CPU_FALLBACK_LIMIT).then(|| {
            format!(
                "this run needs WebGPU: instances × parameters × batch = {cost} is more than the \
                 CPU fallback's {CPU_FALLBACK_LIMIT}; shrink the sweep, the model or the batch"
            )
        }),
        // The fused kernel keeps each instance in workgroup memory and beats the CPU reference
        // on software adapters too.
        cpu_faster_on_software: false,
        gpu_name: "WebGPU",
    };
    let placement = place(&request, &gpu)?;
    match placement.chosen(&gpu) {
        Some(gpu) => {
            let t = GpuToyTrainer::new(gpu, cfg, None)
                .await
                .map_err(|e| e.to_string())?;
            // Start small when a step is big (software adapters take seconds for the phase
            // diagram); the loop grows the chunk fourfold per chunk on fast GPUs.
            let chunk = (2e6 / step_work(cfg) as f64).clamp(1.0, 50.0);
            Ok(Opened {
                work: ToyWork {
                    trainer: ToyTrainer::Gpu(Box::new(t)),
                    cfg: cfg.clone(),
                },
                adapter: placement.runs_on,
                chunk,
                max_chunk: 5000.0,
                start: 0,
            })
        }
        None => {
            let t = CpuToyTrainer::new(cfg).map_err(|e| e.to_string())?;
            // A first guess of ~50 M multiply-adds a second; the loop corrects it at once.
            let per_step = (cost * 4).max(1) as f64;
            Ok(Opened {
                work: ToyWork {
                    trainer: ToyTrainer::Cpu(Box::new(t)),
                    cfg: cfg.clone(),
                },
                adapter: placement.runs_on,
                chunk: (5e6 / per_step).clamp(1.0, 200.0),
                max_chunk: 2000.0,
                start: 0,
            })
        }
    }
}

impl ToyWork {
    /// Trains `n` steps; returns them with the chunk's losses, weights and measures.
    pub async fn advance(&mut self, n: u32) -> Result<(u32, Update), EngineError> {
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
            Update::Superposition(ToyUpdate {
                losses,
                params,
                metrics,
            }),
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
