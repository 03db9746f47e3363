//! The Superposition page (Toy Models of Superposition, Elhage et al. 2022): its controls,
//! run bar and live charts, and what the page keeps of a run.

use std::sync::Arc;

mod about;
mod charts;
mod controls;
pub mod form;
pub mod update;
pub mod work;

use self::charts::{Chart, ChartInput};
use self::controls::Controls;
use self::form::{self as state, Form};
use crate::components::chart_panel::ChartPanel;
use crate::components::controls::EngineSelect;
use crate::components::link_sync::sync_link;
use crate::components::progress::{BackendLine, ErrorLine, RunPanel};
use crate::download;
use crate::protocol::Job;
use crate::run_controller::{History, RunEvent, Runner};
use leptos::prelude::*;
use mechlab_engine::experiment::link::LinkConfig;
use mechlab_engine::experiment::results::SuperpositionResult;
use mechlab_engine::metrics::superposition::SuperpositionMetrics;
use mechlab_engine::models::toy::config::{InstanceSpec, SuperpositionConfig};
use mechlab_engine::models::toy::{unflatten, InstanceWeights};
use update::ToyUpdate;

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
    /// The adapter (or "CPU") the run uses.
    pub adapter: String,
}

/// Loss curves: one row of per-instance mean losses per recorded chunk.
pub type LossHistory = History<Vec<f32>>;

/// What the page keeps of the current run.
#[derive(Clone, Copy)]
pub struct ToyView {
    /// Weights and measures after the latest chunk.
    pub snapshot: RwSignal<Option<Arc<Snapshot>>>,
    /// Loss curves so far.
    pub history: RwSignal<LossHistory>,
}

impl ToyView {
    fn new() -> Self {
        Self {
            snapshot: RwSignal::new(None),
            history: RwSignal::new(LossHistory::default()),
        }
    }

    fn on_run_event(self, ev: RunEvent) {
        match ev {
            RunEvent::Cleared => {
                self.snapshot.set(None);
                self.history.set(LossHistory::default());
            }
            RunEvent::Progress(e, p) => {
                let Some(cfg) = e.get::<SuperpositionConfig>() else {
                    return;
                };
                let Some(u) = p.update.figures::<ToyUpdate>() else {
                    return;
                };
                let (h, f) = (cfg.n_hidden as usize, cfg.n_features as usize);
                let weights = u
                    .params
                    .chunks(cfg.params_per_instance())
                    .map(|block| unflatten(block, h, f))
                    .collect();
                self.history
                    .update(|hist| hist.push(p.step, u.losses.clone()));
                self.snapshot.set(Some(Arc::new(Snapshot {
                    cfg: cfg.clone(),
                    specs: cfg.instances(),
                    step: p.step,
                    params: u.params,
                    weights,
                    metrics: u.metrics,
                    adapter: p.adapter,
                })));
            }
            RunEvent::Reply(_) => {}
        }
    }
}

/// The Superposition page.
/// How the app shows the lab: the paper's first figure on its first visit.
pub const PAGE: super::LabPage = super::LabPage {
    name: <mechlab_engine::models::toy::config::SuperpositionConfig as mechlab_engine::experiment::link::LinkConfig>::LAB,
    title: "Superposition",
    first_link: || "#".into(),
    page: |hash, resized| view! { <SuperpositionPage hash=hash resized=resized /> }.into_any(),
    open: crate::worker::work::open_as::<work::ToyWork>,
};

