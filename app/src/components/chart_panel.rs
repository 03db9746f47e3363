//! A chart on the page: heading, canvas redrawn whenever its data changes, a hover readout, and
//! its PNG and data export buttons. Charts that do not apply to the config are hidden, not
//! removed, so their ids stay stable. Every lab's charts use it.

use crate::charts::canvas::readout_at;
use crate::download;
use leptos::html;
use leptos::prelude::*;
use std::time::Duration;
use web_sys::HtmlCanvasElement;

/// A chart's names and its data export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartSpec {
    /// Short name, used in file names and the panel's id (`{slug}-panel`).
    pub slug: &'static str,
    /// The canvas's DOM id; the export buttons are `{id}-png` and `{id}-data`.
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// One line on how to read it.
    pub caption: &'static str,
    /// The data button's label, the file's extension and its MIME type.
    pub data: (&'static str, &'static str, &'static str),
}

/// One chart with its export buttons.
#[component]
pub fn ChartPanel<T, D, E>(
    /// Names and export format.
    spec: ChartSpec,
    /// Whether the chart applies to what is shown.
    shown: Signal<bool>,
    /// Whether there is data to export (as data or as a picture: an empty chart is neither).
    has_data: Signal<bool>,
    /// Reads (tracks) the signals the chart draws from, so it redraws when they change.
    track: T,
    /// Draws the chart.
    draw: D,
    /// The chart's data as its export file holds it; `None` before there is any.
    export: E,
    /// Bumped on window resize, so canvases redraw at their new width.
    resized: RwSignal<u32>,
) -> impl IntoView
where
    T: Fn() + 'static,
    D: Fn(&HtmlCanvasElement) + Copy + 'static,
    E: Fn() -> Option<String> + 'static,
{
    let canvas = NodeRef::<html::Canvas>::new();
    Effect::new(move |_| {
        resized.track();
        track();
        let shown = shown.get();
        let Some(el) = canvas.get() else { return };
        if !shown {
            return;
        }
        // Draw on the next turn: by then a chart that just became visible has been laid out
        // and has a width to draw at.
        set_timeout(move || draw(&el), Duration::ZERO);
    });
    // The hover readout: the nearest registered point's text, beside that point.
    let readout = RwSignal::new(None::<(f64, f64, String)>);
    let save_png = move |_| {
        if let Some(el) = canvas.get_untracked() {
            download::canvas_png(&el, &format!("mechlab-{}.png", spec.slug));
        }
    };
    let (data_label, ext, mime) = spec.data;
    let save_data = move |_| {
        if let Some(text) = export() {
            download::text(&format!("mechlab-{}.{ext}", spec.slug), mime, &text);
        }
    };
    view! {
        <figure class="chart chart-panel" id=format!("{}-panel", spec.slug) hidden=move || !shown.get()>
            <figcaption>
                <h2>{spec.title}</h2>
                <div class="exports">
                    <button
                        id=format!("{}-png", spec.id)
                        class="small"
                        title="Download the chart as PNG"
                        disabled=move || !has_data.get()
                        on:click=save_png
                    >
                        "PNG"
                    </button>
                    <button
                        id=format!("{}-data", spec.id)
                        class="small"
                        title="Download the chart's data"
                        disabled=move || !has_data.get()
                        on:click=save_data
                    >
                        {data_label}
                    </button>
                </div>
            </figcaption>
            <p class="caption">{spec.caption}</p>
            <div class="chart-canvas">
                // A picture to assistive technology, read as its caption until the chart
                // describes what it drew (Plot::describe).
                <canvas
                    id=spec.id
                    node_ref=canvas
                    data-updates="0"
                    role="img"
                    aria-label=spec.caption
                    data-caption=spec.caption
                    on:mousemove=move |ev| {
                        let (x, y) = (ev.offset_x() as f64, ev.offset_y() as f64);
                        readout.set(readout_at(spec.id, x, y));
                    }
                    on:mouseleave=move |_| readout.set(None)
                ></canvas>
                <div
                    class="readout"
                    id=format!("{}-readout", spec.id)
                    hidden=move || readout.with(Option::is_none)
                    style:left=move || readout.with(|r| r.as_ref().map(|r| format!("{}px", r.0 + 8.0)))
                    style:top=move || readout.with(|r| r.as_ref().map(|r| format!("{}px", r.1 + 8.0)))
                >
                    {move || readout.with(|r| r.as_ref().map(|r| r.2.clone()))}
                </div>
            </div>
        </figure>
    }
}
