//! The page's parts: the config controls, the run bar with progress, and a chart panel.

pub mod chart_panel;
pub mod controls;
pub mod progress;
