//! Experiment configs, share links and result bundles.

pub mod link;
pub mod results;
pub mod superposition;
