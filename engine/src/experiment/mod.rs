//! What every lab's experiment shares: the link codec and its field tables, presets, sweeps,
//! frontiers, result bundles, and the list of labs ([`lab::LABS`]). Each lab's own config and
//! its spelling in links live in its folder under `models/`.

pub mod fields;
pub mod frontier;
pub mod lab;
pub mod link;
pub mod preset;
pub mod repair;
pub mod results;
pub mod sweep;
