//! The training worker: a dedicated Web Worker with its own WebGPU device (or the CPU reference
//! for small configs) that trains in chunks and streams progress back to the page.
//!
//! The worker's event loop is its own, so chunks, readback, metrics and the CPU fallback never
//! hold up the page; between chunks it yields so Pause, Resume, Reset and Start get through.

mod lm;
mod sae;
mod toy;

use std::cell::RefCell;

use mechlab_engine::gpu::Gpu;
use mechlab_engine::EngineError;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{FromWorker, Job, Progress, Speed, ToWorker, Update};
use crate::sleep_ms;

/// Wall time one chunk should take: long enough to amortise readback, short enough that a
/// pause or a reset waits for little.
const TARGET_CHUNK_MS: f64 = 100.0;
/// Real chunks' worth of time an estimate times.
const TIMED_CHUNKS: f64 = 3.0;

/// A lab's trainer as opened, with where it runs and the loop's first chunk size.
pub struct Opened<W> {
    work: W,
    adapter: String,
    /// Steps in the first chunk.
    chunk: f64,
    /// The most steps a chunk may grow to.
    max_chunk: f64,
    /// Steps already trained (a run continued from a checkpoint).
    start: u32,
}

/// What trains, per lab.
enum Work {
    Toy(toy::ToyWork),
    Sae(Box<sae::SaeWork>),
    Lm(Box<lm::LmWork>),
}

impl Work {
    /// Trains up to `n` steps of a `total`-step job; returns how many it trained and the
    /// chunk's update.
    async fn advance(
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
    async fn overhead(&mut self, chunk_ms: f64) -> Result<(f64, f64), EngineError> {
        match self {
            Work::Lm(w) => w.overhead(chunk_ms).await,
            Work::Sae(w) => w.overhead(chunk_ms).await,
            Work::Toy(_) => Ok((0.0, 0.0)),
        }
    }

    /// Answers one of the page's requests about the run (not a training command).
    async fn serve(&mut self, run: u32, step: u32, req: ToWorker) -> FromWorker {
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
fn periodic_share(cost_ms: f64, every_ms: f64, chunk_ms: f64) -> f64 {
    cost_ms / every_ms.max(cost_ms + chunk_ms)
}

/// A trainer and the loop's bookkeeping, parked here while paused.
struct Session {
    run: u32,
    work: Work,
    /// Steps the whole job trains.
    total: u32,
    adapter: String,
    step: u32,
    /// Steps per chunk, kept fractional so small corrections add up instead of rounding away.
    chunk: f64,
    max_chunk: f64,
    /// Smoothed steps per second, for the ETA.
    rate: Option<f64>,
    /// Milliseconds spent training (pauses excluded).
    elapsed_ms: f64,
    /// How long the last chunk took.
    last_chunk_ms: f64,
}

enum GpuState {
    Unknown,
    Probing,
    /// The device and the name the page shows for it.
    Ready(Box<Gpu>, String),
    Missing(String),
}

struct State {
    /// The run the page wants trained; 0 for none. A loop whose run is not this one stops and
    /// drops its trainer.
    run: u32,
    pause: bool,
    /// A loop (or the opening of its trainer) is live for `run`.
    live: bool,
    /// The paused (or finished) run's trainer.
    parked: Option<Session>,
    /// The page's requests about the run, answered between chunks or while parked.
    requests: Vec<ToWorker>,
    gpu: GpuState,
    /// The latest measurement asked for; an older one still going stops at its next chunk.
    calibration: u32,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State {
            run: 0,
            pause: false,
            live: false,
            parked: None,
            requests: Vec::new(),
            gpu: GpuState::Unknown,
            calibration: 0,
        })
    };
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Posts a message to the page.
fn post(msg: &FromWorker) {
    match msg.to_js() {
        Ok(v) => {
            if let Err(e) = scope().post_message(&v) {
                web_sys::console::error_2(&"mechlab worker: postMessage failed".into(), &e);
            }
        }
        Err(e) => web_sys::console::error_1(&format!("mechlab worker: {e}").into()),
    }
}

/// The worker's entry point: installs the message handler, says it is ready, and looks for
/// WebGPU at once so the page can show the backend before the first run.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        post(&FromWorker::Crashed {
            message: info.to_string(),
        });
    }));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        match ToWorker::from_js(ev.data()) {
            Ok(msg) => handle(msg),
            Err(e) => {
                web_sys::console::error_1(&format!("mechlab worker: bad message: {e}").into())
            }
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&FromWorker::Ready);
    wasm_bindgen_futures::spawn_local(async {
        let _ = gpu().await;
    });
}

