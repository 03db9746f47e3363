//! The run bar every lab shares: Run, Pause/Resume, Reset, progress with ETA and status, the
//! share link and the whole-run export; and the backend line.

use crate::run_controller::{Estimate, Runner, Status, LONG_RUN_SECS};

/// "1 step", "12 steps".
fn steps(n: u32) -> String {
    if n == 1 {
        "1 step".into()
    } else {
        format!("{n} steps")
    }
}

/// How long the controls must stay unchanged before the run they describe is measured.
const SETTLE_MS: i32 = 600;
use crate::protocol::Job;
use leptos::prelude::*;

/// Which backend trains, as the worker reported it.
#[component]
pub fn BackendLine(
    /// The training controller.
    runner: Runner,
) -> impl IntoView {
    view! {
        <p class="backend">
            "backend: " <span id="backend">{move || runner.backend.get()}</span>
        </p>
    }
}

/// The page's one message line: what blocks the next run, what stopped the last one, or what
/// was wrong with the link.
#[component]
pub fn ErrorLine(
    /// The message, if any.
    error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div id="error" class="error" role="alert" hidden=move || error.with(Option::is_none)>
            {move || error.get().unwrap_or_default()}
        </div>
    }
}

/// Buttons, progress and status of the run.
#[component]
pub fn RunPanel(
    /// The training controller.
    runner: Runner,
    /// What Run would train; `None` while the controls do not parse.
    job: Signal<Option<Job>>,
    /// The page's address with the controls' link.
    share_url: Callback<(), String>,
    /// Whether a run has produced anything to export.
    has_result: Signal<bool>,
    /// Saves the run's results.
    export: Callback<()>,
) -> impl IntoView {
    let status = runner.status;
    let can_run = move || job.with(Option::is_some) && status.get() != Status::Running;
    let run = move |_| {
        if let Some(job) = job.get_untracked() {
            runner.run(job);
        }
    };
    // Measure what Run would take once the controls have settled, whenever nothing is
    // training: the estimate is there before Run is pressed.
    let settle = StoredValue::new(0u32);
    Effect::new(move |_| {
        let j = job.get();
        let busy = matches!(status.get(), Status::Running | Status::Paused);
        settle.update_value(|g| *g += 1);
        if busy {
            return;
        }
        let Some(j) = j else {
            runner.forget_estimate();
            return;
        };
        if runner.estimate.with_untracked(|e| e.measured(&j)) {
            return;
        }
        runner.estimate.set(Estimate::Measuring);
        let generation = settle.get_value();
        leptos::task::spawn_local(async move {
            crate::run_controller::sleep_ms(SETTLE_MS).await;
            if settle.try_get_value() == Some(generation) {
                runner.calibrate(j);
            }
        });
    });
    let estimate_text = move || match runner.estimate.get() {
        Estimate::None => String::new(),
        Estimate::Measuring => "Measuring how long this run takes on this device…".into(),
        Estimate::Ready {
            total_secs,
            measured_steps,
            ..
        } => {
            let took = if total_secs < 1.0 {
                "under a second".to_string()
            } else {
                format!("about {}", crate::run_controller::fmt_duration(total_secs))
            };
            let mut t = format!(
                "This run will take {took} on this device (measured over {}).",
                steps(measured_steps)
            );
            if total_secs > LONG_RUN_SECS {
                t.push_str(" That is over five minutes: Run asks before it starts.");
            }
            t
        }
        Estimate::Failed(e) => format!("This run cannot train here: {e}"),
    };
    let estimate_class = move || {
        let long = runner
            .estimate
            .with(|e| e.is_long() || matches!(e, Estimate::Failed(_)));
        if long {
            "estimate warn"
        } else {
            "estimate"
        }
    };
    let estimate_hidden = move || {
        matches!(status.get(), Status::Running | Status::Paused)
            || runner.estimate.with(|e| *e == Estimate::None)
    };
    let pause_label = move || {
        if status.get() == Status::Paused {
            "Resume"
        } else {
            "Pause"
        }
    };
    let can_pause = move || matches!(status.get(), Status::Running | Status::Paused);
    let total = move || {
        let t = runner.total.get();
        if t > 0 {
            t
        } else {
            job.with(|j| j.as_ref().map_or(0, Job::total_steps))
        }
    };
    let fraction = move || {
        let t = runner.total.get();
        if t == 0 {
            0.0
        } else {
            runner.step.get() as f64 / t as f64
        }
    };
    let copied = RwSignal::new(String::new());
    let copy_link = move |_| {
        let url = share_url.run(());
        leptos::task::spawn_local(async move {
            let ok = write_clipboard(&url).await;
            copied.set(if ok {
                "copied".into()
            } else {
                "copied to the address bar (the clipboard was blocked)".into()
            });
            crate::run_controller::sleep_ms(2500).await;
            copied.set(String::new());
        });
    };
    view! {
        <section class="run">
            <div class="buttons">
                <button id="run" class="primary" disabled=move || !can_run() on:click=run>
                    "Run"
                </button>
                <button
                    id="pause"
                    disabled=move || !can_pause()
                    on:click=move |_| runner.toggle_pause()
                >
                    {pause_label}
                </button>
                <button id="reset" on:click=move |_| runner.reset()>
                    "Reset"
                </button>
            </div>
            <progress id="progress" max="1" prop:value=fraction></progress>
            <p class="progress-line">
                "step " <span id="step">{move || runner.step.get()}</span> " / "
                <span id="total-steps">{total}</span> <span class="sep" hidden=move || runner.eta.with(String::is_empty)>
                    " · "
                </span>
                <span id="eta">{move || runner.eta.get()}</span>
            </p>
            <p id="estimate" class=estimate_class hidden=estimate_hidden aria-live="polite">
                {estimate_text}
            </p>
            <div
                id="long-run"
                class="long-run"
                role="alertdialog"
                aria-labelledby="long-run-text"
                hidden=move || runner.long_run.with(Option::is_none)
            >
                <p id="long-run-text">
                    {move || {
                        runner
                            .long_run
                            .get()
                            .map(|l| {
                                let took = crate::run_controller::fmt_duration(l.total_secs);
                                if l.before_start {
                                    format!(
                                        "This run will take about {took} on this device (measured over {}). Start it?",
                                        steps(l.measured_steps),
                                    )
                                } else {
                                    format!(
                                        "This run will take about {took} on this device (measured over its first {} steps), so it is paused. Go on?",
                                        l.measured_steps,
                                    )
                                }
                            })
                    }}
                </p>
                <div class="buttons">
                    <button
                        id="long-run-continue"
                        class="primary"
                        on:click=move |_| runner.answer_long_run(true)
                    >
                        "Go on"
                    </button>
                    <button id="long-run-stop" on:click=move |_| runner.answer_long_run(false)>
                        "Stop"
                    </button>
                </div>
            </div>
            <p class="status-line">
                "status: "
                <span id="status" class=move || format!("status {}", status.get().label())>
                    {move || status.get().label()}
                </span>
            </p>
            <div class="buttons">
                <button id="copy-link" on:click=copy_link>
                    "Copy link"
                </button>
                <span id="copy-status" aria-live="polite">
                    {move || copied.get()}
                </span>
            </div>
            <div class="buttons">
                <button
                    id="export-run"
                    disabled=move || !has_result.get()
                    on:click=move |_| export.run(())
                >
                    "Export run (JSON)"
                </button>
            </div>
        </section>
    }
}

/// Writes to the clipboard; false when the browser has none or refuses.
async fn write_clipboard(text: &str) -> bool {
    let Some(nav) = web_sys::window().map(|w| w.navigator()) else {
        return false;
    };
    // Outside secure contexts `navigator.clipboard` is undefined; calling into it would throw.
    let has = js_sys::Reflect::get(&nav, &"clipboard".into()).is_ok_and(|c| !c.is_undefined());
    if !has {
        return false;
    }
    let promise = nav.clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}
