//! The parts every lab's page uses: the chart panel with its exports, the run bar with
//! progress, the preset picker and field text box, the link kept in the address, and the
//! labs' explanations.

pub mod about;
pub mod chart_panel;
pub mod controls;
pub mod link_sync;
pub mod progress;