fn handle(msg: ToWorker) {
    match msg {
        ToWorker::Start { run, job } => {
            let paused = matches!(&job, Job::Lm(j) if j.paused);
            with_state(|s| {
                s.run = run;
                s.pause = paused;
                s.parked = None;
                s.requests.clear();
                s.live = true;
            });
            wasm_bindgen_futures::spawn_local(async move {
                match open(run, &job).await {
                    Ok(session) => {
                        if is_current(run) {
                            run_loop(session).await;
                        }
                    }
                    Err(message) => {
                        if is_current(run) {
                            with_state(|s| s.live = false);
                            post(&FromWorker::Error { run, message });
                        }
                    }
                }
            });
        }
        ToWorker::Pause => with_state(|s| s.pause = true),
        ToWorker::Resume => {
            let resume = with_state(|s| {
                s.pause = false;
                if s.live {
                    // The loop has not reached its pause point yet: it simply carries on.
                    None
                } else {
                    s.parked.take().inspect(|_| s.live = true)
                }
            });
            if let Some(session) = resume {
                wasm_bindgen_futures::spawn_local(run_loop(session));
            }
        }
        ToWorker::Reset => with_state(|s| {
            s.run = 0;
            s.pause = false;
            s.live = false;
            s.parked = None;
            s.requests.clear();
        }),
        ToWorker::Calibrate { id, job } => {
            with_state(|s| s.calibration = id);
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(speed) = calibrate(id, &job).await {
                    post(&FromWorker::Estimate { id, speed });
                }
            });
        }
        req @ (ToWorker::Inspect(_) | ToWorker::Save) => {
            let parked = with_state(|s| {
                s.requests.push(req);
                if s.live {
                    // The loop answers after its chunk.
                    None
                } else {
                    s.parked.take().inspect(|_| s.live = true)
                }
            });
            if let Some(mut session) = parked {
                wasm_bindgen_futures::spawn_local(async move {
                    serve_requests(&mut session).await;
                    // A Resume that came meanwhile found the session live: carry on here.
                    let carry_on = with_state(|s| {
                        if s.run != session.run {
                            s.live = false;
                            return None;
                        }
                        if !s.pause && session.step < session.total {
                            Some(session)
                        } else {
                            s.live = false;
                            s.parked = Some(session);
                            None
                        }
                    });
                    if let Some(session) = carry_on {
                        run_loop(session).await;
                    }
                });
            }
        }
    }
}

/// Answers the requests waiting for the session's run.
async fn serve_requests(s: &mut Session) {
    loop {
        let Some(req) = with_state(|st| {
            (st.run == s.run && !st.requests.is_empty()).then(|| st.requests.remove(0))
        }) else {
            return;
        };
        let reply = s.work.serve(s.run, s.step, req).await;
        if is_current(s.run) {
            post(&reply);
        }
    }
}

