//! A chart on the page: heading, canvas redrawn whenever the run publishes, and its PNG and data
//! export buttons. Charts that do not apply to the config are hidden, not removed, so their ids
//! stay stable.

use crate::charts::{Chart, ChartInput};
use crate::download;
use crate::trainer::Runner;
use leptos::html;
use leptos::prelude::*;
use mechlab_engine::experiment::superposition::SuperpositionConfig;
use std::time::Duration;

/// One chart with its export buttons.
#[component]
pub fn ChartPanel(
    /// Which chart.
    chart: Chart,
    /// Where the data comes from.
    runner: Runner,
    /// The config the charts describe (the run's, or the controls' before a run).
    cfg: Memo<SuperpositionConfig>,
    /// Bumped on window resize, so canvases redraw at their new width.
    resized: RwSignal<u32>,
) -> impl IntoView {
    let canvas = NodeRef::<html::Canvas>::new();
    let shown = move || cfg.with(|c| chart.applies(c));
    Effect::new(move |_| {
        resized.track();
        runner.snapshot.track();
        cfg.track();
        if chart == Chart::Loss {
            // Only the loss chart reads the curves; the others must not redraw for them.
            runner.history.track();
        }
        let Some(el) = canvas.get() else { return };
        // Draw on the next turn: by then a chart that just became visible has been laid out
        // and has a width to draw at.
        set_timeout(move || redraw(chart, &el, runner, cfg), Duration::ZERO);
    });
    let save_png = move |_| {
        if let Some(el) = canvas.get_untracked() {
            download::canvas_png(&el, &format!("mechlab-{}.png", chart.slug()));
        }
    };
    let (data_label, ext, mime) = chart.data_format();
    let save_data = move |_| {
        let snap = runner.snapshot.get_untracked();
        let text = cfg.with_untracked(|c| {
            runner.history.with_untracked(|history| {
                chart.export(&ChartInput {
                    cfg: c,
                    snap: snap.as_deref(),
                    history,
                })
            })
        });
        if let Some(text) = text {
            download::text(&format!("mechlab-{}.{ext}", chart.slug()), mime, &text);
        }
    };
    let has_data = move || runner.snapshot.with(Option::is_some);
    view! {
        <figure class="chart chart-panel" id=format!("{}-panel", chart.slug()) hidden=move || !shown()>
            <figcaption>
                <h2>{chart.title()}</h2>
                <div class="exports">
                    <button
                        id=format!("{}-png", chart.id())
                        class="small"
                        title="Download the chart as PNG"
                        on:click=save_png
                    >
                        "PNG"
                    </button>
                    <button
                        id=format!("{}-data", chart.id())
                        class="small"
                        title="Download the chart's data"
                        disabled=move || !has_data()
                        on:click=save_data
                    >
                        {data_label}
                    </button>
                </div>
            </figcaption>
            <p class="caption">{chart.caption()}</p>
            <canvas id=chart.id() node_ref=canvas data-updates="0"></canvas>
        </figure>
    }
}

fn redraw(
    chart: Chart,
    el: &web_sys::HtmlCanvasElement,
    runner: Runner,
    cfg: Memo<SuperpositionConfig>,
) {
    let snap = runner.snapshot.get_untracked();
    cfg.with_untracked(|c| {
        if chart.applies(c) {
            runner.history.with_untracked(|history| {
                chart.draw(
                    el,
                    &ChartInput {
                        cfg: c,
                        snap: snap.as_deref(),
                        history,
                    },
                );
            });
        }
    });
}
