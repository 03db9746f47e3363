//! Controls every lab's form uses: the preset picker and the control of a config field (text
//! box, menu or checkbox).

use leptos::prelude::*;
use mechlab_engine::experiment::fields::{Field, Range};
use mechlab_engine::experiment::link::{self, LinkConfig};

/// The preset menu: every preset by name, and "custom" while the controls match none; under
/// it, what the current preset should show.
#[component]
pub fn PresetSelect(
    /// The menu's DOM id (its note's is `{id}-note`).
    id: &'static str,
    /// The presets' names and what each should show, in menu order.
    presets: Vec<(&'static str, &'static str)>,
    /// The preset the controls match, or "custom".
    current: Memo<&'static str>,
    /// Loads the preset named.
    choose: impl Fn(String) + 'static,
) -> impl IntoView {
    let options = presets
        .iter()
        .map(|&(name, _)| {
            view! {
                <option value=name prop:selected=move || current.get() == name>
                    {name}
                </option>
            }
        })
        .collect_view();
    let note = move || {
        let now = current.get();
        presets.iter().find(|(name, _)| *name == now).map_or(
            "Your own settings: no preset matches them.",
            |(_, shows)| *shows,
        )
    };
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
            <small class="hint preset-note" id=format!("{id}-note")>{note}</small>
        </label>
    }
}

