//! The training loop every architecture shares: input scaling and `b_dec` initialisation from a
//! sample, the learning-rate and sparsity-coefficient schedules, gradient clipping, Adam, the
//! TopK family's unit-norm decoder, dead-latent tracking and BatchTopK's threshold estimate.
//!
//! [`CpuSaeTrainer`] runs it on the CPU reference; the GPU trainer follows the same schedule
//! functions and is tested against it.

use super::arch::{self, min_positive, Ctx, Loss};
use super::config::{Architecture, SaeConfig};
use super::params::{geometric_median, mean, SaeParams};
use crate::data::{self as source, ActivationSource, ShuffleBuffer};
use crate::error::{EngineError, Result};
use crate::metrics::sae::{
    self as metrics, density_histogram, latent_table, FiringTracker, LatentRow, SaeMetrics,
    DENSE_DENSITY,
};
use crate::train::adam::{self, AdamConfig};
use crate::train::clip;
use crate::train::schedule::{self, Decay, Schedule};
use serde::{Deserialize, Serialize};

/// The optimiser's settings (Adam, β₁ 0.9, β₂ 0.999, ε 1e-8, no weight decay).
pub const ADAM: AdamConfig = AdamConfig::DEFAULT;
/// Rate of BatchTopK's running threshold estimate.
pub const THRESHOLD_RATE: f32 = 0.01;
/// Inputs drawn at the start to set the input scale and `b_dec`.
pub const INIT_SAMPLES: usize = 4096;
/// The dead-latent window for architectures that do not configure one.
pub const DEFAULT_DEAD_TOKENS: u64 = 100_000;

/// The learning rate at `step`: linear warm-up, constant, then linear decay to 0 over the last
/// `lr_decay_fraction` of the run.
pub fn learning_rate(cfg: &SaeConfig, step: u32) -> f32 {
    Schedule {
        base: cfg.learning_rate,
        warmup_steps: cfg.lr_warmup_steps,
        total_steps: cfg.steps,
        decay_fraction: cfg.lr_decay_fraction,
        decay: Decay::Linear,
    }
    .rate(step)
}

/// The sparsity coefficient at `step`, warmed up linearly from 0.
pub fn sparsity_coefficient(arch: &Architecture, step: u32) -> f32 {
    let (value, warmup) = match *arch {
        Architecture::ReluL1 {
            l1_coefficient,
            l1_warmup_steps,
        }
        | Architecture::Gated {
            l1_coefficient,
            l1_warmup_steps,
        } => (l1_coefficient, l1_warmup_steps),
        Architecture::JumpRelu {
            l0_coefficient,
            l0_warmup_steps,
            ..
        } => (l0_coefficient, l0_warmup_steps),
        _ => return 0.0,
    };
    value * schedule::warmup(step, warmup)
}

/// Tokens without firing after which a latent counts as dead.
pub fn dead_tokens(arch: &Architecture) -> u64 {
    match *arch {
        Architecture::TopK { dead_tokens, .. } | Architecture::BatchTopK { dead_tokens, .. } => {
            dead_tokens as u64
        }
        _ => DEFAULT_DEAD_TOKENS,
    }
}

/// Draws the initial sample and returns the initial parameters (with the input scale).
pub fn initial_params(cfg: &SaeConfig, source: &mut dyn ActivationSource) -> Result<SaeParams> {
    let d = source.d_in();
    if d != cfg.d_in() as usize {
        return Err(EngineError::invalid(
            "source",
            d,
            format!(
                "the source gives {d}-dimensional activations, the SAE expects {}",
                cfg.d_in()
            ),
        ));
    }
    let n = INIT_SAMPLES.max(cfg.batch_size as usize);
    let mut sample = vec![0f32; n * d];
    source.next_batch(&mut sample);
    if sample.iter().any(|v| !v.is_finite()) {
        return Err(EngineError::invalid(
            "source",
            "non-finite activations",
            "the source produced NaN or infinite values",
        ));
    }
    let scale = if cfg.normalize_activations {
        let mean_norm = sample
            .chunks_exact(d)
            .map(|r| r.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt())
            .sum::<f64>()
            / n as f64;
        if mean_norm > 0.0 {
            ((d as f64).sqrt() / mean_norm) as f32
        } else {
            1.0
        }
    } else {
        1.0
    };
    sample.iter_mut().for_each(|v| *v *= scale);
    let b_dec = if cfg.b_dec_geometric_median {
        geometric_median(&sample, d, 30)
    } else {
        mean(&sample, d)
    };
    Ok(SaeParams::init(cfg, b_dec, scale))
}

/// One training step's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps completed, this one included.
    pub step: u32,
    /// The loss by term.
    pub loss: Loss,
    /// The learning rate used.
    pub lr: f32,
    /// Mean active latents per input in the training batch.
    pub l0: f32,
}

/// The outcome of an evaluation: metrics and the latent table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Every metric.
    pub metrics: SaeMetrics,
    /// One row per latent.
    pub latents: Vec<LatentRow>,
}

