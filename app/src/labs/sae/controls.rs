//! The SAE lab's controls: preset, what Run trains (one SAE or a frontier sweep), and one
//! control per field of the config, made from the form's fields so that choosing another
//! architecture or source shows that kind's own hyper-parameters.

use super::form::{self, SaeForm, SweepChoice};
use crate::components::controls::{form_field, PresetSelect};
use leptos::prelude::*;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::sae::config::{SaeConfig, SaePreset};
use mechlab_engine::models::sae::link::Sweep;

/// The parsed controls, or why they do not parse.
pub type Parsed = Memo<Result<(SaeConfig, Sweep), String>>;

/// The experiment's controls.
#[component]
pub fn SaeControls(
    /// The controls' text.
    form: RwSignal<SaeForm>,
    /// The parsed config and sweep, or the message saying why they do not parse.
    parsed: Parsed,
) -> impl IntoView {
    let preset = Memo::new(move |_| parsed.with(|r| form::preset_name(r.as_ref().ok())));
    let choose = move |name: String| {
        if let Ok(p) = SaePreset::from_name(&name) {
            form.set(SaeForm::new(&p.config(), &form::preset_sweep(p)));
        }
    };
    let sweep = Memo::new(move |_| form.with(|f| f.sweep.clone()));
    let sweep_option = move |choice: SweepChoice, label: String| {
        let value = choice.value();
        view! {
            <option value=value prop:selected=move || sweep.get() == choice>
                {label}
            </option>
        }
    };
    let keys = move || form.with(|f| f.fields.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    view! {
        <fieldset class="controls">
            <legend>"Experiment"</legend>
            <PresetSelect
                id="sae-preset"
                presets=SaePreset::menu()
                current=preset
                choose=choose
            />
            <label class="field">
                <span class="name">"Train"</span>
                <select
                    id="sae-sweep"
                    on:change=move |ev| {
                        let choice = SweepChoice::from_value(&event_target_value(&ev));
                        form.update(|f| f.sweep = choice);
                    }
                >
                    {sweep_option(SweepChoice::Single, "one SAE".into())}
                    {sweep_option(SweepChoice::ThisArchitecture, "frontier: this architecture's sweep".into())}
                    {sweep_option(SweepChoice::All, "frontier: all five architectures".into())}
                    {move || match sweep.get() {
                        SweepChoice::Some(names) => {
                            let label = format!("frontier: {}", names.join(", "));
                            Some(sweep_option(SweepChoice::Some(names), label))
                        }
                        SweepChoice::Key(k) => {
                            let label = format!("sweep {}: {}", k.key, k.values.join(", "));
                            Some(sweep_option(SweepChoice::Key(k), label))
                        }
                        _ => None,
                    }}
                </select>
                <small class="hint">"a frontier trains each k or λ of the sweep in turn; a link's sweep=KEY:A,B,… each value of one field"</small>
            </label>
            <For each=keys key=|k| k.clone() let:key>
                {form_field(form, parsed, key.clone(), form::info(&key), form::input)}
            </For>
        </fieldset>
    }
}
