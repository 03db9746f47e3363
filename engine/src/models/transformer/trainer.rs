//! One face for the lab's two trainers, so the CLI (and next the page's worker) drives either:
//! the CPU reference ([`CpuLmTrainer`]) or the GPU ([`GpuLmTrainer`]).

use super::gpu::GpuLmTrainer;
use super::lm::{
    sample, CpuLmTrainer, LmConfig, LmStep, OptimizerState, SampleOptions, TokenizedCorpus,
};
use super::params::TransformerParams;
use crate::error::Result;

/// A language-model trainer on the CPU or the GPU.
pub enum LmTrainer {
    /// The CPU reference.
    Cpu(Box<CpuLmTrainer>),
    /// The GPU path.
    Gpu(Box<GpuLmTrainer>),
}

impl LmTrainer {
    /// The run's config.
    pub fn config(&self) -> &LmConfig {
        match self {
            LmTrainer::Cpu(t) => t.config(),
            LmTrainer::Gpu(t) => t.config(),
        }
    }

    /// Steps done.
    pub fn step(&self) -> u32 {
        match self {
            LmTrainer::Cpu(t) => t.step(),
            LmTrainer::Gpu(t) => t.step(),
        }
    }

    /// The tokenizer and tokens.
    pub fn data(&self) -> &TokenizedCorpus {
        match self {
            LmTrainer::Cpu(t) => t.data(),
            LmTrainer::Gpu(t) => t.data(),
        }
    }

    /// Trains one step.
    pub async fn train_step(&mut self) -> Result<LmStep> {
        match self {
            LmTrainer::Cpu(t) => t.train_step(),
            LmTrainer::Gpu(t) => t.train_step().await,
        }
    }

    /// The mean loss on the fixed validation windows.
    pub async fn validation_loss(&mut self) -> Result<f32> {
        match self {
            LmTrainer::Cpu(t) => t.validation_loss(),
            LmTrainer::Gpu(t) => t.validation_loss().await,
        }
    }

    /// The parameters (read back from the GPU).
    pub async fn params(&self) -> Result<TransformerParams> {
        match self {
            LmTrainer::Cpu(t) => Ok(t.params().clone()),
            LmTrainer::Gpu(t) => t.params().await,
        }
    }

    /// Adam's state and the step (read back from the GPU).
    pub async fn optimizer_state(&self) -> Result<OptimizerState> {
        match self {
            LmTrainer::Cpu(t) => Ok(t.optimizer_state().clone()),
            LmTrainer::Gpu(t) => t.optimizer_state().await,
        }
    }

    /// A continuation of `prompt` (on the CPU from the parameters).
    pub async fn sample(&self, prompt: &str, opts: &SampleOptions) -> Result<String> {
        let params = self.params().await?;
        sample(&params, &self.data().tokenizer, prompt, opts)
    }
}
