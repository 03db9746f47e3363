//! One control per config field, plus the preset picker. Controls edit text in the form; the page
//! parses it, shows what is wrong, and writes every valid change into the link.

use crate::state::{preset_name, Form};
use leptos::prelude::*;
use mechlab_engine::experiment::fields::Field;
use mechlab_engine::experiment::superposition::{fields, Preset, SuperpositionConfig};

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
        text_field(form, parsed, f.name, f.label, f.hint, get, set)
    };
    view! {
        <fieldset class="controls">
            <legend>"Experiment"</legend>
            <PresetSelect id="preset" names=Preset::ALL.map(|p| p.name()).to_vec() current=preset choose=choose />
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

/// The preset menu: every preset by name, and "custom" while the controls match none.
#[component]
pub fn PresetSelect(
    /// The menu's DOM id.
    id: &'static str,
    /// The presets' names, in menu order.
    names: Vec<&'static str>,
    /// The preset the controls match, or "custom".
    current: Memo<&'static str>,
    /// Loads the preset named.
    choose: impl Fn(String) + 'static,
) -> impl IntoView {
    let options = names
        .into_iter()
        .map(|name| {
            view! {
                <option value=name prop:selected=move || current.get() == name>
                    {name}
                </option>
            }
        })
        .collect_view();
    view! {
        <label class="field">
            <span class="name">"Preset"</span>
            <select id=id on:change=move |ev| choose(event_target_value(&ev))>
                {options}
                <Show when=move || current.get() == "custom">
                    <option value="custom" prop:selected=true>
                        "custom"
                    </option>
                </Show>
            </select>
        </label>
    }
}

/// A labelled text input bound to one form field; marked invalid when the parse error names it.
fn text_field(
    form: RwSignal<Form>,
    parsed: Memo<Result<SuperpositionConfig, String>>,
    id: &'static str,
    label: &'static str,
    hint: &'static str,
    get: fn(&Form) -> String,
    set: fn(&mut Form, String),
) -> impl IntoView {
    // Engine messages read "invalid config: <field> = <value>: <why>".
    let invalid = move || {
        parsed.with(|r| {
            r.as_ref()
                .err()
                .is_some_and(|e| e.contains(&format!("config: {id} =")))
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

/// The text box of a config field, shared by both labs: no spell-checking or autofill (values
/// are numbers and names), and `aria-invalid` while the parse error names the field.
pub fn text_input(
    id: String,
    invalid: impl Fn() -> bool + Send + Sync + 'static,
    value: impl Fn() -> String + Send + Sync + 'static,
    set: impl Fn(String) + 'static,
) -> impl IntoView {
    view! {
        <input
            id=id
            type="text"
            spellcheck="false"
            autocomplete="off"
            aria-invalid=move || if invalid() { "true" } else { "false" }
            prop:value=value
            on:input=move |ev| set(event_target_value(&ev))
        />
    }
}
