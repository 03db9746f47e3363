//! The Transformer lab's page: one language model, or a SoLU and a GeLU model side by side on
//! the same batches, trained live on Shakespeare or the user's text, with both curves on one
//! chart, samples, the attention pattern and next-token distribution of a prompt, and
//! checkpoints in TransformerLens's layout saved and opened in the page.

mod about;
mod charts;
mod controls;
mod files;
pub mod form;
mod view;

use crate::components::chart_panel::ChartPanel;
use crate::components::controls::{EngineSelect, TextForm};
use crate::components::link_sync::sync_link;
use crate::components::progress::{BackendLine, ErrorLine, RunPanel};
use crate::download;
use crate::run_controller::{Runner, Status};
use crate::url;
use controls::LmControls;
use files::Given;
use form::LmForm;
use leptos::prelude::*;
use mechlab_app::protocol::{Job, SampleRequest, ToWorker, UserFile, DEFAULT_PROMPT};
use mechlab_engine::experiment::link::LinkConfig;
use mechlab_engine::experiment::lm_link::LmExperiment;
use mechlab_engine::models::transformer::lm::{LmConfig, LmPreset, SampleOptions};
use mechlab_engine::train::engine::EngineChoice;
use view::{LmRun, Replies};

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

/// The run a checkpoint's models continue, as the controls show it.
fn experiment_of(
    cks: &[(String, mechlab_engine::io::transformer_lens::Checkpoint)],
    form: &LmForm,
) -> Result<LmExperiment, String> {
    let first = &cks[0].1;
    let vs = cks.get(1).map(|(_, c)| c.params.cfg.act_fn);
    let mut f = match &first.run {
        Some((run, _)) => {
            let mut run = run.clone();
            run.model.d_vocab = 0;
            LmForm::new(&LmExperiment { run, vs })
        }
        None => form.with_model(&first.params.cfg),
    };
    f.set_text("vs", vs.map_or("none", |a| a.name()).to_string());
    f.parse().map_err(|e| e.to_string())
}

