//! Either SAE trainer behind one face, for the loops that drive them (the CLI, the page's
//! worker, the benchmark): the CPU reference or the GPU trainer.

use super::config::SaeConfig;
use super::gpu::GpuSaeTrainer;
use super::params::SaeParams;
use super::train::{CpuSaeTrainer, Evaluation, StepReport};
use crate::data::ActivationSource;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::train::lab::Lab;
use crate::train::trainer::Trainer;

/// The Sparse-autoencoder lab.
pub struct SaeLab;

impl Lab for SaeLab {
    type Config = SaeConfig;
    type Data = ();
    type Trainer = SaeTrainer;
    type Preset = crate::models::sae::config::SaePreset;

    // A software rasterizer runs the GPU kernels on the CPU, about 25 times slower than the
    // CPU reference for the ground-truth preset on lavapipe.
    const CPU_FASTER_ON_SOFTWARE: bool = true;

    /// The source the config names, built for either trainer.
    async fn open(gpu: Option<&Gpu>, cfg: &SaeConfig, (): ()) -> Result<SaeTrainer> {
        Ok(match gpu {
            Some(g) => SaeTrainer::Gpu(Box::new(GpuSaeTrainer::new(g, cfg).await?)),
            None => SaeTrainer::Cpu(Box::new(CpuSaeTrainer::new(cfg)?)),
        })
    }
}

/// A CPU or GPU SAE trainer.
pub enum SaeTrainer {
    /// The CPU reference.
    Cpu(Box<CpuSaeTrainer>),
    /// The GPU trainer.
    Gpu(Box<GpuSaeTrainer>),
}

impl SaeTrainer {
    /// Steps trained.
    pub fn step(&self) -> u32 {
        match self {
            SaeTrainer::Cpu(t) => t.step(),
            SaeTrainer::Gpu(t) => t.step(),
        }
    }

    /// Trains up to `n` steps (fewer at the end of the run), returning each step's report.
    pub async fn run_steps(&mut self, n: u32) -> Result<Vec<StepReport>> {
        match self {
            SaeTrainer::Cpu(t) => t.run_steps(n),
            SaeTrainer::Gpu(t) => t.run_steps(n).await,
        }
    }

    /// Metrics and the latent table on `samples` fresh inputs.
    pub async fn evaluate(&mut self, samples: usize) -> Result<Evaluation> {
        match self {
            SaeTrainer::Cpu(t) => Ok(t.evaluate(samples)),
            SaeTrainer::Gpu(t) => t.evaluate(samples).await,
        }
    }

    /// The final state of a run: [`Self::evaluate`] and the parameters, which the GPU trainer
    /// reads back from the device once for both.
    pub async fn evaluate_with_params(
        &mut self,
        samples: usize,
    ) -> Result<(Evaluation, SaeParams)> {
        match self {
            SaeTrainer::Cpu(t) => Ok((t.evaluate(samples), t.params().clone())),
            SaeTrainer::Gpu(t) => t.evaluate_with_params(samples).await,
        }
    }

    /// The current parameters.
    pub async fn params(&self) -> Result<SaeParams> {
        match self {
            SaeTrainer::Cpu(t) => Ok(t.params().clone()),
            SaeTrainer::Gpu(t) => t.params().await,
        }
    }

    /// The activation source it trains on.
    pub fn source(&self) -> &dyn ActivationSource {
        match self {
            SaeTrainer::Cpu(t) => t.source(),
            SaeTrainer::Gpu(t) => t.source(),
        }
    }
}

impl Trainer for SaeTrainer {
    /// Each step's figures.
    type Report = Vec<StepReport>;

    fn step(&self) -> u32 {
        SaeTrainer::step(self)
    }

    fn total_steps(&self) -> u32 {
        match self {
            SaeTrainer::Cpu(t) => t.config().steps,
            SaeTrainer::Gpu(t) => t.config().steps,
        }
    }

    async fn run_steps(&mut self, n: u32) -> Result<Vec<StepReport>> {
        SaeTrainer::run_steps(self, n).await
    }
}
