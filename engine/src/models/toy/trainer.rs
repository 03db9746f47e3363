//! The toy model's trainer as one type over the CPU reference and the GPU trainers, for the
//! loops that drive any lab ([`crate::train::trainer::Trainer`]).

use super::cpu::CpuToyTrainer;
use super::gpu::GpuToyTrainer;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::models::toy::config::SuperpositionConfig;
use crate::train::lab::Lab;
use crate::train::trainer::Trainer;

/// The Superposition lab.
pub struct ToyLab;

impl Lab for ToyLab {
    type Config = SuperpositionConfig;
    type Data = ();
    type Trainer = ToyTrainer;
    type Preset = crate::models::toy::config::Preset;

    // The fused kernel keeps each instance in workgroup memory and beats the CPU reference on
    // software adapters too.
    const CPU_FASTER_ON_SOFTWARE: bool = false;

    /// On the GPU, the path [`GpuToyTrainer::new`] picks for the config.
    async fn open(gpu: Option<&Gpu>, cfg: &SuperpositionConfig, (): ()) -> Result<ToyTrainer> {
        Ok(match gpu {
            Some(g) => ToyTrainer::Gpu(Box::new(GpuToyTrainer::new(g, cfg, None).await?)),
            None => ToyTrainer::Cpu(Box::new(CpuToyTrainer::new(cfg)?)),
        })
    }
}

/// A CPU or GPU toy-model trainer.
pub enum ToyTrainer {
    /// The CPU reference.
    Cpu(Box<CpuToyTrainer>),
    /// A GPU path (fused or general).
    Gpu(Box<GpuToyTrainer>),
}

impl ToyTrainer {
    /// All parameters, instance-major (`W` then `b` per instance).
    pub async fn params_flat(&self) -> Result<Vec<f32>> {
        match self {
            ToyTrainer::Cpu(t) => Ok(t.params().to_vec()),
            ToyTrainer::Gpu(t) => t.params_flat().await,
        }
    }
}

impl Trainer for ToyTrainer {
    /// The mean loss per instance over the chunk.
    type Report = Vec<f32>;

    fn step(&self) -> u32 {
        match self {
            ToyTrainer::Cpu(t) => t.step(),
            ToyTrainer::Gpu(t) => t.step(),
        }
    }

    fn total_steps(&self) -> u32 {
        match self {
            ToyTrainer::Cpu(t) => t.config().steps,
            ToyTrainer::Gpu(t) => t.config().steps,
        }
    }

    async fn run_steps(&mut self, n: u32) -> Result<Vec<f32>> {
        match self {
            ToyTrainer::Cpu(t) => {
                let losses = t.run_steps(n);
                t.check_diverged()?;
                Ok(losses)
            }
            ToyTrainer::Gpu(t) => Ok(t.run_steps(n).await?.mean_loss),
        }
    }
}