/// Whether a parse error is about the field with link key `key` and name `name`: validation
/// says "invalid config: <name> = …", the link codec "`<key>=…`" (both labs' controls read
/// their text through it).
pub fn error_names_field(error: &str, key: &str, name: &str) -> bool {
    error.contains(&format!("config: {name} =")) || error.contains(&format!("`{key}="))
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

/// How a control shows a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Free text, parsed on Run.
    Text,
    /// A checkbox (`true` / `false`).
    Check,
    /// A menu of these `(value, label)` options.
    Menu(Vec<(&'static str, String)>),
}

impl Input {
    /// How a config field's control shows it, from the lab's field table: a menu of a
    /// choice's options, a checkbox for true or false, else a text box (and a checkbox for a
    /// field the table does not know whose text is `true` or `false`).
    pub fn of(field: Option<&Field>, value: &str) -> Input {
        match field.map(|f| f.range) {
            Some(Range::Choice(options)) => {
                Input::Menu(options.iter().map(|&(v, l)| (v, l.to_string())).collect())
            }
            Some(Range::Bool) => Input::Check,
            _ if value == "true" || value == "false" => Input::Check,
            _ => Input::Text,
        }
    }
}

/// The DOM id of the control of the field with link key `key`.
pub fn dom_id(key: &str) -> String {
    format!("f-{}", key.replace('.', "-"))
}

/// A config field's control with its heading and hint: a menu, a checkbox or a text box, marked
/// invalid while `invalid` says so.
pub fn config_field(
    key: &str,
    label: &'static str,
    hint: &'static str,
    input: Input,
    value: impl Fn() -> String + Clone + Send + Sync + 'static,
    set: impl Fn(String) + Clone + 'static,
    invalid: impl Fn() -> bool + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let id = dom_id(key);
    let check = input == Input::Check;
    let control = match input {
        Input::Menu(options) => {
            let set = set.clone();
            let value = value.clone();
            view! {
                <select id=id on:change=move |ev| set(event_target_value(&ev))>
                    {options
                        .into_iter()
                        .map(|(v, l)| {
                            let value = value.clone();
                            view! {
                                <option value=v prop:selected=move || value() == v>
                                    {l}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            }
            .into_any()
        }
        Input::Check => {
            let set = set.clone();
            let value = value.clone();
            view! {
                <input
                    id=id
                    type="checkbox"
                    prop:checked=move || value() == "true"
                    on:change=move |ev| set(event_target_checked(&ev).to_string())
                />
            }
            .into_any()
        }
        Input::Text => text_input(id, invalid.clone(), value, set).into_any(),
    };
    view! {
        <label class="field" class:check=check class:invalid=invalid>
            {if check {
                view! {
                    {control}
                    <span class="name">{label}</span>
                }
                    .into_any()
            } else {
                view! {
                    <span class="name">{label}</span>
                    {control}
                }
                    .into_any()
            }}
            <small class="hint">{hint}</small>
        </label>
    }
}

/// A lab's form: the controls' text by link key.
pub trait TextForm: Send + Sync + 'static {
    /// The lab's config, whose link codec reads the controls.
    type Config: LinkConfig;

    /// `(link key, text)` per control.
    fn fields(&self) -> &[(String, String)];

    /// The same, to edit.
    fn fields_mut(&mut self) -> &mut Vec<(String, String)>;

    /// Puts the controls in the page's order after a change (by default, as they are).
    fn reorder(&mut self) {}

    /// The name validation errors give `key`'s field ("invalid config: NAME = …"): by default
    /// the key's last segment (`a.k` is `k`).
    fn error_name(key: &str) -> String {
        key.rsplit('.').next().unwrap_or(key).to_string()
    }

    /// The text of `key`'s control.
    fn text(&self, key: &str) -> Option<&str> {
        self.fields()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`'s text. A `…kind` swaps its group's fields (those under its prefix) for that
    /// kind's defaults, as the link codec gives them for it and the kinds above it: choosing BPE
    /// brings a vocabulary size, a JumpReLU its threshold's fields.
    fn set_text(&mut self, key: &str, value: String) {
        if let Some(prefix) = key.strip_suffix("kind") {
            let fields = self.fields_mut();
            // The kinds above this one keep theirs (a magnitude exists for one source kind).
            let mut kinds: Vec<(&str, &str)> = fields
                .iter()
                .filter(|(k, _)| {
                    k.ends_with("kind")
                        && prefix.starts_with(k.trim_end_matches("kind"))
                        && k != key
                })
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            kinds.push((key, value.as_str()));
            if let Ok(cfg) = link::from_pairs::<Self::Config>(&kinds) {
                let group: Vec<(String, String)> = link::pairs(&cfg)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .collect();
                fields.retain(|(k, _)| !k.starts_with(prefix));
                fields.extend(group);
                self.reorder();
                return;
            }
        }
        let fields = self.fields_mut();
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => fields.push((key.to_string(), value)),
        }
        self.reorder();
    }

    /// The controls' text as `(key, text)` pairs for the codec.
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.fields()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The control of the field `key` of a lab's form, with its heading and hint, marked invalid
/// while the form's parse error names it.
pub fn form_field<F: TextForm, T: Send + Sync + 'static>(
    form: RwSignal<F>,
    parsed: Memo<Result<T, String>>,
    key: String,
    (label, hint): (&'static str, &'static str),
    input: impl Fn(&str, &str) -> Input,
) -> impl IntoView {
    let value = {
        let key = key.clone();
        move || form.with(|f| f.text(&key).unwrap_or_default().to_string())
    };
    let input = input(&key, &value());
    let last = F::error_name(&key);
    let invalid = {
        let key = key.clone();
        move || {
            parsed.with(|r| {
                r.as_ref()
                    .err()
                    .is_some_and(|e| error_names_field(e, &key, &last))
            })
        }
    };
    let set = {
        let key = key.clone();
        move |v: String| form.update(|f| f.set_text(&key, v))
    };
    config_field(&key, label, hint, input, value, set, invalid)
}

/// The engine menu every lab's page has: auto, WebGPU or the CPU reference. Where a run trains
/// is the device's business, not the experiment's, so it stays out of the link.
#[component]
pub fn EngineSelect(
    /// The menu's DOM id.
    id: &'static str,
    /// The choice.
    engine: RwSignal<mechlab_engine::train::engine::EngineChoice>,
    /// What auto does in this lab.
    hint: &'static str,
) -> impl IntoView {
    use mechlab_engine::train::engine::EngineChoice;
    // The GPU is WebGPU in the browser.
    let value = |e: EngineChoice| match e {
        EngineChoice::Gpu => "webgpu",
        other => other.name(),
    };
    view! {
        <label class="field">
            <span class="name">"Engine"</span>
            <select
                id=id
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    engine.set(EngineChoice::ALL.into_iter().find(|&e| value(e) == v).unwrap_or_default());
                }
            >
                {[
                    (EngineChoice::Auto, "auto"),
                    (EngineChoice::Gpu, "WebGPU"),
                    (EngineChoice::Cpu, "CPU reference"),
                ]
                    .map(|(e, label)| {
                        view! {
                            <option value=value(e) prop:selected=move || engine.get() == e>
                                {label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <small class="hint">{hint}</small>
        </label>
    }
}
