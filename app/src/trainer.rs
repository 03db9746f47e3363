//! The run loop: trains on WebGPU (or the CPU reference for small configs) in short chunks on the
//! page's event loop, publishing progress and weights to signals after every chunk.
//!
//! Nothing here blocks: GPU work is awaited, CPU chunks are sized to about a tenth of a second,
//! and every chunk ends by yielding to the browser so clicks and repaints get through.

use std::sync::Arc;

use leptos::prelude::*;
use mechlab_engine::experiment::superposition::{InstanceSpec, SuperpositionConfig};
use mechlab_engine::gpu::Gpu;
use mechlab_engine::metrics::superposition::{superposition_metrics, SuperpositionMetrics};
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::GpuToyTrainer;
use mechlab_engine::models::toy::{unflatten, InstanceWeights};
use mechlab_engine::EngineError;
use wasm_bindgen::JsCast;

/// Largest `instances × params × batch` the CPU fallback takes on; beyond it a chunk of even one
/// step would freeze the page.
pub const CPU_FALLBACK_LIMIT: u64 = 2_000_000;
/// Wall time one chunk should take: long enough to amortise readback, short enough to stay live.
const TARGET_CHUNK_MS: f64 = 100.0;
/// The loss curve keeps at most this many points per instance, thinning older ones by half.
const MAX_HISTORY: usize = 1200;

/// Where a run stands; the label is what `#status` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing trained yet (or reset).
    Idle,
    /// A chunk loop is live.
    Running,
    /// Stopped after a chunk; resumable.
    Paused,
    /// All steps trained.
    Done,
    /// The run failed; the message is in the runner's `error`.
    Error,
}

impl Status {
    /// The word `#status` shows.
    pub fn label(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Done => "done",
            Status::Error => "error",
        }
    }
}

/// The weights and measures after the latest chunk: everything the charts draw except the loss
/// curves.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The config being trained.
    pub cfg: SuperpositionConfig,
    /// Its instances, in training order.
    pub specs: Vec<InstanceSpec>,
    /// Steps trained.
    pub step: u32,
    /// All parameters, flat, instance-major.
    pub params: Vec<f32>,
    /// Each instance's `W` and `b`.
    pub weights: Vec<InstanceWeights>,
    /// Each instance's measures of superposition.
    pub metrics: Vec<SuperpositionMetrics>,
    /// Each instance's mean loss over the latest chunk.
    pub last_loss: Vec<f32>,
    /// The adapter (or "CPU") the run uses.
    pub adapter: String,
}

/// Loss curves: one row of per-instance mean losses per recorded chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossHistory {
    /// The step at the end of each recorded chunk.
    pub steps: Vec<u32>,
    /// `loss[point][instance]`.
    pub loss: Vec<Vec<f32>>,
}

impl LossHistory {
    fn push(&mut self, step: u32, loss: Vec<f32>) {
        self.steps.push(step);
        self.loss.push(loss);
        if self.steps.len() > MAX_HISTORY {
            // Keep every other point: the curve keeps its shape and the cost stays bounded.
            let keep = |i: &usize| i % 2 == 1 || *i + 1 == self.steps.len();
            let idx: Vec<usize> = (0..self.steps.len()).filter(keep).collect();
            self.steps = idx.iter().map(|&i| self.steps[i]).collect();
            self.loss = idx
                .iter()
                .map(|&i| std::mem::take(&mut self.loss[i]))
                .collect();
        }
    }
}

/// The two ways to train.
enum Trainer {
    Gpu(Box<GpuToyTrainer>),
    Cpu(CpuToyTrainer),
}

impl Trainer {
    async fn run_steps(&mut self, n: u32) -> Result<Vec<f32>, EngineError> {
        match self {
            Trainer::Gpu(t) => t.run_steps(n).await.map(|r| r.mean_loss),
            Trainer::Cpu(t) => {
                let loss = t.run_steps(n);
                t.check_diverged()?;
                Ok(loss)
            }
        }
    }

    async fn params(&self) -> Result<Vec<f32>, EngineError> {
        match self {
            Trainer::Gpu(t) => t.params_flat().await,
            Trainer::Cpu(t) => Ok(t.params().to_vec()),
        }
    }
}

/// A trainer and the loop's bookkeeping, parked here while paused.
struct Session {
    trainer: Trainer,
    cfg: SuperpositionConfig,
    specs: Vec<InstanceSpec>,
    adapter: String,
    step: u32,
    /// Steps per chunk, kept fractional so small corrections add up instead of rounding away.
    chunk: f64,
    max_chunk: f64,
    /// Smoothed steps per second, for the ETA.
    rate: Option<f64>,
    /// Milliseconds spent training (pauses excluded).
    elapsed_ms: f64,
}

