//! The Transformer lab's page: one language model, or a SoLU and a GeLU model side by side on
//! the same batches, trained live on Shakespeare or the user's text, with both curves on one
//! chart, samples, the attention pattern and next-token distribution of a prompt, and
//! checkpoints in TransformerLens's layout saved and opened in the page.

mod about;
mod charts;
mod controls;
mod files;
pub mod form;
mod inspect;
mod sources;
mod summary;
pub mod update;
mod view;
pub mod work;

use crate::components::chart_panel::ChartPanel;
use crate::components::controls::TextForm;
use crate::components::link_sync::sync_link;
use crate::components::progress::{BackendLine, ErrorLine, RunPanel};
use crate::download;
use crate::protocol::{Job, ToWorker, UserFile};
use crate::run_controller::{Runner, Status};
use crate::url;
use controls::LmControls;
use files::Given;
use form::LmForm;
use inspect::{InspectPanel, SampleSettings, SamplesPanel};
use leptos::prelude::*;
use mechlab_engine::models::transformer::link::LmExperiment;
use mechlab_engine::models::transformer::lm::LmPreset;
use mechlab_engine::train::engine::EngineChoice;
use sources::SourcesPanel;
use view::{LmRun, Replies};

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

/// How the app shows the lab (`lm` in links, the CLI, the worker and the code; "Transformer"
/// to people): the default run on its first visit.
pub const PAGE: super::LabPage = super::LabPage {
    name: <mechlab_engine::models::transformer::lm::LmConfig as mechlab_engine::experiment::link::LinkConfig>::LAB,
    title: "Transformer",
    first_link: || "#v=1&lab=lm".into(),
    page: |hash, resized| view! { <LmPage hash=hash resized=resized /> }.into_any(),
    open: crate::worker::work::open_as::<work::LmWork>,
};

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
    // What an opened checkpoint is, and its files, which Run continues; any run started since
    // says nothing of it.
    let opened = RwSignal::new(None::<String>);
    let opened_file = RwSignal::new(None::<UserFile>);
    let runner = Runner::new(move |ev| {
        if matches!(ev, crate::run_controller::RunEvent::Cleared) {
            opened.set(None);
            opened_file.set(None);
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
    let settings = SampleSettings::new();
    let sample = settings.request;

    let job_of = move |e: &LmExperiment, checkpoint: Option<UserFile>, paused: bool| Job {
        corpus: corpus.get_untracked().map(|(f, _)| f),
        checkpoint,
        paused,
        sample: Some(sample.get_untracked().unwrap_or_default()),
        ..Job::new(e.encode(), engine.get_untracked())
    };
    // Run trains the controls' experiment: from the opened checkpoint while one is open.
    let job_signal = Signal::derive(move || {
        corpus.track();
        engine.track();
        let checkpoint = opened_file.get();
        parsed.get().ok().map(|e| job_of(&e, checkpoint, false))
    });

    let give = move |list: Option<Vec<web_sys::File>>| {
        let Some(list) = list else { return };
        leptos::task::spawn_local(async move {
            match files::take(list).await {
                Err(e) => file_error.set(Some(e)),
                Ok(Given::Text(f, chars)) => {
                    file_error.set(None);
                    corpus.set(Some((f, chars)));
                }
                Ok(Given::Checkpoint(f, cks)) => {
                    // Everything the worker would refuse without a device is checked first, so
                    // files that cannot open leave what is open as it was.
                    let e = experiment_of(&cks, &form.get_untracked())
                        .and_then(|e| work::checkpoint_tokenizer(&cks).map(|_| e));
                    let e = match e {
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
                    runner.start(job_of(&e, Some(f.clone()), true));
                    opened_file.set(Some(f));
                    opened.set(Some(match step {
                        Some(s) => format!(
                            "Opened {name}: {} at step {s} of {}. Look inside it below; Run or \
                             Resume continues its training exactly; Reset, then Run, starts \
                             afresh.",
                            cks.iter()
                                .map(|(_, c)| c.params.cfg.act_fn.name())
                                .collect::<Vec<_>>()
                                .join(" and "),
                            e.run.steps
                        ),
                        None => format!(
                            "Opened {name}: a model without mechlab's run state. Look inside it \
                             below; Run or Resume trains on from its weights with these settings."
                        ),
                    }));
                }
            }
        });
    };

    let save = Callback::new(move |()| runner.request(ToWorker::Save));
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
            let summary = r.export(parsed.get_untracked().ok().map(|e| e.encode()));
            if let Some(text) = download::json_text(&summary) {
                download::text("mechlab-lm-run.json", "application/json", &text);
            }
        })
    };
    let has_run =
        Signal::derive(move || run.with(Option::is_some) || runner.status.get() == Status::Paused);
    let summary = move || run.with(|r| r.as_ref().map(LmRun::summary));
    let compare = move || run.with(|r| r.as_ref().and_then(LmRun::comparison));
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        give(
            ev.data_transfer()
                .and_then(|d| d.files())
                .map(|l| files::of_list(&l)),
        );
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
                <SourcesPanel
                    corpus=corpus
                    engine=engine
                    give=Callback::new(give)
                    has_run=has_run
                    save=save
                />
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
                <SamplesPanel run=run prompt=settings.prompt />
                <InspectPanel
                    run=run
                    replies=replies
                    settings=settings
                    has_run=has_run
                    inspect=Callback::new(move |()| inspect())
                    resized=resized
                />
            </section>
        </main>
        <footer>
            "SoLU and GeLU language models (Elhage et al. 2022, Softmax Linear Units), trained in your browser, "
            "with TransformerLens's names and checkpoints. The address holds the experiment: share it to share the run."
        </footer>
    }
}
