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

use mechlab_engine::experiment::lab::Experiment;
use mechlab_engine::models::transformer::inspect::Inspection;
use mechlab_engine::models::transformer::lm::SampleOptions;
use mechlab_engine::train::engine::EngineChoice;
use mechlab_engine::EngineError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use wasm_bindgen::JsValue;

/// The file the page starts the worker from (`app/mechlab-worker-loader.js`, copied by trunk
/// next to the worker's own `mechlab-worker.js` and `mechlab-worker_bg.wasm`).
pub const WORKER_LOADER: &str = "./mechlab-worker-loader.js";

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Train `job` from scratch as run `run`, dropping any run in progress or paused.
    Start {
        /// The page's id for this run.
        run: u32,
        /// What to train.
        job: Job,
    },
    /// Stop after the current chunk; the worker answers [`FromWorker::Paused`].
    Pause,
    /// Carry on with the paused run.
    Resume,
    /// Drop the run (its trainer and its GPU buffers).
    Reset,
    /// Look inside the run's models (Transformer lab): attention patterns, next-token
    /// distribution and a sample for `prompt`; the sample settings also serve the samples that
    /// come during training. Answered by [`FromWorker::Inspection`] between chunks.
    Inspect(SampleRequest),
    /// Save the run's models as a checkpoint archive; answered by [`FromWorker::Checkpoint`].
    Save,
    /// Measure how fast `job` trains on this device without keeping anything: open it, train a
    /// step (compiling the kernels), then time a chunk of about a real chunk's length. Answered
    /// by [`FromWorker::Estimate`]; dropped when a run starts meanwhile or a newer one comes.
    Calibrate {
        /// The page's id for this measurement.
        id: u32,
        /// What Run would train.
        job: Job,
    },
}

/// How fast a job trains on this device, measured by [`ToWorker::Calibrate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Steps a second over the timed chunk.
    pub steps_per_sec: f64,
    /// Steps timed.
    pub measured_steps: u32,
}

/// A prompt and how to continue it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRequest {
    /// The text to continue and to look inside.
    pub prompt: String,
    /// Tokens, temperature, top-k and seed.
    pub options: SampleOptions,
}

/// The prompt samples continue until the user gives another: how the corpus's plays name a
/// speaker.
pub const DEFAULT_PROMPT: &str = "ROMEO.\n";

impl Default for SampleRequest {
    fn default() -> Self {
        Self {
            prompt: DEFAULT_PROMPT.into(),
            options: SampleOptions::default(),
        }
    }
}

/// A file the user gave: its name and bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserFile {
    /// The file's name.
    pub name: String,
    /// Its bytes (a `Uint8Array` across `postMessage`).
    pub bytes: ByteBuf,
}

/// What a run trains: a lab's experiment as its link says it, and what stays out of links
/// (where it trains, the user's files). The worker decodes the link with the lab's own codec
/// ([`Experiment::decode`]), as the page and the CLI do, so no lab's config crosses here typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The experiment's link fragment (`v=1&lab=…&…`).
    pub link: String,
    /// Where it trains.
    pub engine: EngineChoice,
    /// The text to train on, for labs that train on text; Shakespeare when `None`.
    pub corpus: Option<UserFile>,
    /// A checkpoint archive to continue from: one folder per run, in order.
    pub checkpoint: Option<UserFile>,
    /// Open the run and wait, paused, without training (a checkpoint opened to look inside).
    pub paused: bool,
    /// The samples during training, for labs that sample.
    pub sample: Option<SampleRequest>,
}

impl Job {
    /// A job for an experiment's link, trained where `engine` says, with nothing else.
    pub fn new(link: String, engine: EngineChoice) -> Self {
        Self {
            link,
            engine,
            corpus: None,
            checkpoint: None,
            paused: false,
            sample: None,
        }
    }

    /// The experiment its link describes.
    pub fn experiment(&self) -> Result<Experiment, String> {
        Experiment::decode(&self.link).map_err(|e| e.to_string())
    }

    /// Steps the whole job trains (0 for a link that does not decode).
    pub fn total_steps(&self) -> u32 {
        self.experiment().map_or(0, |e| e.total_steps())
    }
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
    /// The run's models seen through a prompt, in run order, or why they could not be.
    Inspection {
        /// The run.
        run: u32,
        /// Per model, or the error.
        models: Result<Vec<ModelView>, String>,
    },
    /// The run's models saved as one checkpoint archive, or why they could not be.
    Checkpoint {
        /// The run.
        run: u32,
        /// Steps the models had trained.
        step: u32,
        /// The zip archive, one folder per model.
        archive: Result<ByteBuf, String>,
    },
    /// The answer to [`ToWorker::Calibrate`]: the speed, or why the job cannot train here.
    Estimate {
        /// The measurement's id.
        id: u32,
        /// The speed, or the error opening or training the job gave.
        speed: Result<Speed, String>,
    },
    /// The worker panicked and is unusable; the page starts a fresh one for the next run.
    Crashed {
        /// The panic message.
        message: String,
    },
}

/// Where a run stands after a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The run.
    pub run: u32,
    /// Steps trained over the whole job.
    pub step: u32,
    /// The adapter (or "CPU") that trains.
    pub adapter: String,
    /// Smoothed training speed, for the ETA.
    pub steps_per_sec: f64,
    /// The lab's own figures.
    pub update: Update,
}

/// A chunk's figures, in the lab's own type (`labs/<lab>/update.rs`), carried as the JS value
/// `serde-wasm-bindgen` makes of it: a lab's figures need no variant here, and the page's lab
/// reads them back with [`Update::read`] as it knows its run's experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update(#[serde(with = "serde_wasm_bindgen::preserve")] JsValue);

impl Update {
    /// A lab's figures, for [`Progress::update`].
    pub fn new<T: Serialize>(figures: &T) -> Result<Self, EngineError> {
        serde_wasm_bindgen::to_value(figures)
            .map(Self)
            .map_err(|e| {
                EngineError::BadConfig(format!("a chunk's figures did not serialize: {e}"))
            })
    }

    /// The figures as the lab's own type; an error names what did not fit (a chunk of another
    /// lab's run).
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_wasm_bindgen::from_value(self.0.clone())
            .map_err(|e| format!("a chunk's figures did not read as this lab's: {e}"))
    }

    /// [`Update::read`] for a page: figures that do not read (a bug, never the user's input)
    /// are reported on the console and the chunk is skipped.
    pub fn figures<T: DeserializeOwned>(&self) -> Option<T> {
        self.read()
            .map_err(|e| web_sys::console::error_1(&e.into()))
            .ok()
    }
}

/// A model seen through a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// Tokens, attention patterns and the next-token distribution.
    pub inspection: Inspection,
    /// A continuation of the prompt.
    pub sample: String,
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