enum GpuState {
    Unknown,
    Probing,
    /// The device and the name the page shows for it.
    Ready(Box<Gpu>, String),
    Missing(String),
}

struct Inner {
    /// Bumped by every start and reset; a loop whose generation is stale drops its trainer.
    generation: u64,
    pause: bool,
    loop_live: bool,
    session: Option<Session>,
    gpu: GpuState,
}

/// The page's training controller: signals the UI reads, and the state behind Run, Pause, Reset.
#[derive(Clone, Copy)]
pub struct Runner {
    /// Where the run stands.
    pub status: RwSignal<Status>,
    /// Steps trained.
    pub step: RwSignal<u32>,
    /// Steps the current run trains in total (0 before a run).
    pub total: RwSignal<u32>,
    /// "ETA 12 s" while running, the run time when done.
    pub eta: RwSignal<String>,
    /// The latest run error, shown in `#error`.
    pub error: RwSignal<Option<String>>,
    /// The backend line shown in `#backend`.
    pub backend: RwSignal<String>,
    /// Weights and measures after the latest chunk.
    pub snapshot: RwSignal<Option<Arc<Snapshot>>>,
    /// Loss curves so far.
    pub history: RwSignal<LossHistory>,
    inner: StoredValue<Inner, LocalStorage>,
}

