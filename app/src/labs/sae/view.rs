//! What the SAE page keeps of a run: the job's configs, the current run's curves and latest
//! evaluation, and the frontier points of the runs that finished.

use std::sync::Arc;

use super::update::SaeUpdate;
use crate::run_controller::{History, RunEvent};
use mechlab_engine::experiment::frontier::FrontierPoint;
use mechlab_engine::io::saelens::SaeLensFiles;
use mechlab_engine::models::sae::arch::Loss;
use mechlab_engine::models::sae::config::SaeConfig;
use mechlab_engine::models::sae::link::SaeExperiment;
use mechlab_engine::models::sae::train::Evaluation;
use serde::Serialize;

/// A chunk's training figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Mean loss by term.
    pub loss: Loss,
    /// Mean active latents per input in the training batches.
    pub l0: f32,
}

/// An evaluation's headline figures, for the quality curves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalPoint {
    /// `‖x̂ − x‖² / ‖x‖²`.
    pub normalized_mse: f32,
    /// Fraction of variance explained.
    pub explained_variance: f32,
    /// Fraction of latents dead.
    pub fraction_dead: f32,
    /// Fraction of latents firing on more than a tenth of inputs.
    pub fraction_dense: f32,
    /// Mean max cosine similarity to the true features (ground truth only).
    pub mmcs: Option<f32>,
    /// Fraction of true features recovered (ground truth only).
    pub recovered: Option<f32>,
}

impl EvalPoint {
    fn of(e: &Evaluation) -> Self {
        let m = &e.metrics;
        Self {
            normalized_mse: m.reconstruction.normalized_mse,
            explained_variance: m.reconstruction.explained_variance,
            fraction_dead: m.fraction_dead,
            fraction_dense: m.fraction_dense,
            mmcs: m.ground_truth.map(|g| g.mmcs),
            recovered: m
                .ground_truth
                .map(|g| g.recovered as f32 / g.n_true.max(1) as f32),
        }
    }
}

/// The page's record of the current job.
#[derive(Debug, Clone, Default)]
pub struct SaeRun {
    /// The job's runs (one, or a frontier sweep's).
    pub runs: Vec<SaeConfig>,
    /// The run training now (or the last, once all are done).
    pub index: usize,
    /// Steps the current run has trained.
    pub run_step: u32,
    /// The current run's training curve, by its own step.
    pub curve: History<CurvePoint>,
    /// The current run's evaluations, by its own step.
    pub evals: History<EvalPoint>,
    /// The current run's latest evaluation.
    pub latest: Option<Arc<Evaluation>>,
    /// The finished runs' frontier points, in order.
    pub points: Vec<FrontierPoint>,
    /// The adapter (or "CPU") that trains.
    pub adapter: String,
    /// The last finished run's SAE in SAELens's layout, with its config.
    pub saelens: Option<(SaeConfig, Arc<SaeLensFiles>)>,
}

impl SaeRun {
    /// The config of the run training now.
    pub fn current(&self) -> Option<&SaeConfig> {
        self.runs.get(self.index)
    }

    /// Whether the job is a sweep (the frontier chart applies).
    pub fn is_sweep(&self) -> bool {
        self.runs.len() > 1
    }

    fn apply(&mut self, runs: &[SaeConfig], adapter: String, u: SaeUpdate) {
        if self.runs.as_slice() != runs {
            self.runs = runs.to_vec();
        }
        let index = u.index as usize;
        if index != self.index {
            // A new run of the sweep: its curves start afresh.
            self.curve = History::default();
            self.evals = History::default();
            self.latest = None;
        }
        self.index = index;
        self.run_step = u.run_step;
        self.adapter = adapter;
        self.curve.push(
            u.run_step,
            CurvePoint {
                loss: u.loss,
                l0: u.l0,
            },
        );
        if let Some(e) = u.evaluation {
            self.evals.push(u.run_step, EvalPoint::of(&e));
            self.latest = Some(Arc::new(e));
        }
        if let Some(p) = u.finished {
            self.points.push(p);
        }
        if let Some(files) = u.saelens {
            self.saelens = Some((runs[index].clone(), Arc::new(files)));
        }
    }
}

/// Applies a runner event to the page's record; `None` clears it.
pub fn on_run_event(run: &mut Option<SaeRun>, ev: RunEvent) {
    match ev {
        RunEvent::Cleared => *run = None,
        RunEvent::Progress(e, p) => {
            let runs = e.get::<SaeExperiment>().and_then(|e| e.runs().ok());
            if let Some((runs, u)) = runs.zip(p.update.figures::<SaeUpdate>()) {
                run.get_or_insert_with(SaeRun::default)
                    .apply(&runs, p.adapter, u);
            }
        }
        RunEvent::Reply(_) => {}
    }
}
