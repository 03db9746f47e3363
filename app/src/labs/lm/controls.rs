//! The Transformer lab's experiment controls: preset, the twin model, and one control per field
//! of the run (tokenizer, model shape, optimiser, schedule).

use super::form::{self, LmForm};
use crate::components::controls::{form_field, PresetSelect};
use leptos::prelude::*;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::transformer::link::LmExperiment;
use mechlab_engine::models::transformer::lm::LmPreset;

/// The parsed controls, or why they do not parse.
pub type Parsed = Memo<Result<LmExperiment, String>>;

/// The experiment's controls.
#[component]
pub fn LmControls(
    /// The controls' text.
    form: RwSignal<LmForm>,
    /// The parsed experiment, or the message saying why it does not parse.
    parsed: Parsed,
) -> impl IntoView {
    let preset = Memo::new(move |_| parsed.with(|r| form::preset_name(r.as_ref().ok())));
    let choose = move |name: String| {
        if let Ok(p) = LmPreset::from_name(&name) {
            form.set(LmForm::new(&LmExperiment::preset(p)));
        }
    };
    let keys = move || form.with(|f| f.fields.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    view! {
        <fieldset class="controls">
            <legend>"Experiment"</legend>
            <PresetSelect
                id="lm-preset"
                presets=LmPreset::menu()
                current=preset
                choose=choose
            />
            <For each=keys key=|k| k.clone() let:key>
                {form_field(form, parsed, key.clone(), form::info(&key), form::input)}
            </For>
        </fieldset>
    }
}
