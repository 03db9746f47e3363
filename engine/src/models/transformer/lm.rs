//! The Transformer lab's run: corpus, tokenizer, model shape, AdamW, clipping and the
//! warm-up-then-cosine schedule, and the CPU reference trainer that runs it (the path without
//! WebGPU, and the reference the GPU trainer is checked against). Batches are n_ctx-token
//! windows drawn with the run's seed; validation loss is measured on a fixed set of windows of
//! the held-out text, the same at every evaluation and on every device.

use super::config::{Activation, TransformerConfig};
use super::cpu::forward;
use super::grad::{lm_loss, loss_and_grad};
use super::params::TransformerParams;
use crate::data::text::corpus::SHAKESPEARE_VALIDATION;
use crate::data::text::{Corpus, TextTokenizer, TokenizerKind, Windows};
use crate::error::{EngineError, Result};
use crate::experiment::preset::LabPreset;
use crate::rng::{fold_seed, rng_unit};
use crate::train::adam::{self, AdamConfig};
use crate::train::clip;
use crate::train::schedule::{Decay, Schedule};
use serde::{Deserialize, Serialize};

/// A language-model run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LmConfig {
    /// The model's shape; its `d_vocab` is the tokenizer's vocabulary size, set when the run
    /// starts.
    pub model: TransformerConfig,
    /// How the corpus becomes tokens.
    pub tokenizer: TokenizerKind,
    /// Windows per batch.
    pub batch_size: u32,
    /// Optimiser steps.
    pub steps: u32,
    /// Peak learning rate.
    pub learning_rate: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Adam's β₁.
    pub beta1: f32,
    /// Adam's β₂.
    pub beta2: f32,
    /// Steps of linear warm-up.
    pub warmup_steps: u32,
    /// The rate at the end of the cosine decay, as a fraction of the peak.
    pub final_lr_fraction: f32,
    /// Global gradient-norm limit (0: none).
    pub max_grad_norm: f32,
    /// Validation windows per evaluation.
    pub eval_windows: u32,
    /// Seed of the initialisation and the batches.
    pub seed: u64,
}

impl Default for LmConfig {
    /// A one-layer SoLU model on Shakespeare's characters that the CPU reference trains in
    /// about a minute.
    fn default() -> Self {
        Self {
            model: TransformerConfig {
                n_layers: 1,
                d_model: 64,
                n_heads: 4,
                d_head: 16,
                d_mlp: 256,
                n_ctx: 64,
                d_vocab: 0,
                ..TransformerConfig::default()
            },
            tokenizer: TokenizerKind::Char,
            batch_size: 8,
            steps: 300,
            learning_rate: 3e-3,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            warmup_steps: 30,
            final_lr_fraction: 0.1,
            max_grad_norm: 1.0,
            eval_windows: 16,
            seed: 0,
        }
    }
}

impl LmConfig {
    /// Every check before the corpus is read (the vocabulary is checked once the tokenizer
    /// exists).
    pub fn validate(&self) -> Result<()> {
        let model = TransformerConfig {
            d_vocab: self.model.d_vocab.max(1),
            ..self.model.clone()
        };
        model.validate()?;
        let positive = |field: &'static str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(EngineError::invalid(field, v, "must be a number above 0"))
            }
        };
        let fraction = |field: &'static str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(EngineError::invalid(field, v, "must be between 0 and 1"))
            }
        };
        positive("learning_rate", self.learning_rate)?;
        fraction("weight_decay", self.weight_decay)?;
        fraction("final_lr_fraction", self.final_lr_fraction)?;
        for (f, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(EngineError::invalid(f, v, "must be at least 0 and below 1"));
            }
        }
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return Err(EngineError::invalid(
                "max_grad_norm",
                self.max_grad_norm,
                "must be 0 (no clipping) or above",
            ));
        }
        for (f, v) in [
            ("batch_size", self.batch_size),
            ("steps", self.steps),
            ("eval_windows", self.eval_windows),
        ] {
            if v == 0 {
                return Err(EngineError::invalid(f, v, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Training FLOPs per token: 6 per parameter (forward and backward of every weight) plus the
    /// attention scores and mixing, 12 · layers · n_ctx · d_model (Kaplan et al. 2020). Counts
    /// the model's d_vocab as it is (set once the tokenizer exists).
    pub fn training_flops_per_token(&self) -> f64 {
        let m = &self.model;
        6.0 * m.parameter_count() as f64 + 12.0 * (m.n_layers * m.n_ctx * m.d_model) as f64
    }

    /// The optimiser's settings.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            weight_decay: self.weight_decay,
        }
    }

    /// The learning-rate schedule: warm-up, then cosine decay over the rest of the run.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            base: self.learning_rate,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            decay_fraction: 1.0 - (self.warmup_steps as f32 / self.steps as f32).min(1.0),
            decay: Decay::Cosine {
                final_fraction: self.final_lr_fraction,
            },
        }
    }
}

