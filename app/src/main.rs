//! mechlab's browser app: the Superposition lab (Toy Models of Superposition, Elhage et al.
//! 2022), the SAE lab (sparse autoencoders on planted features or a toy model's hidden layer)
//! and the Transformer lab (SoLU and GeLU language models), trained live on WebGPU with the CPU
//! reference as a fallback.
//!
//! This binary is a thin composition over the crate's library: the address's hash says which
//! lab and which experiment, and the tabs and pages come from `labs::LABS` (each lab's folder
//! holds its page, form, controls, charts, view, and the work its runs do in the worker).

use mechlab_app::{labs, url};

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// A lab, by its place in [`labs::LABS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lab(usize);

impl Lab {
    /// The lab a hash's link is for: the one its `lab=` names, or the first (whose links,
    /// the first format, say nothing).
    fn of(hash: &str) -> Lab {
        // The codec's own pair parser, so a link opens the lab whose decoder reads it.
        use mechlab_engine::experiment::link;
        let pairs = link::fragment_pairs(hash).unwrap_or_default();
        let named = link::lab_of(&pairs);
        Lab(labs::LABS
            .iter()
            .position(|l| Some(l.name) == named)
            .unwrap_or(0))
    }

    fn page(self) -> &'static labs::LabPage {
        &labs::LABS[self.0]
    }

    fn all() -> impl Iterator<Item = Lab> {
        (0..labs::LABS.len()).map(Lab)
    }
}

thread_local! {
    /// Each lab's page, mounted into a detached element the first time the lab is shown and
    /// kept for the tab's life: switching labs moves these elements in and out of the document,
    /// so a lab keeps its controls, its run (its worker goes on training) and its charts, and
    /// only the lab shown has its elements (and their ids) in the document.
    static PAGES: std::cell::RefCell<Vec<Option<web_sys::Element>>> =
        std::cell::RefCell::new(vec![None; labs::LABS.len()]);
}

/// The element holding `lab`'s page, mounting the page the first time. `owner` is the app's:
/// a page's reactive graph must outlive the effect that first showed it.
fn page_element(
    lab: Lab,
    owner: &Owner,
    hash: ReadSignal<String>,
    resized: RwSignal<u32>,
) -> Option<web_sys::Element> {
    use wasm_bindgen::JsCast;
    if let Some(el) = PAGES.with(|p| p.borrow()[lab.0].clone()) {
        return Some(el);
    }
    let doc = web_sys::window()?.document()?;
    let el = doc.create_element("div").ok()?;
    el.set_class_name("lab-page");
    let parent: web_sys::HtmlElement = el.clone().dyn_into().ok()?;
    let page = lab.page().page;
    let handle = owner.with(|| leptos::mount::mount_to(parent, move || page(hash, resized)));
    // The page lives as long as the tab: dropping the handle would unmount it.
    std::mem::forget(handle);
    PAGES.with(|p| p.borrow_mut()[lab.0] = Some(el.clone()));
    Some(el)
}

/// The app: the lab switcher and the lab the address names. Every lab visited stays as it
/// was left (see [`PAGES`]); each tab links to its lab's experiment as it was left.
#[component]
fn App() -> impl IntoView {
    let hash = RwSignal::new(url::location_hash());
    let lab = Memo::new(move |_| Lab::of(&hash.get()));
    // Each lab's hash: the address while it names that lab, so a page only ever reads links
    // for itself.
    let lab_hashes: Vec<RwSignal<String>> = Lab::all()
        .map(|l| {
            let h = hash.get_untracked();
            RwSignal::new(if Lab::of(&h) == l { h } else { String::new() })
        })
        .collect();
    // Each tab's link: the lab's default until the user leaves the lab, then its link as left.
    let tab_links: Vec<RwSignal<String>> = Lab::all()
        .map(|l| RwSignal::new((l.page().first_link)()))
        .collect();
    let lab_hashes = StoredValue::new(lab_hashes);
    let tab_links = StoredValue::new(tab_links);
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let h = url::location_hash();
        lab_hashes.with_value(|hs| hs[Lab::of(&h).0].set(h.clone()));
        hash.set(h);
    });
    let resized = RwSignal::new(0u32);
    let _ = window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
    Effect::new(move |_| {
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&format!("mechlab — {}", lab.get().page().title));
        }
    });
    let owner = Owner::current().expect("the app runs inside its owner");
    let host = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let l = lab.get();
        let Some(host) = host.get() else { return };
        let owner = owner.clone();
        // Outside the effect: a page built while the effect runs would belong to the effect's
        // run, and be disposed when the effect runs again.
        set_timeout(
            move || {
                let h = lab_hashes.with_value(|hs| hs[l.0].read_only());
                let page = page_element(l, &owner, h, resized);
                if let Some(page) = page {
                    host.replace_children_with_node_1(&page);
                }
                // Charts drawn while their page was away had no width; draw them again.
                resized.update(|n| *n += 1);
            },
            std::time::Duration::ZERO,
        );
    });
    let tab = move |l: Lab| {
        let link = tab_links.with_value(|t| t[l.0]);
        view! {
            <a
                id=format!("lab-{}", l.page().name)
                href=move || link.get()
                class:active=move || lab.get() == l
                aria-current=move || if lab.get() == l { "page" } else { "false" }
                on:click=move |ev| {
                    // Leaving a lab: its tab will bring back the link it has now, which the
                    // page writes into the address as the user edits.
                    let from = lab.get_untracked();
                    if from != l {
                        tab_links.with_value(|t| t[from.0].set(url::location_hash()));
                    } else {
                        ev.prevent_default();
                    }
                }
            >
                {l.page().title}
            </a>
        }
    };
    view! {
        <header>
            <h1>"mechlab — " {move || lab.get().page().title}</h1>
            <nav class="labs">{Lab::all().map(tab).collect_view()}</nav>
        </header>
        <div id="lab-host" node_ref=host></div>
    }
}
