//! The page's run controller, its side of training. A dedicated Web Worker
//! (`crate::worker`, its own WebGPU device or the CPU reference for small configs) trains
//! in chunks; this module starts it, sends it Start, Pause, Resume and Reset
//! (`crate::protocol`), keeps the run's status, progress and ETA, and hands each chunk's
//! figures to the page that started the run.
//!
//! The page thread only keeps histories and draws; nothing that scales with training runs here.

use std::sync::Arc;

use crate::protocol::{FromWorker, Job, Progress, ToWorker, WORKER_LOADER};
use leptos::prelude::*;
use mechlab_engine::experiment::lab::Experiment;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

pub use crate::sleep_ms;

thread_local! {
    /// Every runner's status, for the warning before the page is left.
    static RUNS: std::cell::RefCell<Vec<RwSignal<Status>>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Whether a run trains, or waits paused, in this tab: leaving the page would lose it.
fn training_here() -> bool {
    RUNS.with_borrow(|runs| {
        runs.iter().any(|s| {
            matches!(
                s.try_get_untracked(),
                Some(Status::Running | Status::Paused)
            )
        })
    })
}

/// Has the browser ask before the page is left (a reload, a closed tab, another address)
/// while any run trains or waits paused: nothing keeps a run yet but its tab. The listener is
/// installed with the first runner.
fn warn_before_leaving(status: RwSignal<Status>) {
    let first = RUNS.with_borrow_mut(|runs| {
        runs.push(status);
        runs.len() == 1
    });
    let Some(window) = web_sys::window().filter(|_| first) else {
        return;
    };
    let on_leave =
        Closure::<dyn FnMut(web_sys::BeforeUnloadEvent)>::new(|ev: web_sys::BeforeUnloadEvent| {
            if training_here() {
                // Either asks; browsers show their own words.
                ev.prevent_default();
                ev.set_return_value("a run is training in this tab; leaving loses it");
            }
        });
    let _ =
        window.add_event_listener_with_callback("beforeunload", on_leave.as_ref().unchecked_ref());
    // The listener lives as long as the page.
    on_leave.forget();
}

/// What the runner tells the page that owns it.
pub enum RunEvent<'a> {
    /// A run started or was reset: drop what the last one drew.
    Cleared,
    /// A chunk of the current run finished: the run's experiment (decoded once from its
    /// job's link) and the chunk.
    Progress(&'a Experiment, Progress),
    /// The worker answered a request about the current run ([`Runner::request`]):
    /// [`FromWorker::Inspection`] or [`FromWorker::Checkpoint`].
    Reply(FromWorker),
}

/// The page's handler of [`RunEvent`]s.
type Sink = Box<dyn Fn(RunEvent)>;

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

/// The training worker as the page holds it.
struct Inner {
    worker: Option<Worker>,
    /// Bumped for every worker started; events of an older one are ignored.
    worker_id: u32,
    /// The worker said [`FromWorker::Ready`]; before that, messages wait in `queue`.
    ready: bool,
    queue: Vec<ToWorker>,
    /// Why the worker could not start. It is not retried: the same script would fail again.
    broken: Option<String>,
    /// The page's current run (0 before the first); the worker stamps its messages with it.
    run: u32,
    /// The current run's job and its experiment (shared, not copied, with each chunk's
    /// handler).
    current: Option<Arc<(Job, Experiment)>>,
    /// Pause was asked for and the worker has not yet said [`FromWorker::Paused`].
    pausing: bool,
    /// The user said to go on before the worker had confirmed the hold: resume once it does.
    resume_on_pause: bool,
    /// Progress reports of the current run so far, to estimate its length from the second
    /// (the first includes compiling the kernels).
    reports: u32,
    /// The latest measurement asked of the worker, and the job it measures.
    calibration: u32,
    calibrating: Option<Job>,
    /// A job held before its start because its estimate is long, until the user says.
    held: Option<Job>,
}

/// Runs measured to take longer than this are held after their first second or so until the
/// user says to go on.
pub const LONG_RUN_SECS: f64 = 300.0;

/// A run held for the user's word: how long it will take, measured over its first steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongRun {
    /// Seconds the whole run will take at the speed measured.
    pub total_secs: f64,
    /// Steps the speed was measured over.
    pub measured_steps: u32,
    /// Held before it started (its estimate came first), not paused after its first steps.
    pub before_start: bool,
}

