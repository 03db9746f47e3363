//! What trains in the worker: the one face the worker's loops drive every lab's work through
//! ([`LabWork`]), each lab's work as it opened ([`Opened`]), and [`open`], which finds the
//! job's lab in [`crate::labs::LABS`]. Each lab's work lives in its folder (`labs/<lab>/work.rs`).

use mechlab_engine::data::LocalFuture;
use mechlab_engine::experiment::lab::{Experiment, LabExperiment};
use mechlab_engine::EngineError;
use std::future::Future;

use super::adapter::gpu;
use super::run_loop::Session;
use crate::labs::LABS;
use crate::protocol::{FromWorker, Job, ToWorker, Update};
use mechlab_engine::train::engine::Adapter;

/// A lab's trainer as opened, with where it runs and the loop's first chunk size.
pub struct Opened<W> {
    /// What trains.
    pub work: W,
    /// Where it trains, as the page shows it.
    pub adapter: String,
    /// Steps in the first chunk.
    pub chunk: f64,
    /// The most steps a chunk may grow to.
    pub max_chunk: f64,
    /// Steps already trained (a run continued from a checkpoint).
    pub start: u32,
}

impl<W: LabWork + 'static> Opened<W> {
    /// The work behind the one face.
    pub fn boxed(self) -> Opened<Work> {
        Opened {
            work: Box::new(self.work),
            adapter: self.adapter,
            chunk: self.chunk,
            max_chunk: self.max_chunk,
            start: self.start,
        }
    }
}

/// How a lab opens a job in the worker (its [`crate::labs::LabPage::open`], which is
/// [`open_as`] for the lab's work): the job's experiment, the job, and the worker's GPU.
pub type OpenWork =
    for<'a> fn(&'a Experiment, &'a Job, Adapter) -> LocalFuture<'a, Result<Opened<Work>, String>>;

/// A lab's work as the worker opens it, from the lab's own experiment.
pub trait LabJob: LabWork + Sized + 'static {
    /// The lab's experiment, which its jobs' links decode to.
    type Experiment: LabExperiment;

    /// Opens the job's trainer where the job's engine choice and the device put it.
    fn open<'a>(
        e: &'a Self::Experiment,
        job: &'a Job,
        gpu: Adapter,
    ) -> impl Future<Output = Result<Opened<Self>, String>> + 'a;
}

/// Opens `W` for a job: takes the lab's experiment out of the job's (an error names both labs
/// when it is another's), then puts the work behind the one face.
pub fn open_as<'a, W: LabJob>(
    e: &'a Experiment,
    job: &'a Job,
    gpu: Adapter,
) -> LocalFuture<'a, Result<Opened<Work>, String>> {
    Box::pin(async move {
        let e = e.expect::<W::Experiment>().map_err(|e| e.to_string())?;
        Ok(W::open(e, job, gpu).await?.boxed())
    })
}

/// What trains in the worker for one lab, as the worker's loops drive it: each lab's
/// `labs/<lab>/work.rs` implements it, and [`open`] is the one place that picks the lab.
pub trait LabWork {
    /// Trains up to `n` steps of a `total`-step job (`last_chunk_ms`, how long the last chunk
    /// took, paces work that runs every so often); returns how many it trained and the chunk's
    /// update.
    fn advance(
        &mut self,
        n: u32,
        last_chunk_ms: f64,
        total: u32,
    ) -> LocalFuture<'_, Result<(u32, Update), EngineError>>;

    /// The share of a run's time spent besides training (evaluations, samples) and the
    /// milliseconds its end adds, for the estimate. None by default: a lab whose measures come
    /// with every chunk has them in its timed chunks already.
    fn overhead(&mut self, _chunk_ms: f64) -> LocalFuture<'_, Result<(f64, f64), EngineError>> {
        Box::pin(async { Ok((0.0, 0.0)) })
    }

    /// Answers one of the page's requests about the run (not a training command); by default,
    /// that the lab answers none.
    fn serve(&mut self, run: u32, _step: u32, _req: ToWorker) -> LocalFuture<'_, FromWorker> {
        Box::pin(async move {
            FromWorker::Error {
                run,
                message: "this lab's runs answer no requests".into(),
            }
        })
    }
}

/// A lab's work, whichever lab.
pub type Work = Box<dyn LabWork>;

/// Opens the job's trainer on the worker's GPU, or on the CPU when there is none.
pub(super) async fn open(run: u32, job: &Job) -> Result<Session, String> {
    let gpu = gpu().await;
    let experiment = job.experiment()?;
    let lab = LABS
        .iter()
        .find(|l| l.name == experiment.lab())
        .ok_or_else(|| format!("the app has no page for the {} lab", experiment.lab()))?;
    let Opened {
        work,
        adapter,
        chunk,
        max_chunk,
        start,
    } = (lab.open)(&experiment, job, gpu).await?;
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
