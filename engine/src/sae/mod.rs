//! Sparse autoencoders: five architectures sharing one training loop, activation sources with
//! planted ground truth, the field's metrics, and SAELens-compatible import and export.

pub mod arch;
pub mod config;
pub mod params;
pub mod source;