impl Runner {
    /// A runner with nothing trained; call inside the app's owner.
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Idle),
            step: RwSignal::new(0),
            total: RwSignal::new(0),
            eta: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            backend: RwSignal::new("checking for WebGPU…".into()),
            snapshot: RwSignal::new(None),
            history: RwSignal::new(LossHistory::default()),
            inner: StoredValue::new_local(Inner {
                generation: 0,
                pause: false,
                loop_live: false,
                session: None,
                gpu: GpuState::Unknown,
            }),
        }
    }

    /// Looks for WebGPU now, so the backend line is right before the first run.
    pub fn probe(self) {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = self.gpu().await;
        });
    }

    /// The page's one GPU and its name, opened on first use; the error is why there is none.
    async fn gpu(self) -> Result<(Gpu, String), String> {
        loop {
            let state = self.inner.with_value(|i| match &i.gpu {
                GpuState::Unknown => None,
                GpuState::Probing => Some(None),
                GpuState::Ready(g, name) => Some(Some(Ok((Gpu::clone(g), name.clone())))),
                GpuState::Missing(why) => Some(Some(Err(why.clone()))),
            });
            match state {
                Some(Some(done)) => return done,
                Some(None) => sleep_ms(20).await,
                None => break,
            }
        }
        self.inner.update_value(|i| i.gpu = GpuState::Probing);
        let result = Gpu::new().await;
        let (state, out, line) = match result {
            Ok(g) => {
                let name = adapter_label(&g).await;
                let line = format!("WebGPU: {name}");
                (
                    GpuState::Ready(Box::new(g.clone()), name.clone()),
                    Ok((g, name)),
                    line,
                )
            }
            Err(e) => {
                let why = match e {
                    // wgpu's message lists every native backend it was built without; the
                    // browser case has one simple cause.
                    EngineError::NoAdapter(_) if !has_navigator_gpu() => {
                        "this browser has no WebGPU".to_string()
                    }
                    EngineError::NoAdapter(_) => {
                        "the browser offered no WebGPU adapter".to_string()
                    }
                    e => e.to_string(),
                };
                (
                    GpuState::Missing(why.clone()),
                    Err(why.clone()),
                    format!("CPU (no WebGPU: {why})"),
                )
            }
        };
        self.inner.update_value(|i| i.gpu = state);
        self.backend.set(line);
        out
    }

    /// Starts a fresh run of `cfg`, dropping any run in progress or paused.
    pub fn start(self, cfg: SuperpositionConfig) {
        let generation = self.inner.try_update_value(|i| {
            i.generation += 1;
            i.pause = false;
            i.session = None;
            i.loop_live = true;
            i.generation
        });
        let Some(generation) = generation else { return };
        self.clear();
        self.total.set(cfg.steps);
        self.status.set(Status::Running);
        self.eta.set("starting…".into());
        wasm_bindgen_futures::spawn_local(async move {
            match self.open(&cfg).await {
                Ok(session) => {
                    if self.is_current(generation) {
                        self.run_loop(generation, session).await;
                    }
                }
                Err(msg) => {
                    if self.is_current(generation) {
                        self.inner.update_value(|i| i.loop_live = false);
                        self.fail(msg);
                    }
                }
            }
        });
    }

    /// Pauses a running run after its current chunk, or resumes a paused one.
    pub fn toggle_pause(self) {
        match self.status.get_untracked() {
            Status::Running => {
                self.inner.update_value(|i| i.pause = true);
                self.status.set(Status::Paused);
                self.eta.set("paused".into());
            }
            Status::Paused => {
                let resume = self.inner.try_update_value(|i| {
                    i.pause = false;
                    if i.loop_live {
                        // The loop has not reached its pause point yet: it simply carries on.
                        None
                    } else {
                        i.session.take().map(|s| {
                            i.loop_live = true;
                            (i.generation, s)
                        })
                    }
                });
                self.status.set(Status::Running);
                if let Some(Some((generation, session))) = resume {
                    wasm_bindgen_futures::spawn_local(async move {
                        self.run_loop(generation, session).await;
                    });
                }
            }
            _ => {}
        }
    }

    /// Drops the trainer and clears progress and charts.
    pub fn reset(self) {
        self.inner.update_value(|i| {
            i.generation += 1;
            i.pause = false;
            i.loop_live = false;
            i.session = None;
        });
        self.clear();
        self.status.set(Status::Idle);
    }

    fn clear(self) {
        self.step.set(0);
        self.total.set(0);
        self.eta.set(String::new());
        self.error.set(None);
        self.snapshot.set(None);
        self.history.set(LossHistory::default());
    }

    fn is_current(self, generation: u64) -> bool {
        self.inner
            .try_with_value(|i| i.generation == generation)
            .unwrap_or(false)
    }

    fn fail(self, msg: String) {
        self.error.set(Some(msg));
        self.status.set(Status::Error);
        self.eta.set(String::new());
    }

    /// Builds the trainer: WebGPU when there is an adapter, else the CPU reference if the config
    /// is small enough.
    async fn open(self, cfg: &SuperpositionConfig) -> Result<Session, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let specs = cfg.instances();
        let (trainer, adapter, chunk, max_chunk) = match self.gpu().await {
            Ok((gpu, name)) => {
                let t = GpuToyTrainer::new(&gpu, cfg, None)
                    .await
                    .map_err(|e| e.to_string())?;
                // Start small when a step is big (software adapters take seconds for the
                // phase diagram); the loop grows the chunk fourfold per chunk on fast GPUs.
                let chunk = (2e6 / step_work(cfg) as f64).clamp(1.0, 50.0);
                (Trainer::Gpu(Box::new(t)), name, chunk, 5000.0)
            }
            Err(why) => {
                let cost = cpu_cost(cfg);
                if cost > CPU_FALLBACK_LIMIT {
                    return Err(format!(
                        "this run needs WebGPU: instances × parameters × batch = {cost} is more than the \
                         CPU fallback's {CPU_FALLBACK_LIMIT}; shrink the sweep, the model or the batch, or \
                         open the page in a browser with WebGPU ({why})"
                    ));
                }
                let t = CpuToyTrainer::new(cfg).map_err(|e| e.to_string())?;
                // A first guess of ~50 M multiply-adds a second; the loop corrects it at once.
                let per_step = (cost * 4).max(1) as f64;
                let chunk = (5e6 / per_step).clamp(1.0, 200.0);
                (Trainer::Cpu(t), "CPU".to_string(), chunk, 2000.0)
            }
        };
        Ok(Session {
            trainer,
            cfg: cfg.clone(),
            specs,
            adapter,
            step: 0,
            chunk,
            max_chunk,
            rate: None,
            elapsed_ms: 0.0,
        })
    }

    async fn run_loop(self, generation: u64, mut s: Session) {
        loop {
            if !self.is_current(generation) {
                return;
            }
            if s.step >= s.cfg.steps {
                self.inner.update_value(|i| i.loop_live = false);
                self.status.set(Status::Done);
                self.eta
                    .set(format!("took {}", fmt_duration(s.elapsed_ms / 1000.0)));
                return;
            }
            if self.inner.with_value(|i| i.pause) {
                self.inner.update_value(|i| {
                    i.loop_live = false;
                    i.session = Some(s);
                });
                return;
            }
            let n = (s.chunk.round() as u32).max(1).min(s.cfg.steps - s.step);
            let t0 = now_ms();
            let trained = s.trainer.run_steps(n).await;
            let params = match &trained {
                Ok(_) => s.trainer.params().await,
                Err(e) => Err(e.clone()),
            };
            if !self.is_current(generation) {
                return;
            }
            let (loss, params) = match (trained, params) {
                (Ok(l), Ok(p)) => (l, p),
                (Err(e), _) | (_, Err(e)) => {
                    self.inner.update_value(|i| i.loop_live = false);
                    self.fail(e.to_string());
                    return;
                }
            };
            let dt = (now_ms() - t0).max(1.0);
            s.step += n;
            s.elapsed_ms += dt;
            let rate = n as f64 * 1000.0 / dt;
            s.rate = Some(s.rate.map_or(rate, |r| 0.7 * r + 0.3 * rate));
            // Steer the chunk towards the target time, at most 4× at once. Multiplying the
            // fractional size (rather than rescaling the rounded one) still converges when a
            // fixed per-chunk cost (readback, metrics) dominates small chunks.
            let factor = (TARGET_CHUNK_MS / dt).clamp(0.25, 4.0);
            s.chunk = (s.chunk * factor).clamp(1.0, s.max_chunk);
            self.publish(&s, loss, params);
            sleep_ms(0).await;
        }
    }

    fn publish(self, s: &Session, loss: Vec<f32>, params: Vec<f32>) {
        let (h, f) = (s.cfg.n_hidden as usize, s.cfg.n_features as usize);
        let weights: Vec<InstanceWeights> = params
            .chunks(s.cfg.params_per_instance())
            .map(|block| unflatten(block, h, f))
            .collect();
        let metrics = weights
            .iter()
            .map(|w| superposition_metrics(&w.w))
            .collect();
        self.history.update(|hist| hist.push(s.step, loss.clone()));
        self.snapshot.set(Some(Arc::new(Snapshot {
            cfg: s.cfg.clone(),
            specs: s.specs.clone(),
            step: s.step,
            params,
            weights,
            metrics,
            last_loss: loss,
            adapter: s.adapter.clone(),
        })));
        self.step.set(s.step);
        if self.status.get_untracked() == Status::Running {
            let left = (s.cfg.steps - s.step) as f64;
            let eta = s.rate.map_or(String::new(), |r| {
                format!("ETA {}", fmt_duration(left / r.max(1e-9)))
            });
            self.eta.set(eta);
        }
    }
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