/// The Transformer page.
#[component]
pub fn LmPage(
    /// The address's hash, updated on every hashchange that stays on this lab.
    hash: ReadSignal<String>,
    /// Bumped on window resize, so charts redraw at their new width.
    resized: RwSignal<u32>,
) -> impl IntoView {
    let opened = form::from_hash(&hash.get_untracked());
    let experiment = opened
        .value
        .unwrap_or_else(|| LmExperiment::preset(LmPreset::SoluVsGelu));
    let form = RwSignal::new(LmForm::new(&experiment));
    let link_error = RwSignal::new(opened.note);
    let parsed = Memo::new(move |_| form.with(LmForm::parse).map_err(|e| e.to_string()));
    let run = RwSignal::new(None::<LmRun>);
    let replies = RwSignal::new(Replies::default());
    // What an opened checkpoint is; any run started since says nothing of it.
    let opened = RwSignal::new(None::<String>);
    let runner = Runner::new(move |ev| {
        if matches!(ev, crate::run_controller::RunEvent::Cleared) {
            opened.set(None);
        }
        run.update(|r| replies.update(|rep| view::on_run_event(r, rep, ev)))
    });
    runner.start_worker();

    sync_link(
        hash,
        parsed,
        link_error,
        // The address gets the whole link at once, every field spelled out.
        false,
        form::from_hash,
        LmExperiment::encode,
        move |e| form.set(LmForm::new(e)),
    );

    // The text, the engine and the sample settings are the user's and the device's business,
    // not the experiment's: they stay out of the link.
    let corpus = RwSignal::new(None::<(UserFile, usize)>);
    let file_error = RwSignal::new(None::<String>);
    let engine = RwSignal::new(EngineChoice::Auto);
    let prompt = RwSignal::new(DEFAULT_PROMPT.to_string());
    let temperature = RwSignal::new("0.8".to_string());
    let top_k = RwSignal::new("20".to_string());
    let sample =
        Memo::new(move |_| sample_request(&prompt.get(), &temperature.get(), &top_k.get()));
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(0usize);

    let job_of = move |e: &LmExperiment, checkpoint: Option<UserFile>, paused: bool| Job {
        corpus: corpus.get_untracked().map(|(f, _)| f),
        checkpoint,
        paused,
        sample: Some(sample.get_untracked().unwrap_or_default()),
        ..Job::new(e.encode(), engine.get_untracked())
    };
    let job_signal = Signal::derive(move || {
        corpus.track();
        engine.track();
        parsed.get().ok().map(|e| job_of(&e, None, false))
    });

    let give = move |list: Option<web_sys::FileList>| {
        let Some(list) = list else { return };
        leptos::task::spawn_local(async move {
            match files::take(list).await {
                Err(e) => file_error.set(Some(e)),
                Ok(Given::Text(f, chars)) => {
                    file_error.set(None);
                    corpus.set(Some((f, chars)));
                }
                Ok(Given::Checkpoint(f, cks)) => {
                    let e = match experiment_of(&cks, &form.get_untracked()) {
                        Ok(e) => e,
                        Err(e) => {
                            file_error.set(Some(format!("{}: {e}", f.name)));
                            return;
                        }
                    };
                    file_error.set(None);
                    let step = cks[0].1.run.as_ref().map(|(_, s)| s.step);
                    let name = f.name.clone();
                    form.set(LmForm::new(&e));
                    runner.start(job_of(&e, Some(f), true));
                    opened.set(Some(match step {
                        Some(s) => format!(
                            "Opened {name}: {} at step {s} of {}. Look inside it below; Resume \
                             continues its training exactly, Run starts afresh.",
                            cks.iter()
                                .map(|(_, c)| c.params.cfg.act_fn.name())
                                .collect::<Vec<_>>()
                                .join(" and "),
                            e.run.steps
                        ),
                        None => format!(
                            "Opened {name}: a model without mechlab's run state. Look inside it \
                             below; Resume trains on from its weights with these settings."
                        ),
                    }));
                }
            }
        });
    };

    let save = move |_| runner.request(ToWorker::Save);
    // A saved archive downloads once, as it arrives.
    Effect::new(move |_| {
        let saved = replies.with(|r| r.checkpoint.is_some());
        if !saved {
            return;
        }
        if let Some((step, archive)) = replies.try_update(|r| r.checkpoint.take()).flatten() {
            match archive {
                Ok(bytes) => download::bytes(
                    &format!("mechlab-lm-step{step}.zip"),
                    "application/zip",
                    &bytes,
                ),
                Err(e) => file_error.set(Some(format!("saving the checkpoint: {e}"))),
            }
        }
    });
    let inspect = move || {
        if let Ok(req) = sample.get_untracked() {
            runner.request(ToWorker::Inspect(req));
        }
    };
    // A finished or paused run is looked inside at once, so the panel is never stale.
    Effect::new(move |_| {
        if matches!(runner.status.get(), Status::Done | Status::Paused) {
            inspect();
        }
    });

    let error = Signal::derive(move || {
        parsed
            .with(|r| r.as_ref().err().cloned())
            .or_else(|| runner.error.get())
            .or_else(|| file_error.get())
            .or_else(|| link_error.get())
    });
    let export = move || {
        run.with_untracked(|r| {
            let Some(r) = r else { return };
            let models: Vec<serde_json::Value> = r
                .names()
                .iter()
                .zip(&r.models)
                .zip(&r.runs)
                .map(|((name, m), cfg)| {
                    serde_json::json!({
                        "act_fn": name,
                        "config": cfg,
                        "link": cfg.to_link(),
                        "train": {"steps": m.train.steps, "loss": m.train.points},
                        "validation": {"steps": m.validation.steps, "loss": m.validation.points},
                        "sample": m.sample,
                    })
                })
                .collect();
            let summary = serde_json::json!({
                "link": parsed.get_untracked().ok().map(|e| e.encode()),
                "adapter": r.adapter,
                "data": r.data,
                "step": r.step,
                "models": models,
            });
            if let Some(text) = download::json_text(&summary) {
                download::text("mechlab-lm-run.json", "application/json", &text);
            }
        })
    };
    let has_run = move || run.with(Option::is_some) || runner.status.get() == Status::Paused;
    let summary = move || {
        run.with(|r| {
            let r = r.as_ref()?;
            let mut parts: Vec<String> = r
                .names()
                .iter()
                .zip(&r.models)
                .map(|(n, m)| {
                    let loss = m
                        .train
                        .points
                        .last()
                        .map_or(String::new(), |l| format!(" loss {l:.3}"));
                    let val = m
                        .validation
                        .points
                        .last()
                        .map_or(String::new(), |v| format!(", validation {v:.3}"));
                    format!("{n}:{loss}{val}")
                })
                .collect();
            parts.push(format!(
                "{:.0} tokens/s, {:.2} GFLOP/s on {}",
                r.tokens_per_sec,
                r.flops_per_sec / 1e9,
                r.adapter
            ));
            Some(parts.join(" · "))
        })
    };
    let compare = move || {
        run.with(|r| {
            let r = r.as_ref()?;
            let names = r.names();
            let vals = r.last_validation();
            match (names.as_slice(), vals.as_slice()) {
                ([a, b], [Some(x), Some(y)]) => Some(format!(
                    "Held-out loss at step {}: {a} {x:.4} · {b} {y:.4} · {a} − {b} = {:+.4} nats per token",
                    r.step,
                    x - y
                )),
                _ => None,
            }
        })
    };
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
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        give(ev.data_transfer().and_then(|d| d.files()));
    };

    view! {
        <BackendLine runner=runner />
        <ErrorLine error=error />
        {about::about()}
        <main
            class="layout"
            on:dragover=move |ev: web_sys::DragEvent| ev.prevent_default()
            on:drop=on_drop
        >
            <aside class="side">
                <RunPanel
                    runner=runner
                    job=job_signal
                    share_url=Callback::new(move |()| {
                        url::share_url_for(parsed.get_untracked().ok().map(|e| e.encode()).as_deref())
                    })
                    has_result=Signal::derive(move || run.with(Option::is_some))
                    export=Callback::new(move |()| export())
                />
                <fieldset class="controls">
                    <legend>"Text, engine and checkpoints"</legend>
                    <label class="field">
                        <span class="name">"Text"</span>
                        <span id="lm-corpus">
                            {move || match corpus.get() {
                                None => "Shakespeare: 42 works; Hamlet, The Tempest and the sonnets held out".to_string(),
                                Some((f, chars)) => format!("{}: {chars} characters; its last tenth held out", f.name),
                            }}
                        </span>
                        <input
                            id="lm-corpus-file"
                            type="file"
                            accept=".txt,text/plain"
                            on:change=move |ev| give(files::of_input(&ev))
                        />
                        <button
                            id="lm-corpus-default"
                            class="small"
                            hidden=move || corpus.with(Option::is_none)
                            on:click=move |_| corpus.set(None)
                        >
                            "Back to Shakespeare"
                        </button>
                        <small class="hint">"a UTF-8 .txt of your own, or drop it on the page"</small>
                    </label>
                    <EngineSelect id="lm-engine" engine=engine hint="auto: WebGPU on a hardware adapter; the CPU reference where it is faster (software adapters, no WebGPU) and the run fits" />
                    <label class="field">
                        <span class="name">"Open a checkpoint"</span>
                        <input
                            id="lm-checkpoint-file"
                            type="file"
                            multiple=true
                            accept=".zip,.json,.safetensors"
                            on:change=move |ev| give(files::of_input(&ev))
                        />
                        <small class="hint">
                            "a .zip saved here, or a TransformerLens folder's config.json, model.safetensors and tokenizer.json; or drop them on the page"
                        </small>
                    </label>
                    <div class="buttons">
                        <button
                            id="lm-save"
                            disabled=move || !has_run()
                            title="model.safetensors, config.json (HookedTransformerConfig), tokenizer.json and the optimiser state, per model, in one .zip"
                            on:click=save
                        >
                            "Save checkpoint"
                        </button>
                    </div>
                </fieldset>
                <LmControls form=form parsed=parsed />
            </aside>
            <section class="charts">
                <p id="lm-opened" class="summary" hidden=move || opened.with(Option::is_none)>
                    {move || opened.get().unwrap_or_default()}
                </p>
                <p id="lm-summary" class="summary" hidden=move || summary().is_none()>
                    {move || summary().unwrap_or_default()}
                </p>
                <p id="lm-compare" class="summary" hidden=move || compare().is_none()>
                    {move || compare().unwrap_or_default()}
                </p>
                <p id="lm-data" class="caption" hidden=move || run.with(|r| r.as_ref().is_none_or(|r| r.data.is_none()))>
                    {move || run.with(|r| r.as_ref().and_then(|r| r.data.clone()).unwrap_or_default())}
                </p>
                <ChartPanel
                    spec=charts::LOSS
                    shown=Signal::derive(|| true)
                    has_data=Signal::derive(move || run.with(Option::is_some))
                    track=move || run.track()
                    draw=move |el: &web_sys::HtmlCanvasElement| run.with_untracked(|r| charts::draw_loss(el, r.as_ref()))
                    export=move || run.with_untracked(|r| charts::export_loss(r.as_ref()))
                    resized=resized
                />
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
                        <label class="field">
                            <span class="name">"Temperature"</span>
                            <input
                                id="lm-temperature"
                                type="text"
                                prop:value=move || temperature.get()
                                on:input=move |ev| temperature.set(event_target_value(&ev))
                            />
                        </label>
                        <label class="field">
                            <span class="name">"Top-k"</span>
                            <input
                                id="lm-top-k"
                                type="text"
                                prop:value=move || top_k.get()
                                on:input=move |ev| top_k.set(event_target_value(&ev))
                            />
                        </label>
                        <button
                            id="lm-inspect"
                            class="primary"
                            disabled=move || !has_run() || sample.with(Result::is_err)
                            on:click=move |_| inspect()
                        >
                            "Look inside"
                        </button>
                    </div>
                    <p class="error-inline" id="lm-sample-error" hidden=move || sample.with(Result::is_ok)>
                        {move || sample.with(|s| s.as_ref().err().cloned().unwrap_or_default())}
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
            </section>
        </main>
        <footer>
            "SoLU and GeLU language models (Elhage et al. 2022, Softmax Linear Units), trained in your browser, "
            "with TransformerLens's names and checkpoints. The address holds the experiment: share it to share the run."
        </footer>
    }
}
