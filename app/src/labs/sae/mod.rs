//! The SAE lab's page: sparse autoencoders of five architectures trained live on planted
//! ground-truth features or a toy model's hidden layer, one at a time or as a frontier sweep,
//! with their curves, density histogram, frontier, latent table and SAELens export.

mod about;
mod charts;
mod controls;
pub mod form;
mod table;
pub mod update;
mod view;
pub mod work;

use crate::components::chart_panel::ChartPanel;
use crate::components::controls::EngineSelect;
use crate::components::link_sync::sync_link;
use crate::components::progress::{BackendLine, ErrorLine, RunPanel};
use crate::download;
use crate::protocol::Job;
use crate::run_controller::Runner;
use crate::url;
use charts::SaeChart;
use controls::SaeControls;
use form::SaeForm;
use leptos::prelude::*;
use mechlab_engine::models::sae::config::SaeConfig;
use mechlab_engine::models::sae::link::{self as link, Sweep};
use mechlab_engine::train::engine::EngineChoice;
use view::SaeRun;

/// The job Run trains for a config and sweep: none when the sweep's runs cannot be made.
fn job(cfg: &SaeConfig, sweep: &Sweep, engine: EngineChoice) -> Result<Job, String> {
    sweep.runs(cfg).map_err(|e| e.to_string())?;
    Ok(Job::new(link::encode_experiment(cfg, sweep), engine))
}

/// The SAE page.
/// How the app shows the lab: `superposition-hidden` on its first visit, which recovers its 40
/// features in seconds (the full-size `ground-truth` is one menu choice away).
pub const PAGE: super::LabPage = super::LabPage {
    name: <mechlab_engine::models::sae::config::SaeConfig as mechlab_engine::experiment::link::LinkConfig>::LAB,
    title: "Sparse autoencoders",
    first_link: || {
        use mechlab_engine::models::sae::config::SaePreset;
        format!(
            "#{}",
            link::encode_experiment(&SaePreset::SuperpositionHidden.config(), &Sweep::Single)
        )
    },
    page: |hash, resized| view! { <SaePage hash=hash resized=resized /> }.into_any(),
    open: crate::worker::work::open_as::<work::SaeWork>,
};