/// The adapter's name. Browsers leave wgpu's `name` (the adapter's `description`) empty for
/// privacy, so then the page asks `navigator.gpu` itself for the vendor and architecture it does
/// share.
async fn adapter_label(gpu: &Gpu) -> String {
    if !gpu.info.name.trim().is_empty() {
        return gpu.info.name.clone();
    }
    let kind = if gpu.info.device_type == wgpu::DeviceType::Cpu {
        "software adapter"
    } else {
        "adapter"
    };
    match browser_adapter_info().await {
        Some(info) => format!("{info} ({kind})"),
        None => format!("unnamed {kind}"),
    }
}

/// `vendor architecture` from a fresh `navigator.gpu.requestAdapter()`, when the browser says.
async fn browser_adapter_info() -> Option<String> {
    use js_sys::Reflect;
    let nav = web_sys::window()?.navigator();
    let gpu = Reflect::get(&nav, &"gpu".into())
        .ok()
        .filter(|g| !g.is_undefined())?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let options = js_sys::Object::new();
    // The engine asks for the high-performance adapter; ask for the same one.
    Reflect::set(
        &options,
        &"powerPreference".into(),
        &"high-performance".into(),
    )
    .ok()?;
    let promise: js_sys::Promise = request.call1(&gpu, &options).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |k: &str| {
        Reflect::get(&info, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .into_iter()
        .filter_map(field)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The CPU fallback's cost measure: instances × parameters per instance × batch size.
pub fn cpu_cost(cfg: &SuperpositionConfig) -> u64 {
    cfg.n_instances() as u64 * cfg.params_per_instance() as u64 * cfg.batch_size as u64
}

fn has_navigator_gpu() -> bool {
    web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

/// Multiply-adds of one training step over all instances, roughly.
fn step_work(cfg: &SuperpositionConfig) -> u64 {
    let per_sample = cfg.n_features as u64 * cfg.n_hidden as u64;
    (cfg.n_instances() as u64 * cfg.batch_size as u64 * per_sample).max(1)
}

/// "12 s", "3 min 5 s".
pub fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Resolves after `ms` milliseconds via `setTimeout`, letting the browser handle events.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w
                .set_timeout_with_callback_and_timeout_and_arguments_0(resolve.unchecked_ref(), ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