/// What Run would take on this device, measured before the run (see [`Runner::calibrate`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Estimate {
    /// Nothing to measure (the controls do not parse, or a run is going).
    None,
    /// Waiting for the worker's measurement.
    Measuring,
    /// Measured.
    Ready {
        /// The job measured.
        job: Box<Job>,
        /// Seconds the whole job will take.
        total_secs: f64,
        /// Steps the speed was measured over.
        measured_steps: u32,
    },
    /// The job cannot train here: the error opening or training it gave.
    Failed(String),
}

impl Estimate {
    /// Whether this is the measurement of `job`.
    pub fn measured(&self, job: &Job) -> bool {
        matches!(self, Estimate::Ready { job: j, .. } if **j == *job)
    }

    /// Whether the run measured takes longer than [`LONG_RUN_SECS`].
    pub fn is_long(&self) -> bool {
        matches!(self, Estimate::Ready { total_secs, .. } if *total_secs > LONG_RUN_SECS)
    }

    /// The question to ask before starting `job`, when this measured it as long.
    fn long_run_for(&self, job: &Job) -> Option<LongRun> {
        match self {
            Estimate::Ready {
                total_secs,
                measured_steps,
                ..
            } if self.measured(job) && self.is_long() => Some(LongRun {
                total_secs: *total_secs,
                measured_steps: *measured_steps,
                before_start: true,
            }),
            _ => None,
        }
    }
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
    /// A run held because it will take longer than [`LONG_RUN_SECS`] on this device.
    pub long_run: RwSignal<Option<LongRun>>,
    /// How long Run would take, measured before it is pressed.
    pub estimate: RwSignal<Estimate>,
    inner: StoredValue<Inner, LocalStorage>,
    sink: StoredValue<Sink, LocalStorage>,
}

impl Runner {
    /// A runner with nothing trained that tells `sink` about its runs; call inside the page's
    /// owner. The worker stops when the owner goes (the page was left).
    pub fn new(sink: impl Fn(RunEvent) + 'static) -> Self {
        let runner = Self {
            status: RwSignal::new(Status::Idle),
            step: RwSignal::new(0),
            total: RwSignal::new(0),
            eta: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            backend: RwSignal::new("checking for WebGPU…".into()),
            long_run: RwSignal::new(None),
            estimate: RwSignal::new(Estimate::None),
            inner: StoredValue::new_local(Inner {
                worker: None,
                worker_id: 0,
                ready: false,
                queue: Vec::new(),
                broken: None,
                run: 0,
                current: None,
                pausing: false,
                resume_on_pause: false,
                reports: 0,
                calibration: 0,
                calibrating: None,
                held: None,
            }),
            sink: StoredValue::new_local(Box::new(sink) as Sink),
        };
        warn_before_leaving(runner.status);
        on_cleanup(move || {
            let worker = runner.inner.try_update_value(|i| i.worker.take()).flatten();
            if let Some(w) = worker {
                w.terminate();
            }
        });
        runner
    }

