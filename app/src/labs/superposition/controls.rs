//! The Superposition page's controls: one per config field (headings and hints from the
//! engine's field table), plus the preset picker. Controls edit text in the form; the page
//! parses it, shows what is wrong, and writes every valid change into the link.

use super::form::{preset_name, Form};
use crate::components::controls::{error_names_field, text_input, PresetSelect};
use leptos::prelude::*;
use mechlab_engine::experiment::fields::Field;
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
    // Headings and hints from the engine's field table; the control's id is the field's name.
    let field = move |f: Field, get: fn(&Form) -> String, set: fn(&mut Form, String)| {
        text_field(form, parsed, f, get, set)
    };
    view! {
        <fieldset class="controls">
            <legend>"Experiment"</legend>
            <PresetSelect id="preset" presets=Preset::menu() current=preset choose=choose />
            {field(fields::N_FEATURES, |f: &Form| f.n_features.clone(), |f: &mut Form, v| f.n_features = v)}
            {field(fields::N_HIDDEN, |f: &Form| f.n_hidden.clone(), |f: &mut Form, v| f.n_hidden = v)}
            <label class="field check">
                <input
                    id="relu"
                    type="checkbox"
                    prop:checked=move || form.with(|f| f.relu)
                    on:change=move |ev| form.update(|f| f.relu = event_target_checked(&ev))
                />
                <span class="name">{fields::RELU.label}</span>
                <small class="hint">{fields::RELU.hint}</small>
            </label>
            {field(fields::IMPORTANCE_DECAY, |f: &Form| f.importance_decay.clone(), |f: &mut Form, v| f.importance_decay = v)}
            {field(fields::FEATURE_PROBABILITY, |f: &Form| f.feature_probability.clone(), |f: &mut Form, v| f.feature_probability = v)}
            {field(fields::RELATIVE_IMPORTANCE, |f: &Form| f.relative_importance.clone(), |f: &mut Form, v| f.relative_importance = v)}
            {field(fields::BATCH_SIZE, |f: &Form| f.batch_size.clone(), |f: &mut Form, v| f.batch_size = v)}
            {field(fields::STEPS, |f: &Form| f.steps.clone(), |f: &mut Form, v| f.steps = v)}
            {field(fields::LEARNING_RATE, |f: &Form| f.learning_rate.clone(), |f: &mut Form, v| f.learning_rate = v)}
            {field(fields::SEED, |f: &Form| f.seed.clone(), |f: &mut Form, v| f.seed = v)}
        </fieldset>
    }
}

/// A labelled text input bound to one form field; marked invalid when the parse error names it.
fn text_field(
    form: RwSignal<Form>,
    parsed: Memo<Result<SuperpositionConfig, String>>,
    f: Field,
    get: fn(&Form) -> String,
    set: fn(&mut Form, String),
) -> impl IntoView {
    let (id, key, label, hint) = (f.name, f.key, f.label, f.hint);
    let invalid = move || {
        parsed.with(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| error_names_field(e, key, id))
        })
    };
    view! {
        <label class="field" class:invalid=invalid>
            <span class="name">{label}</span>
            {text_input(
                id.to_string(),
                invalid,
                move || form.with(get),
                move |v| form.update(|f| set(f, v)),
            )}
            <small class="hint">{hint}</small>
        </label>
    }
}