/// The lab's presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LmPreset {
    /// One SoLU layer on Shakespeare's characters: a first result in about a minute on the CPU.
    Tiny,
    /// Two models identical but for the MLP's activation (SoLU with its LayerNorm, and GeLU),
    /// same data order and seed, trained one after the other and compared on validation loss.
    SoluVsGelu,
    /// The benchmark's small size: 2 layers, d_model 128, n_ctx 128, a 2048-token BPE.
    Small,
}

impl LabPreset for LmPreset {
    const ALL: &'static [LmPreset] = &[LmPreset::Tiny, LmPreset::SoluVsGelu, LmPreset::Small];

    fn shows(self) -> &'static str {
        match self {
            LmPreset::Tiny => {
                "One small SoLU layer on Shakespeare's characters: the loss falls well below \
                 ln(vocabulary), a guess among all characters, and the samples pick up words, \
                 spaces and line breaks."
            }
            LmPreset::SoluVsGelu => {
                "The SoLU paper's question: two models identical but for the MLP's activation, \
                 on the same batches. The paper found SoLU (with its LayerNorm) within about \
                 0.01 nats of GeLU; compare the two held-out losses."
            }
            LmPreset::Small => {
                "Two layers, d_model 128, a 2048-token BPE: the benchmark's size, for a GPU \
                 (minutes on a fast one, much longer on a software one)."
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            LmPreset::Tiny => "tiny",
            LmPreset::SoluVsGelu => "solu-vs-gelu",
            LmPreset::Small => "small",
        }
    }
}

impl LmPreset {
    /// The runs it trains: one, or the SoLU and GeLU pair.
    pub fn runs(self) -> Vec<LmConfig> {
        match self {
            LmPreset::Tiny => vec![LmConfig::default()],
            LmPreset::SoluVsGelu => {
                let base = LmConfig {
                    steps: 400,
                    ..LmConfig::default()
                };
                [Activation::SoluLn, Activation::Gelu]
                    .into_iter()
                    .map(|act_fn| LmConfig {
                        model: TransformerConfig {
                            act_fn,
                            ..base.model.clone()
                        },
                        ..base.clone()
                    })
                    .collect()
            }
            LmPreset::Small => vec![LmConfig {
                model: TransformerConfig {
                    n_layers: 2,
                    d_model: 128,
                    n_heads: 4,
                    d_head: 32,
                    d_mlp: 512,
                    n_ctx: 128,
                    d_vocab: 0,
                    ..TransformerConfig::default()
                },
                tokenizer: TokenizerKind::Bpe { vocab_size: 2048 },
                batch_size: 16,
                steps: 2000,
                learning_rate: 1e-3,
                warmup_steps: 100,
                ..LmConfig::default()
            }],
        }
    }
}

/// Training and validation tokens, and the tokenizer that made them.
#[derive(Debug, Clone)]
pub struct TokenizedCorpus {
    /// The text's name ([`Corpus::name`]: `shakespeare`, or the file's), which checkpoints
    /// record so that a run resumes on the text it trained on.
    pub corpus: String,
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// Training tokens.
    pub train: Vec<u32>,
    /// Held-out tokens.
    pub validation: Vec<u32>,
}

impl TokenizedCorpus {
    /// Splits `corpus` (Shakespeare holds out Hamlet, The Tempest and the sonnets; a single file
    /// its last tenth of lines), builds the tokenizer (character-level over all the text, so
    /// validation has no unknown characters; BPE on the training text alone) and encodes both.
    pub fn new(corpus: &Corpus, kind: TokenizerKind) -> Result<Self> {
        let held_out: &[&str] = if corpus.works.len() > 1 {
            &SHAKESPEARE_VALIDATION
        } else {
            &[]
        };
        let split = corpus.split(held_out)?;
        let tokenizer = match kind {
            TokenizerKind::Char => {
                TextTokenizer::train(kind, &format!("{}{}", split.train, split.validation))?
            }
            TokenizerKind::Bpe { .. } => TextTokenizer::train(kind, &split.train)?,
        };
        Self::with_tokenizer(corpus, tokenizer)
    }

