//! mechlab's browser app: the Superposition lab (Toy Models of Superposition, Elhage et al.
//! 2022), the SAE lab (sparse autoencoders on planted features or a toy model's hidden layer)
//! and the Transformer lab (SoLU and GeLU language models), trained live on WebGPU with the CPU
//! reference as a fallback.
//!
//! The app is a thin composition: the address's hash says which lab and which experiment;
//! each lab's folder (`labs/superposition`, `labs/sae`) holds its page, form, controls, charts
//! and view. What labs share: `trainer` (the page's side of the training worker, which the
//! crate's library holds with the messages between the two), `charts` (the canvas tools),
//! `components` (chart panel, run bar, preset and field controls) and `url` (the hash).

mod charts;
mod components;
mod download;
mod labs;
mod trainer;
mod url;

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The labs, each a page of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lab {
    Superposition,
    Sae,
    Transformer,
}

impl Lab {
    /// The lab a hash's link is for: the SAE lab's links say `lab=sae`; the Superposition
    /// lab's (the first, older format) say nothing.
    fn of(hash: &str) -> Lab {
        // The codec's own pair parser, so a link opens the lab whose decoder reads it.
        use mechlab_engine::experiment::link;
        let pairs = link::fragment_pairs(hash).unwrap_or_default();
        match link::lab_of(&pairs) {
            Some("sae") => Lab::Sae,
            Some("lm") => Lab::Transformer,
            _ => Lab::Superposition,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lab::Superposition => "Superposition",
            Lab::Sae => "Sparse autoencoders",
            Lab::Transformer => "Transformer",
        }
    }
}

/// The app: the lab switcher and the lab the address names.
#[component]
fn App() -> impl IntoView {
    let hash = RwSignal::new(url::location_hash());
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        hash.set(url::location_hash())
    });
    let resized = RwSignal::new(0u32);
    let _ = window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
    let lab = Memo::new(move |_| Lab::of(&hash.get()));
    Effect::new(move |_| {
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&format!("mechlab — {}", lab.get().title()));
        }
    });
    let tab = move |l: Lab, id: &'static str, href: &'static str| {
        view! {
            <a
                id=id
                href=href
                class:active=move || lab.get() == l
                aria-current=move || if lab.get() == l { "page" } else { "false" }
            >
                {l.title()}
            </a>
        }
    };
    view! {
        <header>
            <h1>"mechlab — " {move || lab.get().title()}</h1>
            <nav class="labs">
                {tab(Lab::Superposition, "lab-superposition", "#")}
                {tab(Lab::Sae, "lab-sae", "#v=1&lab=sae")}
                {tab(Lab::Transformer, "lab-lm", "#v=1&lab=lm")}
            </nav>
        </header>
        // A new lab mounts a fresh page (and its worker); the last one's goes with it.
        {move || match lab.get() {
            Lab::Superposition => {
                view! { <labs::superposition::SuperpositionPage hash=hash.read_only() resized=resized /> }
                    .into_any()
            }
            Lab::Sae => view! { <labs::sae::SaePage hash=hash.read_only() resized=resized /> }.into_any(),
            Lab::Transformer => {
                view! { <labs::transformer::TransformerPage hash=hash.read_only() resized=resized /> }
                    .into_any()
            }
        }}
    }
}
