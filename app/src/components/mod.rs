//! The parts every lab's page uses: the chart panel with its exports, the run bar with
//! progress, and the preset picker and field text box.

pub mod chart_panel;
pub mod controls;
pub mod progress;
