//! The Transformer page's look inside a prompt: the sample settings (which the live samples use
//! too), each model's attention pattern at a chosen layer and head, and its next-token
//! distribution and continuation.

use super::charts;
use super::view::{LmRun, Replies};
use crate::components::chart_panel::ChartPanel;
use crate::protocol::{SampleRequest, DEFAULT_PROMPT};
use leptos::prelude::*;
use mechlab_engine::models::transformer::lm::{LmConfig, SampleOptions};

/// The sample settings as typed, and the request they make.
#[derive(Clone, Copy)]
pub struct SampleSettings {
    /// The prompt.
    pub prompt: RwSignal<String>,
    /// The softmax temperature, as typed.
    pub temperature: RwSignal<String>,
    /// Top-k, as typed.
    pub top_k: RwSignal<String>,
    /// The request, or which setting is bad.
    pub request: Memo<Result<SampleRequest, String>>,
}

impl SampleSettings {
    /// The default prompt, temperature 0.8 and top-k 20.
    pub fn new() -> Self {
        let prompt = RwSignal::new(DEFAULT_PROMPT.to_string());
        let temperature = RwSignal::new("0.8".to_string());
        let top_k = RwSignal::new("20".to_string());
        let request =
            Memo::new(move |_| sample_request(&prompt.get(), &temperature.get(), &top_k.get()));
        Self {
            prompt,
            temperature,
            top_k,
            request,
        }
    }
}

/// The sample settings the controls describe; the error names the bad one.
fn sample_request(prompt: &str, temperature: &str, top_k: &str) -> Result<SampleRequest, String> {
    let temperature: f32 = temperature
        .trim()
        .parse()
        .ok()
        .filter(|t: &f32| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("temperature = {temperature}: must be a number, 0 or above"))?;
    let top_k: u32 = top_k
        .trim()
        .parse()
        .map_err(|_| format!("top-k = {top_k}: must be a whole number, 0 for all"))?;
    Ok(SampleRequest {
        prompt: prompt.to_string(),
        options: SampleOptions {
            tokens: 200,
            temperature,
            top_k,
            seed: 0,
        },
    })
}

/// The live samples, one a model, after the prompt.
#[component]
pub fn SamplesPanel(run: RwSignal<Option<LmRun>>, prompt: RwSignal<String>) -> impl IntoView {
    view! {
        <section class="panel" id="lm-samples">
            <h2>"Samples"</h2>
            <p class="caption">"A continuation of the prompt every few seconds of training (temperature and top-k below)."</p>
            {move || {
                run.with(|r| {
                    r.as_ref()
                        .map(|r| {
                            r.names()
                                .into_iter()
                                .zip(&r.models)
                                .enumerate()
                                .map(|(i, (n, m))| {
                                    let text = m.sample.clone().unwrap_or_default();
                                    view! {
                                        <h3>{n}</h3>
                                        <pre class="sample" id=format!("lm-sample-{i}")>
                                            <span class="prompt">{prompt.get_untracked()}</span>
                                            {text}
                                        </pre>
                                    }
                                })
                                .collect_view()
                        })
                })
            }}
        </section>
    }
}

/// A sample setting typed as text (checked by [`SampleSettings::request`]).
#[component]
fn Setting(id: &'static str, name: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <label class="field">
            <span class="name">{name}</span>
            <input
                id=id
                type="text"
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
        </label>
    }
}

