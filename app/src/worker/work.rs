//! What trains in the worker, per lab: each lab's work as it opened ([`Opened`]), and the one
//! face the worker's loops drive it through ([`Work`]).

use mechlab_engine::experiment::lab::Experiment;
use mechlab_engine::EngineError;

use super::adapter::gpu;
use super::run_loop::Session;
use super::{lm, sae, toy};
use crate::protocol::{FromWorker, Job, ToWorker, Update};

/// A lab's trainer as opened, with where it runs and the loop's first chunk size.
pub(super) struct Opened<W> {
    pub(super) work: W,
    pub(super) adapter: String,
    /// Steps in the first chunk.
    pub(super) chunk: f64,
    /// The most steps a chunk may grow to.
    pub(super) max_chunk: f64,
    /// Steps already trained (a run continued from a checkpoint).
    pub(super) start: u32,
}

/// What trains, per lab.
pub(super) enum Work {
    Toy(toy::ToyWork),
    Sae(Box<sae::SaeWork>),
    Lm(Box<lm::LmWork>),
}

impl Work {
    /// Trains up to `n` steps of a `total`-step job; returns how many it trained and the
    /// chunk's update.
    pub(super) async fn advance(
        &mut self,
        n: u32,
        last_chunk_ms: f64,
        total: u32,
    ) -> Result<(u32, Update), EngineError> {
        match self {
            Work::Toy(w) => w.advance(n).await,
            Work::Sae(w) => w.advance(n, last_chunk_ms).await,
            Work::Lm(w) => w.advance(n, last_chunk_ms, total).await,
        }
    }

    /// The share of a run's time spent besides training (evaluations, samples) and the
    /// milliseconds its end adds, for the estimate: measured where a lab has such work (the
    /// toy lab's measures come with every chunk, so its timed chunks hold them already).
    pub(super) async fn overhead(&mut self, chunk_ms: f64) -> Result<(f64, f64), EngineError> {
        match self {
            Work::Lm(w) => w.overhead(chunk_ms).await,
            Work::Sae(w) => w.overhead(chunk_ms).await,
            Work::Toy(_) => Ok((0.0, 0.0)),
        }
    }

    /// Answers one of the page's requests about the run (not a training command).
    pub(super) async fn serve(&mut self, run: u32, step: u32, req: ToWorker) -> FromWorker {
        let Work::Lm(w) = self else {
            return FromWorker::Error {
                run,
                message: "this lab's runs answer no requests".into(),
            };
        };
        match req {
            ToWorker::Inspect(r) => FromWorker::Inspection {
                run,
                models: w.inspect(r).await.map_err(|e| e.to_string()),
            },
            _ => FromWorker::Checkpoint {
                run,
                step,
                archive: w
                    .save()
                    .await
                    .map(serde_bytes::ByteBuf::from)
                    .map_err(|e| e.to_string()),
            },
        }
    }
}

/// The share of a run's time taken by work costing `cost_ms` that follows a chunk (of
/// `chunk_ms`) once `every_ms` of training has passed since it last ran: after every chunk when
/// a chunk outlasts that.
pub(super) fn periodic_share(cost_ms: f64, every_ms: f64, chunk_ms: f64) -> f64 {
    cost_ms / every_ms.max(cost_ms + chunk_ms)
}

/// Opens the job's trainer on the worker's GPU, or on the CPU when there is none.
pub(super) async fn open(run: u32, job: &Job) -> Result<Session, String> {
    let gpu = gpu().await;
    let experiment = job.experiment()?;
    let (work, adapter, chunk, max_chunk, start) = match &experiment {
        Experiment::Superposition(cfg) => {
            let o = toy::open(cfg, job.engine, gpu).await?;
            (Work::Toy(o.work), o.adapter, o.chunk, o.max_chunk, o.start)
        }
        Experiment::Sae(..) => {
            let runs = experiment.sae_runs().map_err(|e| e.to_string())?;
            let o = sae::open(&runs, job.engine, gpu).await?;
            (
                Work::Sae(Box::new(o.work)),
                o.adapter,
                o.chunk,
                o.max_chunk,
                o.start,
            )
        }
        Experiment::Lm(e) => {
            let o = lm::open(&e.runs(), job, gpu).await?;
            (
                Work::Lm(Box::new(o.work)),
                o.adapter,
                o.chunk,
                o.max_chunk,
                o.start,
            )
        }
    };
    Ok(Session {
        run,
        work,
        total: experiment.total_steps(),
        adapter,
        step: start,
        chunk,
        max_chunk,
        rate: None,
        elapsed_ms: 0.0,
        last_chunk_ms: 0.0,
    })
}
