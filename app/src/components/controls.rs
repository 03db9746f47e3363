//! Controls both labs' forms use: the preset picker and the text box of a config field.

use leptos::prelude::*;

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