    /// As [`TokenizedCorpus::new`] with a given tokenizer (a checkpoint's).
    pub fn with_tokenizer(corpus: &Corpus, tokenizer: TextTokenizer) -> Result<Self> {
        let held_out: &[&str] = if corpus.works.len() > 1 {
            &SHAKESPEARE_VALIDATION
        } else {
            &[]
        };
        let split = corpus.split(held_out)?;
        Ok(Self {
            corpus: corpus.name.clone(),
            train: tokenizer.encode(&split.train)?,
            validation: tokenizer.encode(&split.validation)?,
            tokenizer,
        })
    }
}

/// One step's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LmStep {
    /// The step (1-based).
    pub step: u32,
    /// Training loss (nats per token).
    pub loss: f32,
    /// The learning rate used.
    pub lr: f32,
    /// The gradient's global norm before clipping.
    pub grad_norm: f32,
}

/// How to sample a continuation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Tokens to add.
    pub tokens: u32,
    /// Softmax temperature (0: always the most likely token).
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    pub top_k: u32,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            tokens: 200,
            temperature: 0.8,
            top_k: 20,
            seed: 0,
        }
    }
}

/// The training state a checkpoint holds besides the parameters: enough to continue a run
/// exactly where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// Steps done.
    pub step: u32,
    /// Adam's first moments, in parameter order.
    pub m: Vec<Vec<f32>>,
    /// Adam's second moments, in parameter order.
    pub v: Vec<Vec<f32>>,
}

/// Trains a language model on the CPU.
pub struct CpuLmTrainer {
    cfg: LmConfig,
    data: TokenizedCorpus,
    params: TransformerParams,
    state: OptimizerState,
    windows: Windows,
}

impl CpuLmTrainer {
    /// A fresh run on `corpus`: tokenizer, tokens, TransformerLens's initialisation.
    pub fn new(cfg: &LmConfig, corpus: &Corpus) -> Result<Self> {
        cfg.validate()?;
        let data = TokenizedCorpus::new(corpus, cfg.tokenizer)?;
        let model = TransformerConfig {
            d_vocab: data.tokenizer.vocab_size(),
            ..cfg.model.clone()
        };
        let params = TransformerParams::init(&model, cfg.seed)?;
        Self::resume(cfg, data, params, None)
    }

    /// A run continued from `params` and `state` (a checkpoint), or started from `params` when
    /// `state` is `None`; the batches continue where the run left them.
    pub fn resume(
        cfg: &LmConfig,
        data: TokenizedCorpus,
        params: TransformerParams,
        state: Option<OptimizerState>,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut cfg = cfg.clone();
        cfg.model.d_vocab = data.tokenizer.vocab_size();
        if params.cfg != cfg.model {
            return Err(EngineError::BadModel(format!(
                "the model's config ({:?}) differs from the run's ({:?})",
                params.cfg, cfg.model
            )));
        }
        let n_ctx = cfg.model.n_ctx as usize;
        Windows::new(data.validation.len(), n_ctx, 0)?;
        let mut windows = Windows::new(data.train.len(), n_ctx, cfg.seed)?;
        let state = state.unwrap_or_else(|| OptimizerState {
            step: 0,
            m: params
                .tensors
                .iter()
                .map(|t| vec![0.0; t.values.len()])
                .collect(),
            v: params
                .tensors
                .iter()
                .map(|t| vec![0.0; t.values.len()])
                .collect(),
        });
        // Skip the batches the run already trained on.
        for _ in 0..state.step {
            windows.next_batch(&data.train, cfg.batch_size as usize);
        }
        Ok(Self {
            cfg,
            data,
            params,
            state,
            windows,
        })
    }

    /// The run's config, with the model's d_vocab set.
    pub fn config(&self) -> &LmConfig {
        &self.cfg
    }

    /// The parameters.
    pub fn params(&self) -> &TransformerParams {
        &self.params
    }

    /// The tokenizer and tokens.
    pub fn data(&self) -> &TokenizedCorpus {
        &self.data
    }

    /// The run, its tokens and its parameters, for another trainer to start from (the GPU
    /// trainer starts where a fresh CPU run would).
    pub fn into_parts(self) -> (LmConfig, TokenizedCorpus, TransformerParams) {
        (self.cfg, self.data, self.params)
    }

    /// The run's config, tokens, parameters and batch order, for the GPU trainer to carry on.
    pub(crate) fn into_run(self) -> (LmConfig, TokenizedCorpus, TransformerParams, Windows) {
        (self.cfg, self.data, self.params, self.windows)
    }