#[component]
pub fn SaePage(
    /// The address's hash, updated on every hashchange that stays on this lab.
    hash: ReadSignal<String>,
    /// Bumped on window resize, so charts redraw at their new width.
    resized: RwSignal<u32>,
) -> impl IntoView {
    let opened = form::from_hash(&hash.get_untracked());
    let (cfg, sweep) = opened.value.unwrap_or_default();
    let form = RwSignal::new(SaeForm::new(&cfg, &sweep));
    let link_error = RwSignal::new(opened.note);
    let parsed = Memo::new(move |_| form.with(SaeForm::parse).map_err(|e| e.to_string()));
    let run = RwSignal::new(None::<SaeRun>);
    let runner = Runner::new(move |ev| run.update(|r| view::on_run_event(r, ev)));
    runner.start_worker();

    sync_link(
        hash,
        parsed,
        link_error,
        // The address gets the whole link at once, every field spelled out.
        false,
        form::from_hash,
        |(c, s): &(SaeConfig, Sweep)| link::encode_experiment(c, s),
        move |(c, s)| form.set(SaeForm::new(c, s)),
    );

    let error = Signal::derive(move || {
        parsed
            .with(|r| r.as_ref().err().cloned())
            .or_else(|| runner.error.get())
            .or_else(|| link_error.get())
    });
    // Where to train is the device's business, not the experiment's: it stays out of the link.
    let engine = RwSignal::new(EngineChoice::Auto);
    let job_signal = Signal::derive(move || {
        parsed
            .get()
            .ok()
            .and_then(|(cfg, sweep)| job(&cfg, &sweep, engine.get()).ok())
    });
    let sweeping = Memo::new(move |_| parsed.with(|p| matches!(p, Ok((_, Sweep::Frontier(_))))));
    let export = move || {
        run.with_untracked(|r| {
            let Some(r) = r else { return };
            let summary = serde_json::json!({
                "runs": r.runs,
                "adapter": r.adapter,
                "metrics": r.latest.as_ref().map(|e| &e.metrics),
                "frontier": r.points,
            });
            if let Some(text) = download::json_text(&summary) {
                download::text("mechlab-sae-run.json", "application/json", &text);
            }
        })
    };
    // One archive holding the folder SAELens loads, named so that two exports never collide.
    let export_saelens = move |_| {
        run.with_untracked(|r| {
            if let Some((cfg, files)) = r.as_ref().and_then(|r| r.saelens.as_ref()) {
                let stem = format!(
                    "mechlab-sae-{}-{}x{}-seed{}",
                    cfg.architecture.name(),
                    cfg.d_sae,
                    cfg.d_in(),
                    cfg.seed
                );
                match files.to_zip(&stem) {
                    Ok(zip) => download::bytes(&format!("{stem}.zip"), "application/zip", &zip),
                    Err(e) => runner.error.set(Some(e.to_string())),
                }
            }
        })
    };
    let has_saelens = move || run.with(|r| r.as_ref().is_some_and(|r| r.saelens.is_some()));
    let summary = move || {
        run.with(|r| {
            let r = r.as_ref()?;
            let cfg = r.current()?;
            // The run training now, with its own setting: during a sweep the controls show
            // the sweep's base config, not the run in progress.
            let mut s = format!(
                "{} {} · run {} of {} · step {} of {} · on {}",
                cfg.architecture.label(),
                charts::knob_label(
                    cfg.architecture.name(),
                    mechlab_engine::experiment::frontier::knob(&cfg.architecture)
                ),
                r.index + 1,
                r.runs.len(),
                r.run_step,
                cfg.steps,
                r.adapter
            );
            if let Some(e) = &r.latest {
                let m = &e.metrics;
                s += &format!(
                    " · NMSE {:.4} · L0 {:.2} · dead {:.1}%",
                    m.reconstruction.normalized_mse,
                    m.reconstruction.l0,
                    100.0 * m.fraction_dead
                );
                if let Some(g) = m.ground_truth {
                    s += &format!(
                        " · MMCS {:.3} · recovered {} of {}",
                        g.mmcs, g.recovered, g.n_true
                    );
                }
            }
            Some(s)
        })
    };

    view! {
        <BackendLine runner=runner />
        <ErrorLine error=error />
        {about::about()}
        <main class="layout">
            <aside class="side">
                <RunPanel
                    runner=runner
                    job=job_signal
                    share_url=Callback::new(move |()| {
                        url::share_url_for(
                            parsed
                                .get_untracked()
                                .ok()
                                .map(|(c, s)| link::encode_experiment(&c, &s))
                                .as_deref(),
                        )
                    })
                    has_result=Signal::derive(move || run.with(Option::is_some))
                    export=Callback::new(move |()| export())
                />
                <fieldset class="controls">
                    <legend>"Engine and export"</legend>
                    <EngineSelect
                        id="sae-engine"
                        engine=engine
                        hint="auto: WebGPU on a hardware adapter; the CPU reference where it is faster (software adapters, no WebGPU) and the run fits"
                    />
                    <div class="buttons">
                        <button
                            id="export-saelens"
                            disabled=move || !has_saelens()
                            title="One zip holding the folder SAELens loads (cfg.json, sae_weights.safetensors) for the last finished SAE"
                            on:click=export_saelens
                        >
                            "Export SAE (SAELens)"
                        </button>
                    </div>
                </fieldset>
                <SaeControls form=form parsed=parsed />
            </aside>
            <section class="charts">
                <p id="sae-summary" class="summary" hidden=move || summary().is_none()>
                    {move || summary().unwrap_or_default()}
                </p>
                {SaeChart::ALL
                    .map(|chart| {
                        view! {
                            <ChartPanel
                                spec=chart.spec()
                                shown=Signal::derive(move || {
                                    run.with(|r| chart.applies(r.as_ref(), sweeping.get()))
                                })
                                has_data=Signal::derive(move || run.with(Option::is_some))
                                track=move || run.track()
                                draw=move |el: &web_sys::HtmlCanvasElement| {
                                    run.with_untracked(|r| chart.draw(el, r.as_ref()))
                                }
                                export=move || run.with_untracked(|r| chart.export(r.as_ref()))
                                resized=resized
                            />
                        }
                    })
                    .collect_view()}
                <table::LatentTable run=run />
            </section>
        </main>
        <footer>
            "Sparse autoencoders (Bricken et al. 2023; Gao et al. 2024; Rajamanoharan et al. 2024), "
            "trained in your browser. The address holds the experiment: share it to share the run."
        </footer>
    }
}