/// The look-inside panel: the settings, the Look inside button, and what came back.
#[component]
pub fn InspectPanel(
    run: RwSignal<Option<LmRun>>,
    replies: RwSignal<Replies>,
    settings: SampleSettings,
    /// Whether there is a model to look inside.
    has_run: Signal<bool>,
    /// Asks the worker to look inside the prompt.
    inspect: Callback<()>,
    /// Bumped on window resize.
    resized: RwSignal<u32>,
) -> impl IntoView {
    let SampleSettings {
        prompt,
        temperature,
        top_k,
        request,
    } = settings;
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(0usize);
    let names = move || run.with(|r| r.as_ref().map(LmRun::names).unwrap_or_default());
    let shape = move || {
        run.with(|r| {
            r.as_ref()
                .and_then(|r| r.runs.first())
                .map_or((1, 1), |c: &LmConfig| {
                    (c.model.n_layers as usize, c.model.n_heads as usize)
                })
        })
    };
    view! {
        <section class="panel" id="lm-inspect-panel">
            <h2>"Look inside"</h2>
            <label class="field">
                <span class="name">"Prompt"</span>
                <textarea
                    id="lm-prompt"
                    rows="3"
                    spellcheck="false"
                    prop:value=move || prompt.get()
                    on:input=move |ev| prompt.set(event_target_value(&ev))
                ></textarea>
            </label>
            <div class="row">
                <Setting id="lm-temperature" name="Temperature" value=temperature />
                <Setting id="lm-top-k" name="Top-k" value=top_k />
                <button
                    id="lm-inspect"
                    class="primary"
                    disabled=move || !has_run.get() || request.with(Result::is_err)
                    on:click=move |_| inspect.run(())
                >
                    "Look inside"
                </button>
            </div>
            <p class="error-inline" id="lm-sample-error" hidden=move || request.with(Result::is_ok)>
                {move || request.with(|s| s.as_ref().err().cloned().unwrap_or_default())}
            </p>
            <p
                class="error-inline"
                id="lm-inspect-error"
                hidden=move || !replies.with(|r| matches!(r.inspection, Some(Err(_))))
            >
                {move || replies.with(|r| match &r.inspection {
                    Some(Err(e)) => e.clone(),
                    _ => String::new(),
                })}
            </p>
            <div class="row">
                <label class="field">
                    <span class="name">"Layer"</span>
                    <select id="lm-layer" on:change=move |ev| layer.set(event_target_value(&ev).parse().unwrap_or(0))>
                        {move || (0..shape().0).map(|l| view! { <option value=l.to_string() prop:selected=move || layer.get() == l>{l}</option> }).collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span class="name">"Head"</span>
                    <select id="lm-head" on:change=move |ev| head.set(event_target_value(&ev).parse().unwrap_or(0))>
                        {move || (0..shape().1).map(|h| view! { <option value=h.to_string() prop:selected=move || head.get() == h>{h}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <ChartPanel
                spec=charts::ATTENTION
                shown=Signal::derive(|| true)
                has_data=Signal::derive(move || replies.with(|r| matches!(r.inspection, Some(Ok(_)))))
                track=move || {
                    replies.track();
                    layer.track();
                    head.track();
                }
                draw=move |el: &web_sys::HtmlCanvasElement| {
                    let n = names();
                    replies.with_untracked(|r| charts::draw_attention(el, &n, r, layer.get_untracked(), head.get_untracked()))
                }
                export=move || {
                    let n = names();
                    replies.with_untracked(|r| charts::export_attention(&n, r))
                }
                resized=resized
            />
            <div class="next-tokens">
                {move || {
                    let n = names();
                    replies.with(|r| match &r.inspection {
                        Some(Ok(views)) => views
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let name = n.get(i).copied().unwrap_or("model");
                                view! {
                                    <div class="next">
                                        <h3>{format!("{name}: next token")}</h3>
                                        <ol id=format!("lm-next-{i}")>
                                            {v.inspection.next.iter().map(|(t, p)| {
                                                let width = format!("width: {:.1}%", 100.0 * p);
                                                view! {
                                                    <li>
                                                        <code class="token">{charts::token_label(t)}</code>
                                                        <span class="bar" style=width></span>
                                                        <span class="p">{format!("{:.1}%", 100.0 * p)}</span>
                                                    </li>
                                                }
                                            }).collect_view()}
                                        </ol>
                                        <pre class="sample" id=format!("lm-continuation-{i}")>{v.sample.clone()}</pre>
                                    </div>
                                }
                            })
                            .collect_view()
                            .into_any(),
                        _ => ().into_any(),
                    })
                }}
            </div>
        </section>
    }
}
