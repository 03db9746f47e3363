//! What a Transformer chunk tells the page (the worker's [`super::work`] sends it, the page's
//! view reads it), as [`crate::protocol::Update`] carries it.

use serde::{Deserialize, Serialize};

/// A chunk of language-model training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmUpdate {
    /// Per model, in run order.
    pub models: Vec<LmModelUpdate>,
    /// How the text became tokens, in the run's first update.
    pub data: Option<String>,
    /// Tokens a step trains, all models together.
    pub tokens_per_step: f64,
    /// Training FLOPs a step, all models together.
    pub flops_per_step: f64,
}

/// One model's chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmModelUpdate {
    /// Mean training loss over the chunk (nats per token).
    pub loss: f32,
    /// The last step's gradient norm before clipping.
    pub grad_norm: f32,
    /// The last step's learning rate.
    pub lr: f32,
    /// Loss on the held-out windows, when measured this chunk.
    pub validation: Option<f32>,
    /// A continuation of the sample prompt, now and then.
    pub sample: Option<String>,
}