    /// Adam's state and the step.
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.state
    }

    /// Steps done.
    pub fn step(&self) -> u32 {
        self.state.step
    }

    /// Trains one step.
    pub fn train_step(&mut self) -> Result<LmStep> {
        let batch = self.cfg.batch_size as usize;
        let tokens = self.windows.next_batch(&self.data.train, batch);
        let (loss, mut grads) = loss_and_grad(&self.params, &tokens, batch)?;
        let step = self.state.step;
        if !loss.is_finite() {
            return Err(EngineError::Diverged {
                step,
                instance: 0,
                value: loss.to_string(),
            });
        }
        let grad_norm = clip::clip(
            grads.iter_mut().map(|g| g.as_mut_slice()),
            self.cfg.max_grad_norm,
        );
        let lr = self.cfg.schedule().rate(step);
        let adam = self.cfg.adam();
        for (i, t) in self.params.tensors.iter_mut().enumerate() {
            adam::step(
                &adam,
                &mut t.values,
                &grads[i],
                &mut self.state.m[i],
                &mut self.state.v[i],
                lr,
                step + 1,
            );
        }
        self.state.step += 1;
        Ok(LmStep {
            step: self.state.step,
            loss,
            lr,
            grad_norm,
        })
    }

    /// The mean loss on the validation windows (the same windows every time).
    pub fn validation_loss(&self) -> Result<f32> {
        validation_loss(&self.params, &self.data.validation, self.cfg.eval_windows)
    }

    /// A continuation of `prompt`.
    pub fn sample(&self, prompt: &str, opts: &SampleOptions) -> Result<String> {
        sample(&self.params, &self.data.tokenizer, prompt, opts)
    }
}

/// The mean next-token loss over `windows` fixed windows of `tokens` (drawn with seed 0, so
/// every evaluation and every device measures the same text).
pub fn validation_loss(params: &TransformerParams, tokens: &[u32], windows: u32) -> Result<f32> {
    let n_ctx = params.cfg.n_ctx as usize;
    let mut w = Windows::new(tokens.len(), n_ctx, 0)?;
    let mut total = 0f64;
    for _ in 0..windows {
        let batch = w.next_batch(tokens, 1);
        let (logits, _) = forward(params, &batch, 1, &|_| false)?;
        total += lm_loss(&logits, &batch, 1, params.cfg.d_vocab as usize).0 as f64;
    }
    Ok((total / windows as f64) as f32)
}