#[component]
pub fn SuperpositionPage(
    /// The address's hash, updated on every hashchange that stays on this lab.
    hash: ReadSignal<String>,
    /// Bumped on window resize, so charts redraw at their new width.
    resized: RwSignal<u32>,
) -> impl IntoView {
    let opened = state::from_hash(&hash.get_untracked());
    let opened_as_is = opened.note.is_none()
        && !hash
            .get_untracked()
            .trim_start_matches('#')
            .trim()
            .is_empty();
    let initial = opened.value.unwrap_or_default();
    let form = RwSignal::new(Form::from_config(&initial));
    let link_error = RwSignal::new(opened.note);
    let parsed = Memo::new(move |_| form.with(Form::parse).map_err(|e| e.to_string()));
    let last_valid = RwSignal::new(initial);
    // Where to train is the device's business, not the experiment's: it stays out of the link.
    let engine = RwSignal::new(mechlab_engine::train::engine::EngineChoice::Auto);
    let view = ToyView::new();
    let runner = Runner::new(move |ev| view.on_run_event(ev));
    runner.start_worker();

    Effect::new(move |_| {
        if let Ok(cfg) = parsed.get() {
            last_valid.set(cfg);
        }
    });
    // A bare address gets the default experiment's link on load, so it can be shared.
    sync_link(
        hash,
        parsed,
        link_error,
        opened_as_is,
        state::from_hash,
        |c: &SuperpositionConfig| c.to_link(),
        move |c| form.set(Form::from_config(c)),
    );

    // Charts describe the run on screen; before any run, the config in the controls.
    let chart_cfg = Memo::new(move |_| {
        view.snapshot
            .with(|s| s.as_ref().map(|s| s.cfg.clone()))
            .unwrap_or_else(|| last_valid.get())
    });
    // One message at a time: what blocks the next run first, then what stopped the last one.
    let error = Signal::derive(move || {
        parsed
            .with(|r| r.as_ref().err().cloned())
            .or_else(|| runner.error.get())
            .or_else(|| link_error.get())
    });
    let export_run = move || {
        let snap = view.snapshot.get_untracked()?;
        let result =
            SuperpositionResult::new(&snap.cfg, snap.step, snap.adapter.clone(), &snap.params);
        let text = download::json_text(&result)?;
        download::text("mechlab-superposition-run.json", "application/json", &text);
        Some(())
    };

    view! {
        <BackendLine runner=runner />
        <ErrorLine error=error />
        {about::about()}
        <main class="layout">
            <aside class="side">
                // Run first: it stays in view above the (long) list of controls.
                <RunPanel
                    runner=runner
                    job=Signal::derive(move || parsed.get().ok().map(|c| Job::new(c.to_link(), engine.get())))
                    share_url=Callback::new(move |()| state::share_url(parsed.get_untracked().ok().as_ref()))
                    has_result=Signal::derive(move || view.snapshot.with(Option::is_some))
                    export=Callback::new(move |()| {
                        let _ = export_run();
                    })
                />
                <fieldset class="controls">
                    <legend>"Engine"</legend>
                    <EngineSelect
                        id="toy-engine"
                        engine=engine
                        hint="auto: WebGPU wherever there is an adapter (its fused kernel beats the CPU reference even on software adapters); the CPU reference without WebGPU, for runs that fit"
                    />
                </fieldset>
                <Controls form=form parsed=parsed />
            </aside>
            <section class="charts">
                {Chart::ALL
                    .map(|chart| {
                        let draw = move |el: &web_sys::HtmlCanvasElement| {
                            let snap = view.snapshot.get_untracked();
                            chart_cfg.with_untracked(|c| {
                                view.history.with_untracked(|history| {
                                    chart.draw(el, &ChartInput { cfg: c, snap: snap.as_deref(), history });
                                });
                            });
                        };
                        let export = move || {
                            let snap = view.snapshot.get_untracked();
                            chart_cfg.with_untracked(|c| {
                                view.history.with_untracked(|history| {
                                    chart.export(&ChartInput { cfg: c, snap: snap.as_deref(), history })
                                })
                            })
                        };
                        view! {
                            <ChartPanel
                                spec=chart.spec()
                                shown=Signal::derive(move || chart_cfg.with(|c| chart.applies(c)))
                                has_data=Signal::derive(move || view.snapshot.with(Option::is_some))
                                track=move || {
                                    view.snapshot.track();
                                    chart_cfg.track();
                                    if chart == Chart::Loss {
                                        // Only the loss chart reads the curves; the others must not redraw for them.
                                        view.history.track();
                                    }
                                }
                                draw=draw
                                export=export
                                resized=resized
                            />
                        }
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