    /// Starts the training worker now: it looks for WebGPU at once, so the backend line is
    /// right before the first run.
    pub fn start_worker(self) {
        let id = self.inner.with_value(|i| i.worker_id) + 1;
        let worker = match Worker::new(WORKER_LOADER) {
            Ok(w) => w,
            Err(e) => {
                self.inner.update_value(|i| i.worker_id = id);
                self.worker_failed(id, &js_error_text(&e));
                return;
            }
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            if self.is_worker(id) {
                self.on_message(id, ev.data());
            }
        });
        // A script that fails to load or to instantiate fires a plain `Event`; an uncaught
        // exception inside the worker an `ErrorEvent` with a message.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
            ev.prevent_default();
            if !self.is_worker(id) {
                return;
            }
            let detail = ev
                .dyn_ref::<ErrorEvent>()
                .map(|e| e.message())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "its script could not be loaded".into());
            self.worker_failed(id, &detail);
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The handlers live as long as their worker; a retired worker's check `is_worker` and
        // do nothing (dropping them here could free a closure while it runs).
        on_message.forget();
        on_error.forget();
        self.inner.update_value(|i| {
            i.worker = Some(worker);
            i.worker_id = id;
            i.ready = false;
        });
    }

    fn is_worker(self, id: u32) -> bool {
        self.inner
            .try_with_value(|i| i.worker_id == id && i.worker.is_some())
            .unwrap_or(false)
    }

    /// Sends a message, holding it until the worker is listening; starts a fresh worker when
    /// the last one crashed.
    fn send(self, msg: ToWorker) {
        let (broken, missing) = self
            .inner
            .with_value(|i| (i.broken.is_some(), i.worker.is_none()));
        if broken {
            return;
        }
        if missing {
            self.start_worker();
        }
        let now = self.inner.try_update_value(|i| {
            if i.ready {
                i.worker.clone()
            } else {
                i.queue.push(msg.clone());
                None
            }
        });
        if let Some(Some(worker)) = now {
            post_to(&worker, &msg);
        }
    }

    fn on_message(self, id: u32, data: JsValue) {
        let msg = match FromWorker::from_js(data) {
            Ok(m) => m,
            Err(e) => {
                web_sys::console::error_1(
                    &format!("mechlab: bad message from the worker: {e}").into(),
                );
                return;
            }
        };
        let current = self.inner.with_value(|i| i.run);
        match msg {
            FromWorker::Ready => {
                let flush = self.inner.try_update_value(|i| {
                    i.ready = true;
                    (i.worker.clone(), std::mem::take(&mut i.queue))
                });
                if let Some((Some(worker), queue)) = flush {
                    for m in &queue {
                        post_to(&worker, m);
                    }
                }
            }
            FromWorker::Backend { description, .. } => {
                self.backend.set(description);
                // Says where training runs; set only once the worker has reported in.
                if let Some(body) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.body())
                {
                    let _ = body.set_attribute("data-engine-thread", "worker");
                }
            }
            FromWorker::Progress(p) if p.run == current => self.publish(*p),
            FromWorker::Paused { run, step } if run == current => {
                let resume = self
                    .inner
                    .try_update_value(|i| {
                        i.pausing = false;
                        std::mem::take(&mut i.resume_on_pause)
                    })
                    .unwrap_or(false);
                self.step.set(step);
                if resume {
                    self.send(ToWorker::Resume);
                } else {
                    self.status.set(Status::Paused);
                    self.eta.set("paused".into());
                }
            }
            FromWorker::Done {
                run,
                step,
                elapsed_ms,
            } if run == current => {
                self.inner.update_value(|i| i.pausing = false);
                self.step.set(step);
                self.status.set(Status::Done);
                self.eta
                    .set(format!("took {}", fmt_duration(elapsed_ms / 1000.0)));
            }
            FromWorker::Error { run, message } if run == current => self.fail(message),
            FromWorker::Inspection { run, .. } | FromWorker::Checkpoint { run, .. }
                if run == current =>
            {
                self.sink.with_value(|sink| sink(RunEvent::Reply(msg)));
            }
            FromWorker::Estimate { id: m, speed } => {
                let job = self.inner.try_update_value(|i| {
                    if i.calibration == m {
                        i.calibrating.take()
                    } else {
                        None
                    }
                });
                if let Some(Some(job)) = job {
                    self.estimate.set(match speed {
                        Ok(s) => Estimate::Ready {
                            total_secs: job.total_steps() as f64 / s.steps_per_sec.max(1e-9),
                            measured_steps: s.measured_steps,
                            job: Box::new(job),
                        },
                        Err(e) => Estimate::Failed(e),
                    });
                }
            }
            FromWorker::Crashed { message } => self.worker_failed(id, &message),
            // A run since restarted or reset.
            FromWorker::Progress(_)
            | FromWorker::Paused { .. }
            | FromWorker::Done { .. }
            | FromWorker::Error { .. }
            | FromWorker::Inspection { .. }
            | FromWorker::Checkpoint { .. } => {}
        }
    }

    /// The worker with this id failed: before it was ready, it cannot start at all; after, it
    /// crashed, and the next run gets a fresh one.
    fn worker_failed(self, id: u32, detail: &str) {
        let failed = self.inner.try_update_value(|i| {
            if i.worker_id != id {
                return None;
            }
            let started = i.ready;
            if let Some(w) = i.worker.take() {
                w.terminate();
            }
            i.ready = false;
            i.queue.clear();
            i.pausing = false;
            if !started {
                i.broken = Some(format!(
                    "the training worker did not start ({detail}); reload the page to try again"
                ));
            }
            Some(started)
        });
        let Some(Some(started)) = failed else { return };
        let msg = if started {
            format!("the training worker stopped ({detail}); run again to start a fresh one")
        } else {
            self.backend
                .set("unavailable (the training worker did not start)".into());
            self.inner
                .with_value(|i| i.broken.clone())
                .unwrap_or_default()
        };
        if matches!(
            self.status.get_untracked(),
            Status::Running | Status::Paused
        ) {
            self.fail(msg);
        } else {
            self.error.set(Some(msg));
        }
    }

    /// Asks the worker how fast `job` trains here (see [`ToWorker::Calibrate`]); the answer
    /// lands in [`Runner::estimate`]. Nothing is asked when `job` was measured already.
    pub fn calibrate(self, job: Job) {
        let known = self.estimate.with_untracked(|e| e.measured(&job))
            || self
                .inner
                .with_value(|i| i.calibrating.as_ref() == Some(&job));
        if known || self.inner.with_value(|i| i.broken.is_some()) {
            return;
        }
        let id = self
            .inner
            .try_update_value(|i| {
                i.calibration += 1;
                i.calibrating = Some(job.clone());
                i.calibration
            })
            .unwrap_or(0);
        self.estimate.set(Estimate::Measuring);
        self.send(ToWorker::Calibrate { id, job });
    }

    /// Forgets the estimate (the controls changed, or no longer parse), dropping any
    /// measurement on its way.
    pub fn forget_estimate(self) {
        self.inner.update_value(|i| {
            i.calibration += 1;
            i.calibrating = None;
        });
        self.estimate.set(Estimate::None);
    }

    /// What Run does: starts `job`, or, when it was measured to take longer than
    /// [`LONG_RUN_SECS`], asks first.
    pub fn run(self, job: Job) {
        match self.estimate.with_untracked(|e| e.long_run_for(&job)) {
            Some(l) => {
                self.inner.update_value(|i| i.held = Some(job));
                self.long_run.set(Some(l));
            }
            None => self.start(job),
        }
    }

    /// Starts a fresh run of `job`, dropping any run in progress or paused.
    pub fn start(self, job: Job) {
        // A measurement still going would only slow the run down.
        self.inner.update_value(|i| {
            if i.calibrating.take().is_some() {
                i.calibration += 1;
            }
            i.held = None;
        });
        if self.estimate.with_untracked(|e| *e == Estimate::Measuring) {
            self.estimate.set(Estimate::None);
        }
        let (run, broken) = self.inner.with_value(|i| (i.run + 1, i.broken.clone()));
        // Decoded once here: the pages read each chunk against it.
        let experiment = job.experiment();
        self.inner.update_value(|i| {
            i.run = run;
            i.pausing = false;
            i.resume_on_pause = false;
            i.reports = 0;
            i.current = experiment
                .as_ref()
                .ok()
                .map(|e| Arc::new((job.clone(), e.clone())));
        });
        self.clear();
        self.total
            .set(experiment.as_ref().map_or(0, |e| e.total_steps()));
        // A page sends links its own codec wrote, so this names a bug rather than bad input;
        // either way the run does not start silently.
        if let Some(why) = broken.or_else(|| experiment.err()) {
            self.fail(why);
            return;
        }
        self.status.set(Status::Running);
        self.eta.set("starting…".into());
        self.send(ToWorker::Start { run, job });
    }

    /// Pauses a running run after its current chunk (the status turns to paused when the
    /// worker confirms), or resumes a paused one.
    pub fn toggle_pause(self) {
        match self.status.get_untracked() {
            Status::Running => {
                let first = self
                    .inner
                    .try_update_value(|i| !std::mem::replace(&mut i.pausing, true));
                if first == Some(true) {
                    self.eta.set("pausing…".into());
                    self.send(ToWorker::Pause);
                }
            }
            Status::Paused => {
                self.status.set(Status::Running);
                self.send(ToWorker::Resume);
            }
            _ => {}
        }
    }

    /// Asks the worker about the current run (look inside it, save it); the answer comes to the
    /// page's sink as [`RunEvent::Reply`]. Nothing happens without a run.
    pub fn request(self, msg: ToWorker) {
        if self
            .inner
            .with_value(|i| i.current.is_some() && i.worker.is_some())
        {
            self.send(msg);
        }
    }

    /// Drops the run and clears progress and charts.
    pub fn reset(self) {
        self.inner.update_value(|i| {
            i.run += 1;
            i.pausing = false;
            i.resume_on_pause = false;
            i.current = None;
            i.held = None;
        });
        if self.inner.with_value(|i| i.worker.is_some()) {
            self.send(ToWorker::Reset);
        }
        self.clear();
        self.status.set(Status::Idle);
    }

    fn clear(self) {
        self.long_run.set(None);
        self.step.set(0);
        self.total.set(0);
        self.eta.set(String::new());
        // A worker that cannot start stays reported.
        self.error.set(self.inner.with_value(|i| i.broken.clone()));
        self.sink.with_value(|sink| sink(RunEvent::Cleared));
    }

    fn fail(self, msg: String) {
        self.inner.update_value(|i| i.pausing = false);
        self.error.set(Some(msg));
        self.status.set(Status::Error);
        self.eta.set(String::new());
    }

    fn publish(self, p: Progress) {
        let Some(current) = self.inner.with_value(|i| i.current.clone()) else {
            return;
        };
        let (job, experiment) = (&current.0, &current.1);
        let total = experiment.total_steps();
        let left = total.saturating_sub(p.step) as f64;
        let (step, rate) = (p.step, p.steps_per_sec);
        self.sink
            .with_value(|sink| sink(RunEvent::Progress(experiment, p)));
        self.step.set(step);
        let pausing = self.inner.with_value(|i| i.pausing);
        if self.status.get_untracked() == Status::Running && !pausing {
            self.eta
                .set(format!("ETA {}", fmt_duration(left / rate.max(1e-9))));
        }
        // The second report measures the device's speed on this very job (the first paid for
        // compiling kernels): a run that will take long waits for the user's word.
        let reports = self
            .inner
            .try_update_value(|i| {
                i.reports += 1;
                i.reports
            })
            .unwrap_or(0);
        let total_secs = total as f64 / rate.max(1e-9);
        // A run whose estimate was long has been asked about already.
        let asked = self
            .estimate
            .with_untracked(|e| e.long_run_for(job).is_some());
        if reports == 2 && total_secs > LONG_RUN_SECS && left > 0.0 && !asked {
            self.long_run.set(Some(LongRun {
                total_secs,
                measured_steps: step,
                before_start: false,
            }));
            self.toggle_pause();
        }
    }

    /// The user's answer to a held long run: go on, or stop it.
    pub fn answer_long_run(self, go_on: bool) {
        self.long_run.set(None);
        if let Some(Some(job)) = self.inner.try_update_value(|i| i.held.take()) {
            // Held before it started: start it, or leave everything as it was.
            if go_on {
                self.start(job);
            }
            return;
        }
        match (go_on, self.status.get_untracked()) {
            (true, Status::Paused) => self.toggle_pause(),
            // The hold is on its way to the worker: undo it when the worker confirms.
            (true, _) => self.inner.update_value(|i| i.resume_on_pause = true),
            (false, _) => self.reset(),
        }
    }
}

