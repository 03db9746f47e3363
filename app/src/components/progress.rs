//! The run bar: Run, Pause/Resume, Reset, progress with ETA and status, the share link and the
//! whole-run export.

use crate::download;
use crate::state::share_url;
use crate::trainer::{Runner, Status};
use leptos::prelude::*;
use mechlab_engine::experiment::results::SuperpositionResult;
use mechlab_engine::experiment::superposition::SuperpositionConfig;

/// Buttons, progress and status of the run.
#[component]
pub fn RunPanel(
    /// The training controller.
    runner: Runner,
    /// The parsed config, or why it does not parse.
    parsed: Memo<Result<SuperpositionConfig, String>>,
) -> impl IntoView {
    let status = runner.status;
    let can_run = move || parsed.with(Result::is_ok) && status.get() != Status::Running;
    let run = move |_| {
        if let Ok(cfg) = parsed.get_untracked() {
            runner.start(cfg);
        }
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
            parsed.with(|r| r.as_ref().map_or(0, |c| c.steps))
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
        let url = share_url(parsed.get_untracked().ok().as_ref());
        leptos::task::spawn_local(async move {
            let ok = write_clipboard(&url).await;
            copied.set(if ok {
                "copied".into()
            } else {
                "copied to the address bar (the clipboard was blocked)".into()
            });
            crate::trainer::sleep_ms(2500).await;
            copied.set(String::new());
        });
    };
    let export_run = move |_| {
        let Some(snap) = runner.snapshot.get_untracked() else {
            return;
        };
        let result = SuperpositionResult::new(
            &snap.cfg,
            snap.step,
            snap.adapter.clone(),
            &snap.params,
            &snap.last_loss,
        );
        if let Ok(text) = serde_json::to_string_pretty(&result) {
            download::text("mechlab-superposition-run.json", "application/json", &text);
        }
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
                    disabled=move || runner.snapshot.with(Option::is_none)
                    on:click=export_run
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