/// Times `job` as [`ToWorker::Calibrate`] says; `None` when the measurement went stale (a
/// run started, or a newer measurement was asked for), which nobody waits for.
async fn calibrate(id: u32, job: &Job) -> Option<Result<Speed, String>> {
    let stale = move || with_state(|s| s.live || s.calibration != id);
    // Let a Start posted right behind this message through first.
    sleep_ms(0).await;
    if stale() {
        return None;
    }
    let mut s = match open(0, job).await {
        Ok(s) => s,
        Err(e) => return (!stale()).then_some(Err(e)),
    };
    let total = s.total;
    // One step pays for compiling the kernels; then chunks double until one takes about as
    // long as a real run's chunk, and chunks of that size are timed until they add up to a
    // few (one alone on a busy machine can be a fifth off); their rate is the speed (a real
    // run pays the same per-chunk costs).
    let mut n = 1u32;
    let mut first = true;
    let (mut timed_steps, mut timed_ms) = (0u32, 0.0);
    loop {
        if stale() {
            return None;
        }
        let left = total.saturating_sub(s.step);
        let n_now = n.min(left).max(1);
        let t0 = js_sys::Date::now();
        // No time passes between chunks as far as the work knows, so it spends none of the
        // measured chunk on its periodic evaluations and samples.
        let trained = s.work.advance(n_now, 0.0, total).await;
        let dt = (js_sys::Date::now() - t0).max(1.0);
        let k = match trained {
            Ok((k, _)) => k.max(1),
            Err(e) => return (!stale()).then_some(Err(e.to_string())),
        };
        s.step += k;
        let max_chunk = s.max_chunk.max(1.0) as u32;
        let settled = !first && (dt >= TARGET_CHUNK_MS || n_now >= max_chunk);
        if settled {
            timed_steps += k;
            timed_ms += dt;
        }
        // A one-step job's only step included compiling: that is its time.
        let done = s.step >= total;
        if done || timed_ms >= TIMED_CHUNKS * TARGET_CHUNK_MS {
            let (k, dt) = if timed_steps > 0 {
                (timed_steps, timed_ms)
            } else {
                (k, dt)
            };
            // The run also pays for its evaluations and samples: their share of its time, and
            // the last ones at its end, folded into the rate over the whole job.
            let (share, end_ms) = match s.work.overhead(dt / k as f64 * n_now as f64).await {
                Ok(o) => o,
                Err(e) => return (!stale()).then_some(Err(e.to_string())),
            };
            let training_ms = total as f64 * dt / k as f64 / (1.0 - share);
            return (!stale()).then_some(Ok(Speed {
                steps_per_sec: total as f64 * 1000.0 / (training_ms + end_ms),
                measured_steps: k,
            }));
        }
        if !first && !settled {
            let grow = (TARGET_CHUNK_MS / dt).clamp(2.0, 16.0);
            n = ((n as f64 * grow).ceil() as u32).min(max_chunk);
        }
        first = false;
        sleep_ms(0).await;
    }
}

fn is_current(run: u32) -> bool {
    with_state(|s| s.run == run)
}

