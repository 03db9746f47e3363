//! Where the Transformer page's run comes from and goes: the text it trains on, the engine, a
//! checkpoint to open, and the checkpoint to save.

use super::files;
use crate::components::controls::EngineSelect;
use crate::protocol::UserFile;
use leptos::prelude::*;
use mechlab_engine::train::engine::EngineChoice;

/// The text, engine and checkpoint controls.
#[component]
pub fn SourcesPanel(
    /// The user's text and its characters, or none for Shakespeare.
    corpus: RwSignal<Option<(UserFile, usize)>>,
    engine: RwSignal<EngineChoice>,
    /// Takes files picked or dropped: a text, or a checkpoint's.
    give: Callback<Option<Vec<web_sys::File>>>,
    /// Whether there is a model to save.
    has_run: Signal<bool>,
    /// Asks the worker for a checkpoint.
    save: Callback<()>,
) -> impl IntoView {
    view! {
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
                    on:change=move |ev| give.run(files::of_input(&ev))
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
                    on:change=move |ev| give.run(files::of_input(&ev))
                />
                <small class="hint">
                    "a .zip saved here, or a TransformerLens folder's config.json, model.safetensors and tokenizer.json; or drop them on the page"
                </small>
            </label>
            <div class="buttons">
                <button
                    id="lm-save"
                    disabled=move || !has_run.get()
                    title="model.safetensors, config.json (HookedTransformerConfig), tokenizer.json and the optimiser state, per model, in one .zip"
                    on:click=move |_| save.run(())
                >
                    "Save checkpoint"
                </button>
            </div>
        </fieldset>
    }
}
