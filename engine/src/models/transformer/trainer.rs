//! One face for the lab's two trainers, so the CLI (and next the page's worker) drives either:
//! the CPU reference ([`CpuLmTrainer`]) or the GPU ([`GpuLmTrainer`]); it is a [`Trainer`] as
//! every lab's trainer is, so the loops that drive the other labs ([`train_to_end`]) drive it.
//!
//! [`train_to_end`]: crate::train::trainer::train_to_end

use super::config::TransformerConfig;
use super::gpu::GpuLmTrainer;
use super::lm::{
    sample, CpuLmTrainer, LmConfig, LmStep, OptimizerState, SampleOptions, TokenizedCorpus,
};
use super::params::TransformerParams;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::train::lab::Lab;
use crate::train::trainer::Trainer;

/// The Transformer lab (`lm` in links): language models on a tokenized text.
pub struct LmLab;

impl Lab for LmLab {
    type Config = LmConfig;
    type Data = TokenizedCorpus;
    type Trainer = LmTrainer;
    type Preset = super::lm::LmPreset;

    // Measured on lavapipe at the tiny preset: the CPU reference is faster there (see the
    // README).
    const CPU_FASTER_ON_SOFTWARE: bool = true;

    /// [`LmTrainer::start`].
    async fn open(gpu: Option<&Gpu>, cfg: &LmConfig, data: TokenizedCorpus) -> Result<LmTrainer> {
        LmTrainer::start(gpu, cfg, data)
    }
}

/// A language-model trainer on the CPU or the GPU.
pub enum LmTrainer {
    /// The CPU reference.
    Cpu(Box<CpuLmTrainer>),
    /// The GPU path.
    Gpu(Box<GpuLmTrainer>),
}

impl LmTrainer {
    /// A fresh run on tokens already made (a pair of models shares them), initialised as
    /// TransformerLens initialises it, on `gpu` or, without one, on the CPU.
    pub fn start(gpu: Option<&Gpu>, cfg: &LmConfig, data: TokenizedCorpus) -> Result<Self> {
        cfg.validate()?;
        let model = TransformerConfig {
            d_vocab: data.tokenizer.vocab_size(),
            ..cfg.model.clone()
        };
        let params = TransformerParams::init(&model, cfg.seed)?;
        Self::resume(gpu, cfg, data, params, None)
    }

    /// A run continued from a checkpoint's parameters and optimiser state (or started from
    /// `params` when `state` is `None`), on `gpu` or the CPU; it continues with the losses the
    /// uninterrupted run would have had on the same device.
    pub fn resume(
        gpu: Option<&Gpu>,
        cfg: &LmConfig,
        data: TokenizedCorpus,
        params: TransformerParams,
        state: Option<OptimizerState>,
    ) -> Result<Self> {
        Ok(match gpu {
            Some(g) => LmTrainer::Gpu(Box::new(GpuLmTrainer::resume(g, cfg, data, params, state)?)),
            None => LmTrainer::Cpu(Box::new(CpuLmTrainer::resume(cfg, data, params, state)?)),
        })
    }

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

impl Trainer for LmTrainer {
    /// Each step's figures, in order.
    type Report = Vec<LmStep>;

    fn step(&self) -> u32 {
        LmTrainer::step(self)
    }

    fn total_steps(&self) -> u32 {
        self.config().steps
    }

    async fn run_steps(&mut self, n: u32) -> Result<Vec<LmStep>> {
        let mut steps = vec![];
        for _ in 0..n.min(self.remaining()) {
            steps.push(self.train_step().await?);
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::Corpus;

    /// The CPU trainer driven by the loop every lab's trainer is driven by: chunks of three
    /// steps to the end of a seven-step run report every step once, the last chunk short, with
    /// the losses a step at a time gives.
    async fn the_lab_loop_drives_it() {
        let text: String = (0..200).map(|i| format!("a cat sat {}\n", i % 7)).collect();
        let corpus = Corpus::from_file("cats.txt", text.as_bytes()).unwrap();
        let mut cfg = LmConfig {
            steps: 7,
            batch_size: 2,
            ..LmConfig::default()
        };
        (cfg.model.d_model, cfg.model.d_head, cfg.model.d_mlp) = (16, 4, 32);
        cfg.model.n_ctx = 8;
        let data = TokenizedCorpus::new(&corpus, cfg.tokenizer).unwrap();
        let mut one = LmTrainer::start(None, &cfg, data.clone()).unwrap();
        let mut want = vec![];
        for _ in 0..7 {
            want.push(one.train_step().await.unwrap());
        }
        let mut t = LmTrainer::start(None, &cfg, data).unwrap();
        let mut got = vec![];
        let each = |_: &LmTrainer, r: &Vec<LmStep>| got.extend_from_slice(r);
        let last = crate::train::trainer::train_to_end(&mut t, 3, each)
            .await
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(last.map(|r| r.len()), Some(1));
        assert_eq!((Trainer::step(&t), t.remaining()), (7, 0));
    }
    crate::cpu_test!(the_lab_loop_drives_it_to_the_end, the_lab_loop_drives_it);

    /// A GPU run saved after some steps and resumed in a fresh trainer continues with the
    /// losses of the run that never stopped.
    async fn gpu_resume_is_exact(gpu: &Gpu) {
        let text: String = (0..200)
            .map(|i| format!("the cat sat on the mat {}\n", i % 7))
            .collect();
        let corpus = Corpus::from_file("cats.txt", text.as_bytes()).unwrap();
        let mut cfg = LmConfig {
            steps: 10,
            batch_size: 4,
            ..LmConfig::default()
        };
        cfg.model.d_model = 16;
        cfg.model.d_head = 4;
        cfg.model.d_mlp = 32;
        cfg.model.n_ctx = 16;
        let data = TokenizedCorpus::new(&corpus, cfg.tokenizer).unwrap();
        let mut whole = LmTrainer::start(Some(gpu), &cfg, data.clone()).unwrap();
        let mut all = vec![];
        for _ in 0..7 {
            all.push(whole.train_step().await.unwrap());
        }
        let mut first = LmTrainer::start(Some(gpu), &cfg, data.clone()).unwrap();
        for _ in 0..4 {
            first.train_step().await.unwrap();
        }
        let (params, state) = (
            first.params().await.unwrap(),
            first.optimizer_state().await.unwrap(),
        );
        assert_eq!(state.step, 4);
        let mut second = LmTrainer::resume(Some(gpu), &cfg, data, params, Some(state)).unwrap();
        assert_eq!(second.step(), 4);
        for expected in &all[4..] {
            assert_eq!(second.train_step().await.unwrap(), *expected);
        }
    }
    crate::gpu_test!(gpu_runs_resume_exactly, gpu_resume_is_exact);
}