/// The worker's one GPU and its name, opened on first use; the error is why there is none.
/// The first call tells the page which backend runs train on.
async fn gpu() -> Result<(Gpu, String), String> {
    loop {
        let state = with_state(|s| match &s.gpu {
            GpuState::Unknown => {
                s.gpu = GpuState::Probing;
                None
            }
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
    let (state, out, msg) = match Gpu::new().await {
        Ok(g) => {
            let name = adapter_label(&g).await;
            let msg = FromWorker::Backend {
                description: format!("WebGPU: {name}"),
                webgpu: true,
            };
            (
                GpuState::Ready(Box::new(g.clone()), name.clone()),
                Ok((g, name)),
                msg,
            )
        }
        Err(e) => {
            let why = match e {
                // wgpu's message lists every native backend it was built without; the
                // browser case has one simple cause.
                EngineError::NoAdapter(_) if !has_navigator_gpu() => {
                    "this browser has no WebGPU".to_string()
                }
                EngineError::NoAdapter(_) => "the browser offered no WebGPU adapter".to_string(),
                e => e.to_string(),
            };
            let msg = FromWorker::Backend {
                description: format!("CPU (no WebGPU: {why})"),
                webgpu: false,
            };
            (GpuState::Missing(why.clone()), Err(why), msg)
        }
    };
    with_state(|s| s.gpu = state);
    post(&msg);
    out
}

/// Opens the job's trainer on the worker's GPU, or on the CPU when there is none.
async fn open(run: u32, job: &Job) -> Result<Session, String> {
    let gpu = gpu().await;
    let (work, adapter, chunk, max_chunk, start) = match job {
        Job::Superposition(cfg, engine) => {
            let o = toy::open(cfg, *engine, gpu).await?;
            (Work::Toy(o.work), o.adapter, o.chunk, o.max_chunk, o.start)
        }
        Job::Sae { runs, engine } => {
            let o = sae::open(runs, *engine, gpu).await?;
            (
                Work::Sae(Box::new(o.work)),
                o.adapter,
                o.chunk,
                o.max_chunk,
                o.start,
            )
        }
        Job::Lm(j) => {
            let o = lm::open(j, gpu).await?;
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
        total: job.total_steps(),
        adapter,
        step: start,
        chunk,
        max_chunk,
        rate: None,
        elapsed_ms: 0.0,
        last_chunk_ms: 0.0,
    })
}

async fn run_loop(mut s: Session) {
    let run = s.run;
    loop {
        if !is_current(run) {
            return;
        }
        serve_requests(&mut s).await;
        if !is_current(run) {
            return;
        }
        if s.step >= s.total {
            let (step, elapsed_ms) = (s.step, s.elapsed_ms);
            // Kept, so the page can still look inside the models and save them.
            with_state(|st| {
                st.live = false;
                st.parked = Some(s);
            });
            post(&FromWorker::Done {
                run,
                step,
                elapsed_ms,
            });
            return;
        }
        if with_state(|st| st.pause) {
            let step = s.step;
            with_state(|st| {
                st.live = false;
                st.parked = Some(s);
            });
            post(&FromWorker::Paused { run, step });
            return;
        }
        let n = (s.chunk.round() as u32).max(1).min(s.total - s.step);
        let t0 = js_sys::Date::now();
        let trained = s.work.advance(n, s.last_chunk_ms, s.total).await;
        if !is_current(run) {
            return;
        }
        let (n, update) = match trained {
            Ok(t) => t,
            Err(e) => {
                with_state(|st| st.live = false);
                post(&FromWorker::Error {
                    run,
                    message: e.to_string(),
                });
                return;
            }
        };
        let dt = (js_sys::Date::now() - t0).max(1.0);
        s.last_chunk_ms = dt;
        s.step += n;
        s.elapsed_ms += dt;
        let rate = n.max(1) as f64 * 1000.0 / dt;
        let rate = s.rate.map_or(rate, |r| 0.7 * r + 0.3 * rate);
        s.rate = Some(rate);
        // Steer the chunk towards the target time, at most 4× at once. Multiplying the
        // fractional size (rather than rescaling the rounded one) still converges when a fixed
        // per-chunk cost (readback, metrics) dominates small chunks.
        let factor = (TARGET_CHUNK_MS / dt).clamp(0.25, 4.0);
        s.chunk = (s.chunk * factor).clamp(1.0, s.max_chunk);
        post(&FromWorker::Progress(Box::new(Progress {
            run,
            step: s.step,
            adapter: s.adapter.clone(),
            steps_per_sec: rate,
            update,
        })));
        sleep_ms(0).await;
    }
}

/// The adapter's name. Browsers leave wgpu's `name` (the adapter's `description`) empty for
/// privacy, so then the worker asks `navigator.gpu` itself for the vendor and architecture it
/// does share.
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

/// `navigator.gpu` of this global (a window's or a worker's), when there is one.
fn navigator_gpu() -> Option<JsValue> {
    let nav = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    js_sys::Reflect::get(&nav, &"gpu".into())
        .ok()
        .filter(|g| !g.is_undefined() && !g.is_null())
}

fn has_navigator_gpu() -> bool {
    navigator_gpu().is_some()
}

/// `vendor architecture` from a fresh `navigator.gpu.requestAdapter()`, when the browser says.
async fn browser_adapter_info() -> Option<String> {
    use js_sys::Reflect;
    let gpu = navigator_gpu()?;
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
