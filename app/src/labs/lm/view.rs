//! What the Transformer page keeps of a run: each model's training and validation curves, its
//! latest sample, the speed, and the latest look inside a prompt.

use super::update::LmUpdate;
use crate::protocol::{FromWorker, ModelView};
use crate::run_controller::{History, RunEvent};
use mechlab_engine::models::transformer::link::LmExperiment;
use mechlab_engine::models::transformer::lm::LmConfig;

/// One model's record.
#[derive(Debug, Clone, Default)]
pub struct ModelRecord {
    /// Mean training loss per chunk.
    pub train: History<f32>,
    /// Validation loss when measured.
    pub validation: History<f32>,
    /// The latest live sample.
    pub sample: Option<String>,
    /// The last step's gradient norm and learning rate.
    pub grad_norm: f32,
    /// The last step's learning rate.
    pub lr: f32,
}

/// The page's record of the current run.
#[derive(Debug, Clone, Default)]
pub struct LmRun {
    /// The models' runs.
    pub runs: Vec<LmConfig>,
    /// Per model, in run order.
    pub models: Vec<ModelRecord>,
    /// Steps every model has trained.
    pub step: u32,
    /// The adapter (or CPU) that trains.
    pub adapter: String,
    /// Tokens per second over the models, smoothed.
    pub tokens_per_sec: f64,
    /// Training FLOP/s over the models, smoothed.
    pub flops_per_sec: f64,
    /// How the text became tokens.
    pub data: Option<String>,
}

impl LmRun {
    fn apply(&mut self, runs: &[LmConfig], step: u32, adapter: String, rate: f64, u: LmUpdate) {
        if self.runs.as_slice() != runs {
            self.runs = runs.to_vec();
        }
        self.models
            .resize_with(u.models.len(), ModelRecord::default);
        self.step = step;
        self.adapter = adapter;
        self.tokens_per_sec = rate * u.tokens_per_step;
        self.flops_per_sec = rate * u.flops_per_step;
        if u.data.is_some() {
            self.data = u.data;
        }
        for (rec, m) in self.models.iter_mut().zip(u.models) {
            rec.train.push(step, m.loss);
            if let Some(v) = m.validation {
                rec.validation.push(step, v);
            }
            if m.sample.is_some() {
                rec.sample = m.sample;
            }
            rec.grad_norm = m.grad_norm;
            rec.lr = m.lr;
        }
    }

    /// Each model's name: its activation.
    pub fn names(&self) -> Vec<&'static str> {
        self.runs.iter().map(|r| r.model.act_fn.name()).collect()
    }

    /// Each model's latest validation loss.
    pub fn last_validation(&self) -> Vec<Option<f32>> {
        self.models
            .iter()
            .map(|m| m.validation.points.last().copied())
            .collect()
    }
}

/// The latest answers to the page's requests.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    /// The models seen through the prompt, or why not.
    pub inspection: Option<Result<Vec<ModelView>, String>>,
    /// A saved archive: the step and the bytes, or why not.
    pub checkpoint: Option<(u32, Result<Vec<u8>, String>)>,
}

/// Applies a runner event to the page's record; `None` clears it.
pub fn on_run_event(run: &mut Option<LmRun>, replies: &mut Replies, ev: RunEvent) {
    match ev {
        RunEvent::Cleared => {
            *run = None;
            *replies = Replies::default();
        }
        RunEvent::Progress(e, p) => {
            let figures = e.get::<LmExperiment>().zip(p.update.figures::<LmUpdate>());
            if let Some((e, u)) = figures {
                run.get_or_insert_with(LmRun::default).apply(
                    &e.runs(),
                    p.step,
                    p.adapter,
                    p.steps_per_sec,
                    u,
                );
            }
        }
        RunEvent::Reply(FromWorker::Inspection { models, .. }) => {
            replies.inspection = Some(models);
        }
        RunEvent::Reply(FromWorker::Checkpoint { step, archive, .. }) => {
            replies.checkpoint = Some((step, archive.map(|b| b.into_vec())));
        }
        RunEvent::Reply(_) => {}
    }
}
