//! Training a language model on the GPU: [`GpuLmTrainer`], the same run as the CPU trainer.

use super::GpuTransformer;
use crate::error::Result;
use crate::gpu::{Arena, Gpu, Tensor};
use crate::models::transformer::TransformerParams;

/// Trains a language model on the GPU: the same run as [`crate::models::transformer::lm::CpuLmTrainer`] (the same
/// initialisation, batches, AdamW, clipping and schedule), each step one recording for the
/// forward and backward passes and one for the optimiser.
pub struct GpuLmTrainer {
    cfg: crate::models::transformer::lm::LmConfig,
    data: crate::models::transformer::lm::TokenizedCorpus,
    model: GpuTransformer,
    grads: Arena,
    m: Arena,
    v: Arena,
    scratch: wgpu::Buffer,
    windows: crate::data::text::Windows,
    step: u32,
}

impl GpuLmTrainer {
    /// A fresh run on `corpus`, initialised as the CPU trainer initialises it.
    pub fn new(
        gpu: &Gpu,
        cfg: &crate::models::transformer::lm::LmConfig,
        corpus: &crate::data::text::Corpus,
    ) -> Result<Self> {
        // The CPU trainer's tokenizer, tokens and initialisation, built once.
        let (cfg, data, params) =
            crate::models::transformer::lm::CpuLmTrainer::new(cfg, corpus)?.into_parts();
        Self::resume(gpu, &cfg, data, params, None)
    }

    /// A run continued from `params` and `state` (a checkpoint), or started from `params` when
    /// `state` is `None`: as [`crate::models::transformer::lm::CpuLmTrainer::resume`], on the GPU.
    pub fn resume(
        gpu: &Gpu,
        cfg: &crate::models::transformer::lm::LmConfig,
        data: crate::models::transformer::lm::TokenizedCorpus,
        params: TransformerParams,
        state: Option<crate::models::transformer::lm::OptimizerState>,
    ) -> Result<Self> {
        // The CPU trainer checks the config against the model and the data and skips the
        // batches already trained; its state is the GPU's starting point.
        let cpu = crate::models::transformer::lm::CpuLmTrainer::resume(cfg, data, params, state)?;
        let state = cpu.optimizer_state().clone();
        let (cfg, data, params, windows) = cpu.into_run();
        let model = GpuTransformer::new(gpu, &params)?;
        let grads = model.arena.mirror(gpu, "grads")?;
        let m = model.arena.mirror(gpu, "adam m")?;
        let v = model.arena.mirror(gpu, "adam v")?;
        for (i, t) in params.tensors.iter().enumerate() {
            m.write(gpu, &t.name, &state.m[i])?;
            v.write(gpu, &t.name, &state.v[i])?;
        }
        let words = crate::kernels::adam::adam_scratch_words(model.arena.layout().buffer_lens());
        let scratch = gpu.storage_zeroed::<f32>("adam scratch", words)?;
        Ok(Self {
            cfg,
            data,
            model,
            grads,
            m,
            v,
            scratch,
            windows,
            step: state.step,
        })
    }

    /// Times each kernel of the steps that follow on its own (natively; see
    /// [`Recorder::profile`]), or stops with `false`.
    pub fn profile(&mut self, on: bool) {
        self.model.recorder.profile(on);
    }

    /// What profiling has measured.
    pub fn profiled(&self) -> Option<&crate::gpu::recorder::Profile> {
        self.model.recorder.profiled()
    }

    /// The run's config, with the model's d_vocab set.
    pub fn config(&self) -> &crate::models::transformer::lm::LmConfig {
        &self.cfg
    }

    /// Steps done.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The tokenizer and tokens.
    pub fn data(&self) -> &crate::models::transformer::lm::TokenizedCorpus {
        &self.data
    }

    /// The parameters, read back by name.
    pub async fn params(&self) -> Result<TransformerParams> {
        let mut p = self.model.params.clone();
        for t in &mut p.tensors {
            t.values = self.model.arena.read(&self.model.gpu, &t.name).await?;
        }
        Ok(p)
    }

    /// Adam's moments and the step, read back by name (a checkpoint's optimiser state).
    pub async fn optimizer_state(&self) -> Result<crate::models::transformer::lm::OptimizerState> {
        let gpu = &self.model.gpu;
        let mut m = vec![];
        let mut v = vec![];
        for t in &self.model.params.tensors {
            m.push(self.m.read(gpu, &t.name).await?);
            v.push(self.v.read(gpu, &t.name).await?);
        }
        Ok(crate::models::transformer::lm::OptimizerState {
            step: self.step,
            m,
            v,
        })
    }

    /// The mean loss on the validation windows (the same windows as the CPU trainer's), run on
    /// the GPU in one batch.
    pub async fn validation_loss(&mut self) -> Result<f32> {
        let n_ctx = self.cfg.model.n_ctx as usize;
        let windows = self.cfg.eval_windows as usize;
        let mut w = crate::data::text::Windows::new(self.data.validation.len(), n_ctx, 0)?;
        let tokens: Vec<u32> = (0..windows)
            .flat_map(|_| w.next_batch(&self.data.validation, 1))
            .collect();
        self.model.loss(&tokens, windows).await
    }

    /// Trains one step; reads back the loss and the gradient's norm.
    pub async fn train_step(&mut self) -> Result<crate::models::transformer::lm::LmStep> {
        let batch = self.cfg.batch_size as usize;
        let tokens = self.windows.next_batch(&self.data.train, batch);
        let loss = self
            .model
            .loss_and_grad(&tokens, batch, &self.grads)
            .await?;
        if !loss.is_finite() {
            return Err(crate::EngineError::Diverged {
                step: self.step,
                instance: 0,
                value: loss.to_string(),
            });
        }
        let lr = self.cfg.schedule().rate(self.step);
        let tensors = self
            .model
            .arena
            .adam_tensors(&self.grads, &self.m, &self.v, &[])?;
        let step = crate::kernels::adam::AdamStep {
            cfg: self.cfg.adam(),
            lr,
            t: self.step + 1,
            max_norm: self.cfg.max_grad_norm,
        };
        let mut rec = self.model.recorder.begin();
        let scratch = Tensor::all("adam scratch", (&self.scratch).into())?;
        crate::kernels::adam::adam(&mut rec, &tensors, scratch, &step).await?;
        rec.submit_scoped().await?;
        let words =
            crate::kernels::adam::adam_scratch_words(self.model.arena.layout().buffer_lens());
        let norm2: Vec<f32> = self.model.gpu.read(&self.scratch, words).await?;
        self.step += 1;
        Ok(crate::models::transformer::lm::LmStep {
            step: self.step,
            loss,
            lr,
            grad_norm: norm2[words - 1].sqrt(),
        })
    }
}
