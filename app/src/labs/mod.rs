//! The labs, one folder each with its page, form, controls, charts and view; what they share
//! lives in `components/`, `charts/` and `url.rs`. Each lab's folder states how the app shows
//! it ([`LabPage`]); [`LABS`] lists them in tab order, and the app's tabs, titles and pages come
//! from that list alone.

pub mod lm;
pub mod sae;
pub mod superposition;

use leptos::prelude::*;

/// A lab as the app shows it.
pub struct LabPage {
    /// Its name, as links spell it in `lab=` (the first lab's links say none) and in the
    /// tab's DOM id (`lab-{name}`).
    pub name: &'static str,
    /// Its title, on its tab and in the page's title.
    pub title: &'static str,
    /// The tab's link before the lab has been visited: a preset that shows the lab's finding
    /// within a minute even on a software GPU.
    pub first_link: fn() -> String,
    /// Its page, given the address's hash while it names this lab and the resize counter.
    pub page: fn(ReadSignal<String>, RwSignal<u32>) -> AnyView,
}

/// Every lab, in tab order; the first is the one a link without `lab=` opens.
pub const LABS: [LabPage; 3] = [superposition::PAGE, sae::PAGE, lm::PAGE];
