//! What an SAE chunk tells the page (the worker's [`super::work`] sends it, the page's view
//! reads it), as [`crate::protocol::Update`] carries it.

use mechlab_engine::experiment::frontier::FrontierPoint;
use mechlab_engine::io::saelens::SaeLensFiles;
use mechlab_engine::models::sae::arch::Loss;
use mechlab_engine::models::sae::train::Evaluation;
use serde::{Deserialize, Serialize};

/// A chunk of SAE training: the curve's next point, an evaluation now and then, and the
/// frontier point of a run that just finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeUpdate {
    /// Which of the job's runs trained (a frontier trains several, one after another).
    pub index: u32,
    /// Steps that run has trained.
    pub run_step: u32,
    /// The chunk's mean loss by term.
    pub loss: Loss,
    /// The chunk's mean active latents per input.
    pub l0: f32,
    /// A fresh evaluation of the run, when one was made this chunk (every second or so of
    /// training, and at the end of each run).
    pub evaluation: Option<Evaluation>,
    /// The run's point on the frontier, when this chunk finished it.
    pub finished: Option<FrontierPoint>,
    /// The trained SAE in SAELens's layout, when this chunk finished the run.
    pub saelens: Option<SaeLensFiles>,
}
