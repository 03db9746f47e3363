//! "What you are looking at": each lab's short, collapsible explanation of the science, with
//! links to the papers; closed until asked for, so it never pushes the controls down.

use leptos::prelude::*;

/// The collapsible explanation; `children` is the lab's text.
#[component]
pub fn About(
    /// The element's DOM id.
    id: &'static str,
    /// The lab's explanation.
    children: Children,
) -> impl IntoView {
    view! {
        <details class="about" id=id>
            <summary>"What you are looking at"</summary>
            <div class="about-body">{children()}</div>
        </details>
    }
}

/// A link to a paper or tool, opened in a new tab so the run in this one goes on.
#[component]
pub fn Cite(
    /// Where it goes.
    href: &'static str,
    /// The link's text.
    children: Children,
) -> impl IntoView {
    view! {
        <a href=href target="_blank" rel="noopener noreferrer">
            {children()}
        </a>
    }
}
