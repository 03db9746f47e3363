//! The messages between the page and its training worker, one module for both sides.
//!
//! Both directions travel through `postMessage` as plain JS values made by `serde-wasm-bindgen`
//! (externally tagged: `{ Progress: { run, step, … } }`). Unlike JSON text, that keeps the NaN
//! a loss takes for an instance that did not run, and the infinite `dims_per_feature` of an
//! all-zero `W`, exactly as they are.
//!
//! A run is named by the page's `run` counter: the worker stamps everything about a run with it,
//! and the page drops what comes from a run it has since restarted or reset. Messages arrive in
//! the order they were posted, in both directions.

use mechlab_engine::experiment::superposition::SuperpositionConfig;
use mechlab_engine::metrics::superposition::SuperpositionMetrics;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

/// The file the page starts the worker from (`app/mechlab-worker-loader.js`, copied by trunk
/// next to the worker's own `mechlab-worker.js` and `mechlab-worker_bg.wasm`).
pub const WORKER_LOADER: &str = "./mechlab-worker-loader.js";

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Train `cfg` from scratch as run `run`, dropping any run in progress or paused.
    Start {
        /// The page's id for this run.
        run: u32,
        /// What to train.
        cfg: SuperpositionConfig,
    },
    /// Stop after the current chunk; the worker answers [`FromWorker::Paused`].
    Pause,
    /// Carry on with the paused run.
    Resume,
    /// Drop the run (its trainer and its GPU buffers).
    Reset,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's wasm is running and listening. Anything posted to it before this would be
    /// lost (the listener did not exist yet), so the page holds its messages until then.
    Ready,
    /// The backend the worker found, as the page shows it: `WebGPU: <adapter>` or
    /// `CPU (no WebGPU: <why>)`.
    Backend {
        /// The line for `#backend`.
        description: String,
        /// Whether runs train on WebGPU.
        webgpu: bool,
    },
    /// A chunk of training finished.
    Progress(Box<Progress>),
    /// The run stopped at a chunk boundary after [`ToWorker::Pause`]; nothing trains until
    /// [`ToWorker::Resume`]. Posted after the run's last [`FromWorker::Progress`].
    Paused {
        /// The run.
        run: u32,
        /// Steps trained.
        step: u32,
    },
    /// Every step trained.
    Done {
        /// The run.
        run: u32,
        /// Steps trained.
        step: u32,
        /// Milliseconds spent training, pauses excluded.
        elapsed_ms: f64,
    },
    /// The run failed (bad config, diverged, GPU error) and is dropped.
    Error {
        /// The run.
        run: u32,
        /// What went wrong, for `#error`.
        message: String,
    },
    /// The worker panicked and is unusable; the page starts a fresh one for the next run.
    Crashed {
        /// The panic message.
        message: String,
    },
}

/// Where a run stands after a chunk: everything the charts draw except the loss history, which
/// the page accumulates from `losses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The run.
    pub run: u32,
    /// Steps trained.
    pub step: u32,
    /// Each instance's mean loss over the chunk.
    pub losses: Vec<f32>,
    /// All parameters, flat, instance-major (`W` then `b` per instance).
    pub params: Vec<f32>,
    /// Each instance's measures of superposition, computed in the worker.
    pub metrics: Vec<SuperpositionMetrics>,
    /// The adapter (or "CPU") that trains.
    pub adapter: String,
    /// Smoothed training speed, for the ETA.
    pub steps_per_sec: f64,
}

impl ToWorker {
    /// As a JS value for `postMessage`.
    pub fn to_js(&self) -> Result<JsValue, String> {
        serde_wasm_bindgen::to_value(self).map_err(|e| e.to_string())
    }

    /// From a received message's `data`.
    pub fn from_js(v: JsValue) -> Result<Self, String> {
        serde_wasm_bindgen::from_value(v).map_err(|e| e.to_string())
    }
}

impl FromWorker {
    /// As a JS value for `postMessage`.
    pub fn to_js(&self) -> Result<JsValue, String> {
        serde_wasm_bindgen::to_value(self).map_err(|e| e.to_string())
    }

    /// From a received message's `data`.
    pub fn from_js(v: JsValue) -> Result<Self, String> {
        serde_wasm_bindgen::from_value(v).map_err(|e| e.to_string())
    }
}
