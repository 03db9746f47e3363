//! The training worker: a dedicated Web Worker with its own WebGPU device (or the CPU reference
//! for small configs) that trains in chunks and streams progress back to the page.
//!
//! The worker's event loop is its own, so chunks, readback, metrics and the CPU fallback never
//! hold up the page; between chunks it yields so Pause, Resume, Reset and Start get through.
//!
//! This file is the worker's state machine (which run is wanted, paused, live or parked) and
//! its message handler; a run's loop is in [`run_loop`], the estimate in [`calibrate`], the
//! GPU in [`adapter`], and what each lab trains behind [`work::Work`].

mod adapter;
mod calibrate;
mod run_loop;
pub mod work;

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use self::adapter::{gpu, GpuState};
use self::calibrate::calibrate;
use self::run_loop::{run_loop, serve_requests, Session};
use self::work::open;
use crate::protocol::{FromWorker, ToWorker};

/// Wall time one chunk should take: long enough to amortise readback, short enough that a
/// pause or a reset waits for little.
const TARGET_CHUNK_MS: f64 = 100.0;

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
            let paused = job.paused;
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

fn is_current(run: u32) -> bool {
    with_state(|s| s.run == run)
}