/// Each trained tensor's learning rate as a multiple of the shared one, in
/// [`super::params::TRAINED_TENSORS`] order: 1 except JumpReLU's log θ.
pub fn learning_rate_scales(arch: &Architecture) -> [f32; 7] {
    let mut scales = [1.0; 7];
    if let Architecture::JumpRelu {
        threshold_lr_scale, ..
    } = *arch
    {
        scales[super::params::LOG_THRESHOLD] = threshold_lr_scale;
    }
    scales
}

/// Adam's moments, shaped like the parameters, and each tensor's learning-rate scale.
#[derive(Debug, Clone)]
pub struct Adam {
    m: SaeParams,
    v: SaeParams,
    scales: [f32; 7],
}

impl Adam {
    /// Zero moments for `p`.
    pub fn new(p: &SaeParams, arch: &Architecture) -> Self {
        let z = SaeParams::zeros(p.d_in, p.d_sae, arch);
        Self {
            m: z.clone(),
            v: z,
            scales: learning_rate_scales(arch),
        }
    }

    /// One update with gradient `g` at 1-based step `t`.
    pub fn update(&mut self, p: &mut SaeParams, g: &SaeParams, lr: f32, t: u32) {
        let gs = g.tensors();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let tensors = p.tensors_mut().into_iter().zip(gs).zip(ms).zip(vs);
        for ((((pt, gt), mt), vt), scale) in tensors.zip(self.scales) {
            adam::step(&ADAM, pt, gt, mt, vt, lr * scale, t);
        }
    }
}

/// Removes from each decoder row's gradient its component along the (unit) row, so a step
/// moves the row around the sphere rather than off it.
pub fn project_decoder_gradient(p: &SaeParams, g: &mut SaeParams) {
    let d = p.d_in;
    for (w, gw) in p.w_dec.chunks_exact(d).zip(g.w_dec.chunks_exact_mut(d)) {
        let along = arch::dot(w, gw);
        for (gv, wv) in gw.iter_mut().zip(w) {
            *gv -= along * wv;
        }
    }
}

