//! The labs, one folder each with its page, form, controls, charts and view, the work its runs
//! do in the training worker (`work.rs`) and the figures a chunk sends the page (`update.rs`);
//! what they share lives in `components/`, `charts/`, `url.rs`, `run_controller.rs` and
//! `worker/`. Each lab's folder states how the app shows and trains it ([`LabPage`]); [`LABS`]
//! lists them in tab order, and the app's tabs, titles, pages and the worker's labs come from
//! that list alone.

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
    /// Opens a job of this lab in the training worker (the lab's `work.rs`).
    pub open: crate::worker::work::OpenWork,
}

/// Every lab, in tab order; the first is the one a link without `lab=` opens.
pub const LABS: [LabPage; 3] = [superposition::PAGE, sae::PAGE, lm::PAGE];

#[cfg(test)]
mod tests {
    /// The worker finds a job's lab here by the name its link gives, so every lab the engine
    /// decodes links for has a page, in the same order (the first opens links without `lab=`).
    #[test]
    fn every_lab_the_engine_decodes_has_one_page_in_its_order() {
        let pages: Vec<&str> = super::LABS.iter().map(|l| l.name).collect();
        assert_eq!(pages, mechlab_engine::experiment::lab::lab_names());
    }
}
