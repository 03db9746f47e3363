//! The worker's SAE lab: the job's runs trained one after another (one run, or a frontier
//! sweep), each on WebGPU or, without it, on the CPU reference when small enough. Each chunk
//! reports the mean loss; an evaluation (metrics, density histogram, latent table) follows
//! every second or so of training and at the end of each run, with the run's frontier point.

use mechlab_engine::experiment::frontier::FrontierPoint;
use mechlab_engine::gpu::Gpu;
use mechlab_engine::io::saelens;
use mechlab_engine::models::sae::arch::Loss;
use mechlab_engine::models::sae::config::SaeConfig;
use mechlab_engine::models::sae::trainer::SaeTrainer;
use mechlab_engine::models::sae::SaeLab;
use mechlab_engine::train::cadence::{Cadence, TENTHS_COST_RATIO};
use mechlab_engine::EngineError;

use super::update::SaeUpdate;
use crate::protocol::{Job, Update};
use crate::worker::work::{LabJob, LabWork, Opened};
use mechlab_engine::data::LocalFuture;
use mechlab_engine::models::sae::link::SaeExperiment;
use mechlab_engine::train::engine::{place, Adapter, EngineChoice};
use mechlab_engine::train::lab::Lab;

/// Largest `batch × d_in × d_sae` (multiply-adds of one matmul of a step) the CPU fallback
/// takes on: about a tenth of a second a step in wasm.
pub const CPU_FALLBACK_LIMIT: u64 = 20_000_000;
/// Inputs a live evaluation measures.
const LIVE_EVAL_SAMPLES: usize = 1024;
/// Inputs the evaluation at the end of a run measures.
const FINAL_EVAL_SAMPLES: usize = 4096;
/// Training time between live evaluations.
const EVAL_EVERY_MS: f64 = 1500.0;

/// A job's runs and the one training now.
pub struct SaeWork {
    runs: Vec<SaeConfig>,
    index: usize,
    trainer: Option<SaeTrainer>,
    gpu: Option<Gpu>,
    /// Live evaluations: by training time, and at tenths of the run they can afford.
    eval: Cadence,
}

/// Checks every run and settles where they train (see [`place`]); trainers open as each
/// run starts.
pub async fn open(
    runs: &[SaeConfig],
    engine: EngineChoice,
    gpu: Adapter,
) -> Result<Opened<SaeWork>, String> {
    let Some(first) = runs.first() else {
        return Err("the job has no runs".into());
    };
    for cfg in runs {
        cfg.validate().map_err(|e| e.to_string())?;
    }
    let (cfg, cost) = runs
        .iter()
        .map(|c| (c, cpu_cost(c)))
        .max_by_key(|p| p.1)
        .expect("runs is not empty");
    let cpu_too_large = (cost > CPU_FALLBACK_LIMIT).then(|| {
        format!(
            "this run needs WebGPU: batch × d_in × d_sae = {cost} ({} × {} × {}) is more than the \
             CPU reference's {CPU_FALLBACK_LIMIT} in a browser tab; shrink the batch or the \
             dictionary",
            cfg.batch_size,
            cfg.d_in(),
            cfg.d_sae
        )
    });
    let placement = place(&SaeLab::request(engine, cpu_too_large, "WebGPU"), &gpu)?;
    let gpu = placement.chosen(&gpu).cloned();
    let adapter = placement.runs_on;
    // A step costs a few matmuls of batch × d_in × d_sae; the loop corrects the guess at once.
    let work = cpu_cost(first).max(1) as f64;
    let chunk = if gpu.is_some() {
        2e7 / work
    } else {
        5e6 / work
    };
    Ok(Opened {
        work: SaeWork {
            runs: runs.to_vec(),
            index: 0,
            trainer: None,
            gpu,
            eval: Cadence::new(EVAL_EVERY_MS, Some(TENTHS_COST_RATIO)),
        },
        adapter,
        chunk: chunk.clamp(1.0, 20.0),
        max_chunk: 1000.0,
        start: 0,
    })
}

impl LabJob for SaeWork {
    type Experiment = SaeExperiment;

    async fn open(e: &SaeExperiment, job: &Job, gpu: Adapter) -> Result<Opened<Self>, String> {
        let runs = e.runs().map_err(|e| e.to_string())?;
        open(&runs, job.engine, gpu).await
    }
}