fn post_to(worker: &Worker, msg: &ToWorker) {
    let sent = msg
        .to_js()
        .and_then(|v| worker.post_message(&v).map_err(|e| js_error_text(&e)));
    if let Err(e) = sent {
        web_sys::console::error_1(&format!("mechlab: could not message the worker: {e}").into());
    }
}

/// A thrown JS value as text.
fn js_error_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
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

/// A curve keeps at most this many points, thinning older ones by half.
const MAX_HISTORY: usize = 1200;

/// A curve over training: one point per recorded chunk, thinned so it stays bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct History<T> {
    /// The step at the end of each recorded chunk.
    pub steps: Vec<u32>,
    /// The point recorded then.
    pub points: Vec<T>,
}

impl<T> Default for History<T> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            points: Vec::new(),
        }
    }
}

impl<T> History<T> {
    /// Records `point` at `step`.
    pub fn push(&mut self, step: u32, point: T) {
        self.steps.push(step);
        self.points.push(point);
        if self.steps.len() > MAX_HISTORY {
            // Keep every other point (and the last): the curve keeps its shape and the cost
            // stays bounded.
            let n = self.steps.len();
            let keep = |i: usize| i % 2 == 1 || i + 1 == n;
            let mut i = 0;
            self.steps.retain(|_| {
                i += 1;
                keep(i - 1)
            });
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                keep(i - 1)
            });
        }
    }
}