/// Scales decoder rows back to unit norm.
pub fn normalize_decoder(p: &mut SaeParams) {
    for row in p.w_dec.chunks_exact_mut(p.d_in) {
        let n = arch::dot(row, row).sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

/// Scales the gradient so its global norm is at most `max_norm` (0: no clipping); returns the
/// norm before clipping.
pub fn clip_gradient(g: &mut SaeParams, max_norm: f32) -> f32 {
    clip::clip(g.tensors_mut().into_iter().map(Vec::as_mut_slice), max_norm)
}

/// BatchTopK's running estimate of the smallest kept activation.
pub fn update_batch_threshold(p: &mut SaeParams, f: &[f32]) {
    if let Some(m) = min_positive(f) {
        p.batch_threshold = if p.batch_threshold > 0.0 {
            (1.0 - THRESHOLD_RATE) * p.batch_threshold + THRESHOLD_RATE * m
        } else {
            m
        };
    }
}

/// Trains an SAE on the CPU reference implementation.
pub struct CpuSaeTrainer {
    cfg: SaeConfig,
    source: Box<dyn ActivationSource>,
    params: SaeParams,
    adam: Adam,
    tracker: FiringTracker,
    step: u32,
    batch: Vec<f32>,
    /// The pool batches are drawn from, when the config mixes them.
    shuffle: Option<ShuffleBuffer>,
}

impl CpuSaeTrainer {
    /// Validates the config, builds its source and initialises the SAE.
    pub fn new(cfg: &SaeConfig) -> Result<Self> {
        cfg.validate()?;
        let source = source::build(&cfg.source, cfg.seed)?;
        Self::with_source(cfg, source)
    }

    /// Trains on a given source (its d_in must match the config's).
    pub fn with_source(cfg: &SaeConfig, mut source: Box<dyn ActivationSource>) -> Result<Self> {
        cfg.validate()?;
        let params = initial_params(cfg, source.as_mut())?;
        let b = cfg.batch_size as usize;
        let shuffle = cfg
            .shuffle_pool_rows()
            .map(|rows| ShuffleBuffer::new(source.as_mut(), rows, b, cfg.seed));
        Ok(Self {
            adam: Adam::new(&params, &cfg.architecture),
            tracker: FiringTracker::new(cfg.d_sae as usize, dead_tokens(&cfg.architecture)),
            batch: vec![0.0; b * params.d_in],
            shuffle,
            params,
            source,
            cfg: cfg.clone(),
            step: 0,
        })
    }

    /// The config it trains.
    pub fn config(&self) -> &SaeConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The parameters (trained on scaled inputs; see [`SaeParams::folded`]).
    pub fn params(&self) -> &SaeParams {
        &self.params
    }

    /// The source, for its ground truth and description.
    pub fn source(&self) -> &dyn ActivationSource {
        self.source.as_ref()
    }

    /// Replaces the parameters (an imported SAE to fine-tune, or a test's chosen start); they
    /// must have this config's shapes.
    pub fn set_params(&mut self, p: SaeParams) -> Result<()> {
        check_shapes(&self.params, &p)?;
        self.params = p;
        Ok(())
    }

    /// One step: a batch (straight from the source, or drawn from the shuffle pool), the loss
    /// and gradient, clipping, Adam, and the bookkeeping.
    pub fn step_once(&mut self) -> Result<StepReport> {
        let cfg = &self.cfg;
        let b = cfg.batch_size as usize;
        match &mut self.shuffle {
            Some(pool) => pool.next_batch(self.source.as_mut(), &mut self.batch),
            None => self.source.next_batch(&mut self.batch),
        }
        let s = self.params.input_scale;
        self.batch.iter_mut().for_each(|v| *v *= s);
        let dead = self.tracker.dead_mask(dead_tokens(&cfg.architecture));
        let ctx = Ctx {
            x: &self.batch,
            batch: b,
            coefficient: sparsity_coefficient(&cfg.architecture, self.step),
            dead: &dead,
            k_aux: cfg.k_aux() as usize,
        };
        let mut g = SaeParams::zeros(self.params.d_in, self.params.d_sae, &cfg.architecture);
        let (loss, pass) = arch::train_loss(
            &cfg.architecture,
            &self.params,
            &self.params,
            &ctx,
            Some(&mut g),
        );
        if !loss.total().is_finite() {
            return Err(EngineError::Diverged {
                step: self.step,
                instance: 0,
                value: loss.total().to_string(),
            });
        }
        let unit = cfg.architecture.unit_norm_decoder();
        if unit {
            project_decoder_gradient(&self.params, &mut g);
        }
        clip_gradient(&mut g, cfg.max_grad_norm);
        let lr = learning_rate(cfg, self.step);
        self.adam.update(&mut self.params, &g, lr, self.step + 1);
        if unit {
            normalize_decoder(&mut self.params);
        }
        if matches!(cfg.architecture, Architecture::BatchTopK { .. }) {
            update_batch_threshold(&mut self.params, &pass.f);
        }
        self.tracker.record(&pass.f, b);
        self.step += 1;
        Ok(StepReport {
            step: self.step,
            loss,
            lr,
            l0: pass.f.iter().filter(|&&v| v != 0.0).count() as f32 / b as f32,
        })
    }

    /// Runs `n` steps (fewer if the run ends), returning each step's report.
    pub fn run_steps(&mut self, n: u32) -> Result<Vec<StepReport>> {
        let n = n.min(self.cfg.steps.saturating_sub(self.step));
        (0..n).map(|_| self.step_once()).collect()
    }

    /// Metrics on `samples` fresh inputs, with the latent table.
    pub fn evaluate(&mut self, samples: usize) -> Evaluation {
        evaluate(
            &self.cfg,
            self.step,
            &self.params,
            self.source.as_mut(),
            &self.tracker,
            samples,
        )
    }
}

/// Refuses parameters whose tensors differ in length from `like`'s.
pub fn check_shapes(like: &SaeParams, p: &SaeParams) -> Result<()> {
    for ((name, a), b) in super::params::TRAINED_TENSORS
        .iter()
        .zip(like.tensors())
        .zip(p.tensors())
    {
        if a.len() != b.len() {
            return Err(EngineError::invalid(
                "parameters",
                format!("{name} of {} numbers", b.len()),
                format!("this SAE's {name} has {}", a.len()),
            ));
        }
    }
    Ok(())
}

/// Evaluates `params` on `samples` fresh inputs from `source` with the training tracker's
/// latent health (shared by the CPU and GPU trainers).
pub fn evaluate(
    cfg: &SaeConfig,
    step: u32,
    params: &SaeParams,
    source: &mut dyn ActivationSource,
    tracker: &FiringTracker,
    samples: usize,
) -> Evaluation {
    let d = params.d_in;
    let mut x = vec![0f32; samples * d];
    source.next_batch(&mut x);
    x.iter_mut().for_each(|v| *v *= params.input_scale);
    let f = arch::encode(&cfg.architecture, params, &x, samples);
    let x_hat = arch::decode(params, &f, samples);
    let truth = source
        .true_features()
        .map(|t| metrics::match_ground_truth(&params.w_dec, t, d));
    let truth = truth.as_ref();
    let latents = latent_table(&f, samples, truth);
    // Before the tracker has seen a full dead window, the evaluation batch's densities are the
    // better estimate.
    let density: Vec<f64> = if tracker.window_tokens == 0 && tracker.last_density.is_empty() {
        latents.iter().map(|l| l.density as f64).collect()
    } else {
        tracker.density()
    };
    let n = cfg.d_sae as f32;
    let dead = tracker
        .dead_mask(dead_tokens(&cfg.architecture))
        .iter()
        .filter(|&&d| d)
        .count();
    Evaluation {
        metrics: SaeMetrics {
            step,
            reconstruction: metrics::reconstruction(&x, &x_hat, &f, samples),
            fraction_dead: dead as f32 / n,
            fraction_dense: density.iter().filter(|&&d| d > DENSE_DENSITY).count() as f32 / n,
            density_histogram: density_histogram(&density),
            ground_truth: truth.map(Into::into),
            ce_loss_recovered: None,
        },
        latents,
    }
}
