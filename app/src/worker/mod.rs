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
    /// A measurement is opening or timing its job. A run waits for it to stop (it does at
    /// its next chunk once the run is live), so the two never hold the device at once.
    measuring: bool,
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
            measuring: false,
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
        // The console gets the whole report, where it was raised included.
        console_error_panic_hook::hook(info);
        post(&FromWorker::Crashed {
            message: panic_words(info),
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

/// What a panic says, for the page: its own words, without where it was raised (a path on the
/// machine that built the worker means nothing to the person reading it).
fn panic_words(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "an internal error".into())
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
                // A measurement going on stops at its next chunk now that a run is live.
                while with_state(|s| s.measuring) {
                    crate::sleep_ms(5).await;
                }
                if !is_current(run) {
                    return;
                }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// The page is told a panic's words and nothing of the path it was raised at.
    #[test]
    fn a_panic_reaches_the_page_without_a_build_path() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            keep.lock().unwrap().push(super::panic_words(info));
        }));
        let n = 3;
        let _ = std::panic::catch_unwind(|| panic!("Mismatched pop_error_scope call"));
        let _ = std::panic::catch_unwind(|| panic!("{n} scopes left"));
        std::panic::set_hook(previous);
        let seen = seen.lock().unwrap();
        assert_eq!(*seen, ["Mismatched pop_error_scope call", "3 scopes left"]);
    }
}
