//! The Superposition page's controls: one per config field (headings, hints and menus from the
//! engine's field table, through the form component every lab uses), plus the preset picker.
//! Controls edit text in the form; the page parses it, shows what is wrong, and writes every
//! valid change into the link.

use super::form::{self, preset_name, Form};
use crate::components::controls::{form_field, PresetSelect};
use leptos::prelude::*;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::toy::config::{fields, Preset, SuperpositionConfig};

/// The experiment's controls.
#[component]
pub fn Controls(
    /// The controls' text.
    form: RwSignal<Form>,
    /// The parsed config, or the message saying why it does not parse.
    parsed: Memo<Result<SuperpositionConfig, String>>,
) -> impl IntoView {
    let preset = Memo::new(move |_| parsed.with(|r| preset_name(r.as_ref().ok())));
    let choose = move |name: String| {
        if let Ok(p) = Preset::from_name(&name) {
            form.set(Form::from_config(&p.config()));
        }
    };
    // The fields never change in this lab: one control each, in the table's order.
    let controls = fields::ALL
        .iter()
        .map(|f| {
            form_field(
                form,
                parsed,
                f.key.to_string(),
                form::info(f.key),
                form::input,
            )
        })
        .collect_view();
    view! {
        <fieldset class="controls">
            <legend>"Experiment"</legend>
            <PresetSelect id="preset" presets=Preset::menu() current=preset choose=choose />
            {controls}
        </fieldset>
    }
}
