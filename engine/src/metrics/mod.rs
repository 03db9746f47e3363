//! Measures computed from trained models, per lab.

pub mod sae;
pub mod superposition;