/// Samples a continuation of `prompt` token by token (the context is its last n_ctx tokens):
/// logits divided by the temperature, the top k kept, one draw from the seeded generator.
pub fn sample(
    params: &TransformerParams,
    tokenizer: &TextTokenizer,
    prompt: &str,
    opts: &SampleOptions,
) -> Result<String> {
    let mut ids = tokenizer.encode(prompt)?;
    if ids.is_empty() {
        return Err(EngineError::invalid(
            "prompt",
            "",
            "must hold at least one token",
        ));
    }
    let start = ids.len();
    let n_ctx = params.cfg.n_ctx as usize;
    let v = params.cfg.d_vocab as usize;
    let seed = fold_seed(opts.seed) ^ 0x5a4e_0001;
    for i in 0..opts.tokens {
        let ctx = &ids[ids.len().saturating_sub(n_ctx)..];
        let (logits, _) = forward(params, ctx, 1, &|_| false)?;
        let last = &logits[(ctx.len() - 1) * v..ctx.len() * v];
        let next = if opts.temperature <= 0.0 {
            argmax(last)
        } else {
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
            let k = if opts.top_k == 0 {
                v
            } else {
                (opts.top_k as usize).min(v)
            };
            let top = &order[..k];
            let max = last[top[0]];
            let weights: Vec<f64> = top
                .iter()
                .map(|&t| (((last[t] - max) / opts.temperature) as f64).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut u = rng_unit(seed, i, 0, 0) as f64 * total;
            let mut pick = top[k - 1];
            for (w, &t) in weights.iter().zip(top) {
                if u < *w {
                    pick = t;
                    break;
                }
                u -= w;
            }
            pick
        };
        ids.push(next as u32);
    }
    tokenizer.decode(&ids[start..])
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small text of repeated lines, for tests that train on something.
    pub(crate) fn small_corpus() -> Corpus {
        let text: String = (0..200)
            .map(|i| format!("the cat sat on the mat {}\n", i % 7))
            .collect();
        Corpus::from_file("cats.txt", text.as_bytes()).unwrap()
    }

    /// A one-layer model small enough to train a few steps in a test.
    pub(crate) fn tiny() -> LmConfig {
        LmConfig {
            model: TransformerConfig {
                n_layers: 1,
                d_model: 16,
                n_heads: 2,
                d_head: 8,
                d_mlp: 32,
                n_ctx: 16,
                ..TransformerConfig::default()
            },
            batch_size: 4,
            steps: 60,
            learning_rate: 1e-2,
            warmup_steps: 5,
            eval_windows: 4,
            ..LmConfig::default()
        }
    }

    #[test]
    fn the_cpu_reference_learns_and_samples() {
        let mut t = CpuLmTrainer::new(&tiny(), &small_corpus()).unwrap();
        let before = t.validation_loss().unwrap();
        let first = t.train_step().unwrap();
        let mut last = first;
        for _ in 1..60 {
            last = t.train_step().unwrap();
        }
        let after = t.validation_loss().unwrap();
        assert!(last.loss < 0.6 * first.loss, "{first:?} → {last:?}");
        assert!(after < 0.6 * before, "validation {before} → {after}");
        assert_eq!(
            t.validation_loss().unwrap(),
            after,
            "evaluation is deterministic"
        );
        let greedy = SampleOptions {
            tokens: 12,
            temperature: 0.0,
            ..SampleOptions::default()
        };
        let s = t.sample("the cat", &greedy).unwrap();
        assert_eq!(s.chars().count(), 12);
        assert_eq!(s, t.sample("the cat", &greedy).unwrap());
        assert!(t.sample("", &greedy).is_err());
    }

    #[test]
    fn presets_are_valid_and_the_pair_differs_only_in_activation() {
        for &p in LmPreset::ALL {
            assert_eq!(LmPreset::from_name(p.name()).unwrap(), p);
            for r in p.runs() {
                r.validate().unwrap();
            }
        }
        let pair = LmPreset::SoluVsGelu.runs();
        assert_eq!(pair.len(), 2);
        let mut same = pair[1].clone();
        same.model.act_fn = pair[0].model.act_fn;
        assert_eq!(same, pair[0]);
        assert!(LmPreset::from_name("huge").is_err());
    }

    /// The GPU trainer's losses follow the CPU reference's over the first steps (the same
    /// batches and initialisation; sums in other orders drift slowly).
    async fn gpu_matches_cpu(gpu: &crate::gpu::Gpu) {
        let cfg = tiny();
        let mut cpu = CpuLmTrainer::new(&cfg, &small_corpus()).unwrap();
        let mut g = super::super::gpu::GpuLmTrainer::new(gpu, &cfg, &small_corpus()).unwrap();
        for _ in 0..8 {
            let (a, b) = (cpu.train_step().unwrap(), g.train_step().await.unwrap());
            assert_eq!(a.step, b.step);
            assert_eq!(a.lr, b.lr);
            assert!((a.loss - b.loss).abs() < 1e-3 * a.loss, "{a:?} vs {b:?}");
            assert!(
                (a.grad_norm - b.grad_norm).abs() < 1e-2 * a.grad_norm,
                "{a:?} vs {b:?}"
            );
        }
    }
    crate::gpu_test!(gpu_training_follows_the_cpu_reference, gpu_matches_cpu);

    #[test]
    fn resuming_continues_with_the_same_losses() {
        let cfg = tiny();
        let mut whole = CpuLmTrainer::new(&cfg, &small_corpus()).unwrap();
        let all: Vec<LmStep> = (0..10).map(|_| whole.train_step().unwrap()).collect();
        let mut first = CpuLmTrainer::new(&cfg, &small_corpus()).unwrap();
        for _ in 0..6 {
            first.train_step().unwrap();
        }
        let data = TokenizedCorpus::new(&small_corpus(), cfg.tokenizer).unwrap();
        let mut second = CpuLmTrainer::resume(
            &cfg,
            data,
            first.params().clone(),
            Some(first.optimizer_state().clone()),
        )
        .unwrap();
        let rest: Vec<LmStep> = (0..4).map(|_| second.train_step().unwrap()).collect();
        assert_eq!(rest, all[6..]);
    }

    #[test]
    fn a_diverging_run_names_the_step_and_bad_fields_are_named() {
        let mut cfg = tiny();
        cfg.learning_rate = 1e30;
        cfg.max_grad_norm = 0.0;
        cfg.warmup_steps = 0;
        let mut t = CpuLmTrainer::new(&cfg, &small_corpus()).unwrap();
        let err = (0..20)
            .find_map(|_| t.train_step().err())
            .expect("diverges")
            .to_string();
        assert!(err.contains("diverged at step"), "{err}");
        let mut bad = tiny();
        bad.beta2 = 1.0;
        assert!(bad.validate().unwrap_err().to_string().contains("beta2"));
        let mut long = tiny();
        long.model.n_ctx = 4000;
        let err = CpuLmTrainer::new(&long, &small_corpus())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("n_ctx = 4000"), "{err}");
    }
}