impl LabWork for SaeWork {
    fn advance(
        &mut self,
        n: u32,
        chunk_ms: f64,
        _: u32,
    ) -> LocalFuture<'_, Result<(u32, Update), EngineError>> {
        Box::pin(self.chunk(n, chunk_ms))
    }

    fn overhead(&mut self, chunk_ms: f64) -> LocalFuture<'_, Result<(f64, f64), EngineError>> {
        Box::pin(self.measure_overhead(chunk_ms))
    }
}

impl SaeWork {
    /// Trains up to `n` steps of the current run (fewer when it ends first); returns the steps
    /// trained and the chunk's update.
    async fn chunk(&mut self, n: u32, chunk_ms: f64) -> Result<(u32, Update), EngineError> {
        let index = self.index;
        let cfg = self.runs[index].clone();
        self.open_trainer(&cfg).await?;
        let t = self.trainer.as_mut().expect("opened above");
        let reports = t.run_steps(n).await?;
        let trained = reports.len() as u32;
        let mut loss = Loss::default();
        let mut l0 = 0.0;
        for r in &reports {
            loss.reconstruction += r.loss.reconstruction;
            loss.sparsity += r.loss.sparsity;
            loss.auxiliary += r.loss.auxiliary;
            l0 += r.l0;
        }
        let count = trained.max(1) as f32;
        loss.reconstruction /= count;
        loss.sparsity /= count;
        loss.auxiliary /= count;
        let run_step = t.step();
        let done = run_step >= cfg.steps;
        let due = self.eval.due(chunk_ms, (run_step, cfg.steps), trained);
        let (evaluation, saelens) = if done {
            let (e, params) = t.evaluate_with_params(FINAL_EVAL_SAMPLES).await?;
            let files = saelens::to_saelens(&params, &cfg, saelens::SOURCE_HOOK_NAME)?;
            (Some(e), Some(files))
        } else if due {
            let t0 = js_sys::Date::now();
            let e = t.evaluate(LIVE_EVAL_SAMPLES).await?;
            self.eval.done(js_sys::Date::now() - t0);
            (Some(e), None)
        } else {
            (None, None)
        };
        let finished = match (&evaluation, done) {
            (Some(e), true) => Some(FrontierPoint::new(&cfg, &e.metrics)),
            _ => None,
        };
        if done {
            // The next run starts from a fresh trainer; this one's buffers go now.
            self.trainer = None;
            self.index += 1;
        }
        Ok((
            trained,
            Update::new(&SaeUpdate {
                index: index as u32,
                run_step,
                loss,
                l0: l0 / count,
                evaluation,
                finished,
                saelens,
            })?,
        ))
    }

    /// What the job pays besides training, measured once on the run now training: the share
    /// of its time live evaluations take, and the milliseconds every run's final evaluation
    /// and SAELens files add (a sweep's runs are taken to cost alike).
    async fn measure_overhead(&mut self, chunk_ms: f64) -> Result<(f64, f64), EngineError> {
        let Some(cfg) = self.runs.get(self.index).cloned() else {
            // The measured chunks trained the whole job, evaluations and all.
            return Ok((0.0, 0.0));
        };
        // Where the measured chunks ended a run, its successor measures as well.
        self.open_trainer(&cfg).await?;
        let t = self.trainer.as_mut().expect("opened above");
        let t0 = js_sys::Date::now();
        t.evaluate(LIVE_EVAL_SAMPLES).await?;
        let live = js_sys::Date::now() - t0;
        let t1 = js_sys::Date::now();
        let (_, params) = t.evaluate_with_params(FINAL_EVAL_SAMPLES).await?;
        saelens::to_saelens(&params, &cfg, saelens::SOURCE_HOOK_NAME)?;
        let end = js_sys::Date::now() - t1;
        Ok((
            self.eval.share(live, chunk_ms),
            end * self.runs.len() as f64,
        ))
    }

    /// Opens the trainer of the run `cfg` describes (the current one) unless it is open, with
    /// its evaluation timers reset, whichever of `advance` and `overhead` comes first.
    async fn open_trainer(&mut self, cfg: &SaeConfig) -> Result<(), EngineError> {
        if self.trainer.is_none() {
            self.trainer = Some(SaeLab::open(self.gpu.as_ref(), cfg, ()).await?);
            self.eval.reset();
        }
        Ok(())
    }
}

/// Multiply-adds of one of a step's matmuls: `batch × d_in × d_sae`.
pub fn cpu_cost(cfg: &SaeConfig) -> u64 {
    cfg.batch_size as u64 * cfg.d_in() as u64 * cfg.d_sae as u64
}
