//! Experiment configs, share links and result bundles.

pub mod fields;
pub mod frontier;
pub mod lab;
pub mod link;
pub mod lm_link;
pub mod preset;
pub mod repair;
pub mod results;
pub mod sae_link;
pub mod superposition;
pub mod sweep;

/// Every lab's name, as links spell it in `lab=`.
pub const LABS: [&str; 3] = ["superposition", "sae", "lm"];
