//! mechlab's browser app: the Superposition page (Toy Models of Superposition, Elhage et al.
//! 2022), trained live on WebGPU with the CPU reference as a fallback.
//!
//! The page is a thin composition: `state` holds the config and its link, `trainer` the page's
//! side of the training worker (which the crate's library holds, with the messages between the
//! two), `charts` the drawing, `components` the pieces on screen.

mod charts;
mod components;
mod download;
mod state;
mod trainer;

use charts::Chart;
use components::chart_panel::ChartPanel;
use components::controls::Controls;
use components::progress::RunPanel;
use leptos::prelude::*;
use state::Form;
use trainer::Runner;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The Superposition page.
#[component]
fn App() -> impl IntoView {
    let bare_address = state::location_hash()
        .trim_start_matches('#')
        .trim()
        .is_empty();
    let (initial, link_problem) = state::from_location();
    let form = RwSignal::new(Form::from_config(&initial));
    let link_error = RwSignal::new(link_problem);
    let parsed = Memo::new(move |_| form.with(Form::parse).map_err(|e| e.to_string()));
    let last_valid = RwSignal::new(initial);
    let runner = Runner::new();
    runner.start_worker();

    Effect::new(move |loaded: Option<()>| {
        if let Ok(cfg) = parsed.get() {
            last_valid.set(cfg.clone());
            if loaded.is_some() {
                state::write_hash(&cfg);
                link_error.set(None);
            } else if bare_address {
                // On load a bare address gets the default experiment's link, so it can be
                // shared; a link that came with the address stays as it was written, a bad one
                // next to its message.
                state::write_hash(&cfg);
            }
        }
    });

    // Editing the address by hand (or Back/Forward between hashes) loads that experiment.
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let (cfg, problem) = state::from_location();
        match problem {
            None => form.set(Form::from_config(&cfg)),
            Some(msg) => link_error.set(Some(msg)),
        }
    });
    let resized = RwSignal::new(0u32);
    let _ = window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));

    // Charts describe the run on screen; before any run, the config in the controls.
    let chart_cfg = Memo::new(move |_| {
        runner
            .snapshot
            .with(|s| s.as_ref().map(|s| s.cfg.clone()))
            .unwrap_or_else(|| last_valid.get())
    });
    // One message at a time: what blocks the next run first, then what stopped the last one.
    let error = move || {
        parsed
            .with(|r| r.as_ref().err().cloned())
            .or_else(|| runner.error.get())
            .or_else(|| link_error.get())
    };

    view! {
        <header>
            <h1>"mechlab — Superposition"</h1>
            <p class="backend">
                "backend: " <span id="backend">{move || runner.backend.get()}</span>
            </p>
        </header>
        <div id="error" class="error" role="alert" hidden=move || error().is_none()>
            {move || error().unwrap_or_default()}
        </div>
        <main class="layout">
            <aside class="side">
                // Run first: it stays in view above the (long) list of controls.
                <RunPanel runner=runner parsed=parsed />
                <Controls form=form parsed=parsed />
            </aside>
            <section class="charts">
                {Chart::ALL
                    .map(|chart| {
                        view! { <ChartPanel chart=chart runner=runner cfg=chart_cfg resized=resized /> }
                    })
                    .collect_view()}
            </section>
        </main>
        <footer>
            "Toy Models of Superposition (Elhage et al., 2022), trained in your browser. "
            "The address holds the experiment: share it to share the run."
        </footer>
    }
}
