//! Measures computed from trained models.

pub mod superposition;
